"""Load change requests into `ChangeRequest` values.

This first version maps a parsed YAML document onto the model; the validation issue
replaces the parsing with the hardened loader (positions, hostile input) and adds
schema, reference and policy checks in front of it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from gcmschange.errors import InvalidInputError
from gcmschange.model import ChangeRequest, Impact, Rollback, Rollout, Window


def find_change_file(root: Path, ref: str) -> Path:
    """A change given as a path, or as an id that names changes/<id>.yaml."""
    as_path = Path(ref)
    for candidate in (as_path, root / as_path, root / "changes" / f"{ref}.yaml"):
        if candidate.is_file():
            return candidate
    raise InvalidInputError(f"{ref}: no such change (looked for changes/{ref}.yaml)")


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
    path = find_change_file(root, ref)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: cannot be read as YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{path}: a change request is a mapping")
    try:
        rel = str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        rel = str(path)
    return from_document(doc, rel)
