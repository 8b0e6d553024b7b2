"""The evidence bundle of a change: everything an auditor needs, in one checked archive.

Collected: the change request, every file under `.gcmschange/changes/<id>/` (plan, runs,
runner events, JUnit, journal, validation results: whatever the stages wrote), the signed
approvals under `approvals/<id>/`, the change's slice of the audit log, the chain's state,
timings, a summary from the estate graph, and the roles and collections each sealed run
installed from requirements.yml (name, version, hashes). Secrets are masked in every member before
anything else; large outputs are then truncated, keeping the SHA-256 of the (masked) full
text. Symbolic links are left out, so a link cannot pull a file from elsewhere into it.

A bundle's manifest proves only that the bundle agrees with itself: anyone can alter a member
and recompute the manifest. What binds it to what was built is the audit log, where `build`
records the manifest's SHA-256 (`evidence.built`); `recorded_build` checks a bundle against it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gcmschange.apply import journal
from gcmschange.approvals.statements import change_dir as approvals_dir
from gcmschange.audit import trail
from gcmschange.audit.archive import BundleReport, verify_bundle, write_bundle
from gcmschange.errors import GcmsError
from gcmschange.masking import mask_bytes, mask_data, secret_names, secret_values
from gcmschange.model import ChangeRequest
from gcmschange.notify.change_calendar import filed_change
from gcmschange.paths import state_dir
from gcmschange.plan import requirements
from gcmschange.rules.estate import load_estate
from gcmschange.textsafe import shown

__all__ = [
    "BundleReport",
    "BundleResult",
    "Recorded",
    "build_bundle",
    "recorded_build",
    "verify_bundle",
]

FIELD_LIMIT = 16 * 1024  # characters kept of one string inside a JSON record
FILE_LIMIT = 1024 * 1024  # bytes kept of one text file
TOP_PREFIX = "evidence-"  # a bundle's top folder: evidence-<CHANGE>


@dataclass(frozen=True)
class BundleResult:
    path: Path
    change: str
    members: tuple[str, ...]
    truncated: tuple[str, ...]
    skipped: tuple[str, ...]
    manifest_sha256: str


@dataclass(frozen=True)
class Recorded:
    """What the audit log says of a bundle: the entry that recorded its manifest, or why not."""

    entry: int | None  # seq of the `evidence.built` entry with this manifest's SHA-256
    problem: str = ""  # why the log does not vouch for the bundle ("" when it does)


def _top_change(top: str) -> str:
    return top.removeprefix(TOP_PREFIX) if top.startswith(TOP_PREFIX) else ""


def recorded_build(root: Path, report: BundleReport) -> Recorded:
    """Whether the audit log of `root` recorded building this very bundle.

    The log's chain must hold (a torn last line aside: it is the end of an append, not an
    edit), and an `evidence.built` entry of the bundle's change must carry its manifest's
    SHA-256: a manifest recomputed after an edit has another one.
    """
    chain = trail.verify_chain(root)
    if not chain.ok and not chain.truncated_tail:
        return Recorded(None, f"the audit log cannot vouch for it: its chain is broken ({chain})")
    change = _top_change(report.top)
    if not change:
        return Recorded(None, f"top folder {shown(report.top)!r} names no change's evidence")
    named = shown(change)  # from the bundle: printed as it is, control characters escaped
    builds = trail.select(trail.read_events(root), change=change, event="evidence.built")
    for event in builds:
        if event.details.get("manifest_sha256") == report.manifest_sha256:
            return Recorded(event.seq)
    if not builds:
        return Recorded(None, f"the audit log has no record of evidence built for {named}")
    latest = builds[-1]
    return Recorded(
        None,
        f"its manifest (sha256 {report.manifest_sha256}) is not one the audit log recorded "
        f"for {named} (latest: entry {latest.seq}, sha256 "
        f"{latest.details.get('manifest_sha256')}): altered, or rebuilt outside gcmschange",
    )


def _marker(full: str | bytes) -> str:
    data = full.encode("utf-8") if isinstance(full, str) else full
    return f"...[truncated: {len(full)} in full, sha256 {hashlib.sha256(data).hexdigest()}]"


def _shorten(value: Any) -> tuple[Any, bool]:
    if isinstance(value, str) and len(value) > FIELD_LIMIT:
        return value[:FIELD_LIMIT] + _marker(value), True
    if isinstance(value, dict):
        pairs = {k: _shorten(v) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(c for _, c in pairs.values())
    if isinstance(value, list):
        items = [_shorten(v) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    return value, False


def _shorten_json_lines(text: str) -> tuple[str, bool]:
    out, changed = [], False
    for line in text.splitlines(keepends=True):
        try:
            value, cut = _shorten(json.loads(line))
        except ValueError:
            value, cut = None, False
        changed |= cut
        out.append(json.dumps(value, sort_keys=True) + "\n" if cut else line)
    return "".join(out), changed


def _shorten_json_document(text: str) -> tuple[str, bool]:
    try:
        value, changed = _shorten(json.loads(text))
    except ValueError:
        return text, False
    return (json.dumps(value, indent=2, sort_keys=True) + "\n", True) if changed else (text, False)


def _truncate(name: str, data: bytes) -> tuple[bytes, bool]:
    """Large strings in JSON records, then whole text files, cut down with their hash."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data, False
    changed = False
    if name.endswith(".jsonl"):
        text, changed = _shorten_json_lines(text)
    elif name.endswith(".json"):
        text, changed = _shorten_json_document(text)
    raw = text.encode("utf-8")
    if len(raw) > FILE_LIMIT:
        head = raw[:FILE_LIMIT].decode("utf-8", "ignore")
        return (head + "\n" + _marker(raw) + "\n").encode("utf-8"), True
    return raw, changed


def _tree(base: Path, prefix: str) -> tuple[dict[str, bytes], list[str]]:
    files: dict[str, bytes] = {}
    skipped: list[str] = []
    if not base.is_dir():
        return files, skipped
    for path in sorted(base.rglob("*")):
        relative = f"{prefix}/{path.relative_to(base).as_posix()}"
        if path.is_symlink():
            skipped.append(f"{relative} (symbolic link)")
        elif path.is_file() and not _runner_artifact_kept(path.relative_to(base).parts):
            skipped.append(f"{relative} (runner artifact outside the allow-list)")
        elif path.is_file():
            files[relative] = path.read_bytes()
    return files, skipped


# What an ansible-runner artifact folder may give the bundle: its outcome, what it printed
# and its events. Not `command` (the process environment: CI tokens, passwords), not
# `fact_cache`, not anything a later ansible-runner version adds before someone looks at it.
RUNNER_ARTIFACTS = frozenset({"status", "rc", "stdout"})


def _runner_artifact_kept(parts: tuple[str, ...]) -> bool:
    if "artifacts" not in parts:
        return True
    inside = parts[parts.index("artifacts") + 2 :]  # below artifacts/<ident>/
    if len(inside) == 1:
        return inside[0] in RUNNER_ARTIFACTS
    # An event's `-partial.json` is ansible-runner's unmasked draft: only finished events.
    return (
        len(inside) == 2
        and inside[0] == "job_events"
        and inside[1].endswith(".json")
        and not inside[1].endswith("-partial.json")
    )


def _timings(change: ChangeRequest, events: list[trail.AuditEvent]) -> dict[str, Any]:
    times = [datetime.fromisoformat(e.time) for e in events]
    return {
        "window": {"start": change.window.start.isoformat(), "end": change.window.end.isoformat()},
        "first_event": events[0].time if events else None,
        "last_event": events[-1].time if events else None,
        "elapsed_seconds": (times[-1] - times[0]).total_seconds() if times else 0.0,
        "events": [{"time": e.time, "event": e.event, "outcome": e.outcome} for e in events],
    }


def _audit_members(root: Path, change: ChangeRequest) -> dict[str, bytes]:
    # The bundle's own build events are left out, so rebuilding from the same state gives
    # the same bytes.
    events = [
        e
        for e in trail.select(trail.read_events(root), change=change.id)
        if not e.event.startswith("evidence.")
    ]
    chain = trail.verify_chain(root)
    lines = "".join(json.dumps(trail.as_dict(e), sort_keys=True) + "\n" for e in events)
    state = {"intact": chain.ok, "first_bad": chain.first_bad, "reason": chain.reason}
    return {
        "audit/slice.jsonl": lines.encode("utf-8"),
        "audit/chain.json": _json(state),
        "timings.json": _json(_timings(change, events)),
    }


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _summary(root: Path, change: ChangeRequest, extra: dict[str, Any]) -> bytes:
    radius = load_estate(root).blast_radius(change.systems)
    names = secret_names(root, change.playbook)
    return _json(
        {
            "change": change.id,
            "title": change.title,
            "type": change.type,
            "environment": change.environment,
            "systems": list(change.systems),
            "blast_radius": list(radius.systems),
            "partners": list(radius.partners),
            "variables": mask_data(change.variables, secret_values(root, change), names),
            **extra,
        }
    )


def _analysis(root: Path, change: ChangeRequest) -> dict[str, Any]:
    """Each measurement of the last run's analysis (query, value, verdict, time): the reason
    a wave went on or back, on the bundle's first page (issue 17). A journal that cannot be
    read is said so; the bundle, which carries that journal as it is, is built all the same."""
    try:
        return {"analysis": list(journal.last_measurements(root, change.id))}
    except GcmsError as exc:
        return {"analysis": [], "analysis_unreadable": exc.message}


def _collect(root: Path, change: ChangeRequest) -> tuple[dict[str, bytes], list[str]]:
    request = root / change.path if change.path else None
    files: dict[str, bytes] = {}
    if request is not None and request.is_file():
        files[f"request/{request.name}"] = request.read_bytes()
    state, skipped = _tree(state_dir(root) / "changes" / change.id, "state")
    approvals, skipped_approvals = _tree(approvals_dir(root, change.id), "approvals")
    files |= state | approvals | _audit_members(root, change)
    installed = requirements.recorded(root, change.id)
    if installed:  # the roles and collections requirements.yml put into each sealed run
        files["requirements.json"] = _json(installed)
    return files, skipped + skipped_approvals


def build_bundle(root: Path, ref: str, out: Path) -> BundleResult:
    """Write the evidence bundle of change `ref` to `out` (a .tar.gz) and record it."""
    change, refused = filed_change(root, ref)
    secrets = secret_values(root, change)
    collected, skipped = _collect(root, change)
    files: dict[str, bytes] = {}
    truncated: list[str] = []
    for name, data in collected.items():
        files[name], cut = _truncate(name, mask_bytes(data, secrets))
        if cut:
            truncated.append(name)
    extra = {
        "validation": refused or "valid",
        "truncated": truncated,
        "skipped": skipped,
        "limits": [FIELD_LIMIT, FILE_LIMIT],
        **_analysis(root, change),
    }
    files["summary.json"] = mask_bytes(_summary(root, change, extra), secrets)
    digest = write_bundle(out, f"{TOP_PREFIX}{change.id}", files)
    details = {"file": str(out), "manifest_sha256": digest, "members": len(files) + 1}
    trail.record(root, "evidence.built", change=change.id, details=details)
    return BundleResult(
        out, change.id, tuple(sorted(files)), tuple(truncated), tuple(skipped), digest
    )
