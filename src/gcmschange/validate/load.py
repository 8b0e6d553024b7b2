"""Load change requests into `ChangeRequest` values, only after they pass validation.

Every stage starts here, so every stage gets the same hardened loader and the same checks
(`validate.py`) as the `validate` verb; only checks against the clock are left out, because
later stages run inside the window, where "too little notice" no longer applies.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gcmschange import yamlsafe
from gcmschange.errors import InvalidInputError, ValidationError
from gcmschange.model import ChangeRequest, Impact, Rollback, Rollout, Window
from gcmschange.rules import catalogue
from gcmschange.validate import run


def find_change_file(root: Path, ref: str) -> Path:
    """A change given as a path, or as an id that names changes/<id>.yaml.

    Found as `validate` finds it: a link or a FIFO there is returned, for the reader to
    refuse by name.
    """
    found = run.resolve(root, ref)
    if run.present(found):
        return found
    raise InvalidInputError(
        f"{run.shown(ref)}: no such change (looked for changes/{run.shown(ref)}.yaml)"
    )


def _aware(value: str, tz: str) -> datetime:
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    return moment


def from_document(doc: dict[str, Any], path: str = "") -> ChangeRequest:
    """Build the model from a document that has already passed validation."""
    win = doc["window"]
    rollout = doc.get("rollout", {})
    rollback = doc.get("rollback", {})
    impact = doc.get("impact", {})
    return ChangeRequest(
        id=doc["id"],
        title=doc["title"],
        type=doc["type"],
        requester=doc["requester"],
        environment=doc["environment"],
        systems=tuple(doc["systems"]),
        playbook=doc.get("playbook", ""),
        variables=dict(doc.get("variables") or {}),
        window=Window(
            start=_aware(win["start"], win["timezone"]),
            end=_aware(win["end"], win["timezone"]),
            timezone=win["timezone"],
        ),
        rollout=Rollout(
            canary=int(rollout.get("canary", 1)),
            waves=tuple(str(w) for w in rollout.get("waves", ["100%"])),
            failure_threshold=int(rollout.get("failure_threshold", 0)),
        ),
        rollback=Rollback(
            strategy=rollback.get("strategy", "restore"), playbook=rollback.get("playbook")
        ),
        verification=tuple(doc.get("verification", ())),
        impact=Impact(
            level=impact.get("level", "none"),
            description_en=impact.get("description_en", ""),
            description_fr=impact.get("description_fr", ""),
        ),
        path=path,
        template=doc.get("template"),
        parameters=dict(doc.get("parameters") or {}),
        incident=doc.get("incident"),
        raw=doc,
    )


def load_change(root: Path, ref: str) -> ChangeRequest:
    """The validated change; a `ValidationError` listing every problem otherwise.

    Standard changes come back instantiated: the template's playbook, and its variables
    with the parameters copied in; `raw` keeps the document as written.
    """
    path = find_change_file(root, ref)
    report = run.validate(root, [str(path)], clock=False)
    result = report.results[0]
    errors = tuple(p for p in result.problems if p.severity == "error")
    if errors:
        raise ValidationError(f"{result.file}: invalid change request", errors)
    raw = yamlsafe.read_inside(root, path, result.file)
    if run.content_key(result.file, raw) != result.key:  # what runs is what was validated
        raise InvalidInputError(f"{result.file}: changed while it was being validated; try again")
    doc = yamlsafe.load_bytes(raw, result.file).data
    runnable = doc
    if doc["type"] == "standard":
        entry = catalogue.load_entry(root, root / "catalogue" / f"{doc['template']}.yml")
        runnable = catalogue.instantiate(doc, entry)
    return replace(from_document(runnable, result.file), raw=doc)
