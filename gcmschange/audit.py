"""The append-only, hash-chained audit log: every verb records what it did here.

Each entry is one JSON line carrying the SHA-256 of the previous entry, so any edited,
deleted, inserted or reordered entry breaks the chain. Appends take an exclusive lock,
are written in one `write` and fsynced before `record` returns: an event that
`record` returned for is on disk.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gcmschange.paths import audit_log

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    time: str  # ISO 8601, UTC
    actor: str
    event: str  # e.g. "validated", "approval.refused", "wave.finished"
    outcome: str  # "ok", "refused", "failed", ...
    change: str | None = None
    digest: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    prev: str = GENESIS
    hash: str = ""


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of the entry without its own hash."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _last_entry(handle: Any) -> dict[str, Any] | None:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    if size == 0:
        return None
    # Read backwards just far enough to hold the last line.
    chunk = 4096
    while True:
        start = max(0, size - chunk)
        handle.seek(start)
        data: bytes = handle.read(size - start)
        lines = data.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or start == 0:
            return dict(json.loads(lines[-1]))
        chunk *= 2


def record(
    root: Path,
    event: str,
    *,
    outcome: str = "ok",
    change: str | None = None,
    digest: str | None = None,
    actor: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain and return it once it is on disk."""
    path = audit_log(root)
    with path.open("a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            last = _last_entry(handle)
            entry: dict[str, Any] = {
                "seq": (last["seq"] + 1) if last else 1,
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "actor": actor or default_actor(),
                "event": event,
                "outcome": outcome,
                "change": change,
                "digest": digest,
                "details": details or {},
                "prev": last["hash"] if last else GENESIS,
            }
            entry["hash"] = entry_hash(entry)
            line = json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n"
            handle.seek(0, os.SEEK_END)
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return AuditEvent(**entry)


def read_events(root: Path) -> list[AuditEvent]:
    path = audit_log(root)
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as handle:
        return [AuditEvent(**json.loads(line)) for line in handle if line.strip()]


def as_dict(event: AuditEvent) -> dict[str, Any]:
    return asdict(event)
