"""The append-only, hash-chained audit log: every verb records what it did here.

Each entry is one JSON line carrying the SHA-256 of the previous entry, so any edited,
deleted, inserted or reordered entry breaks the chain. Appends take an exclusive lock,
are written in one `write` and fsynced before `record` returns: an event that
`record` returned for is on disk. After each append, `audit.head` (beside the log) is
replaced atomically with the last entry's seq and hash, so entries cut from the end of the
log are detected too: a hash chain alone cannot see its own tail disappear.

A process killed in the middle of an append can leave an incomplete last line (a torn
tail). `verify_chain` reports it as such; the next `record` moves it out of the way and
records that it did (`audit.tail_discarded`, with the fragment), so the chain stays whole.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from gcmschange.audit.chain import AuditReport, check_lines, parse_entry
from gcmschange.ci import env
from gcmschange.errors import GcmsError, InvalidInputError
from gcmschange.paths import audit_log

GENESIS = "0" * 64
__all__ = [
    "GENESIS",
    "AuditError",
    "AuditEvent",
    "AuditReport",
    "NewEvent",
    "as_dict",
    "entry_hash",
    "read_events",
    "record",
    "record_many",
    "select",
    "verify_chain",
]


class AuditError(InvalidInputError):
    """The audit log cannot be read or appended to (a damaged chain fails closed)."""


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
    """The GitLab user who started the job when in CI, else the local account."""
    try:
        in_ci = env.from_environ().actor
    except GcmsError:
        in_ci = None  # a malformed CI variable must not stop the audit; the local user stands in
    if in_ci:
        return in_ci
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def head_path(root: Path) -> Path:
    return audit_log(root).with_name("audit.head")


def _tail(handle: IO[bytes]) -> tuple[bytes | None, bytes]:
    """The last complete line (None if there is none) and any torn fragment after it."""
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    chunk = 4096
    while True:
        start = max(0, size - chunk)
        handle.seek(start)
        data = handle.read(size - start)
        cut = data.rfind(b"\n")
        fragment = data[cut + 1 :]
        before = data[:cut] if cut >= 0 else b""
        prev_nl = before.rfind(b"\n")
        if prev_nl >= 0 or start == 0:
            last = before[prev_nl + 1 :] if cut >= 0 else None
            return last, fragment
        chunk *= 2


def _write_head(root: Path, entry: dict[str, Any]) -> None:
    path = head_path(root)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"seq": entry["seq"], "hash": entry["hash"]}) + "\n")
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    tmp.replace(path)


def _new_entry(last: dict[str, Any] | None, fields: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "seq": (last["seq"] + 1) if last else 1,
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        **fields,
        "prev": last["hash"] if last else GENESIS,
    }
    entry["hash"] = entry_hash(entry)
    return entry


def _write(root: Path, handle: IO[bytes], entries: list[dict[str, Any]]) -> None:
    """One write and one fsync for all the lines, then the head names the last of them."""
    lines = "".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in entries)
    handle.seek(0, os.SEEK_END)
    handle.write(lines.encode("utf-8"))
    handle.flush()
    os.fsync(handle.fileno())
    _write_head(root, entries[-1])


def _append(
    root: Path, handle: IO[bytes], last: dict[str, Any] | None, fields: dict[str, Any]
) -> dict[str, Any]:
    entry = _new_entry(last, fields)
    _write(root, handle, [entry])
    return entry


def _discard_torn_tail(
    root: Path, handle: IO[bytes], last: dict[str, Any] | None, fragment: bytes, actor: str
) -> dict[str, Any]:
    handle.seek(0, os.SEEK_END)
    handle.truncate(handle.tell() - len(fragment))
    details = {
        "bytes": len(fragment),
        "sha256": hashlib.sha256(fragment).hexdigest(),
        "fragment": fragment[:4096].decode("utf-8", "replace"),
    }
    fields = _fields(
        "audit.tail_discarded", "repaired", change=None, digest=None, actor=actor, details=details
    )
    return _append(root, handle, last, fields)


def _fields(
    event: str,
    outcome: str,
    *,
    change: str | None,
    digest: str | None,
    actor: str,
    details: dict[str, Any],
) -> dict[str, Any]:
    return {
        "actor": actor,
        "event": event,
        "outcome": outcome,
        "change": change,
        "digest": digest,
        "details": details,
    }


def _parse_last(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    entry, reason = parse_entry(raw)
    if entry is None:
        raise AuditError(
            f"audit log's last entry is damaged ({reason}); nothing more can be recorded "
            "until a person looks (run `gcmschange audit verify`)"
        )
    return entry


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
    who = actor or default_actor()
    with path.open("a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            raw, fragment = _tail(handle)
            last = _parse_last(raw)
            if fragment:
                last = _discard_torn_tail(root, handle, last, fragment, who)
            fields = _fields(
                event, outcome, change=change, digest=digest, actor=who, details=details or {}
            )
            entry = _append(root, handle, last, fields)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return AuditEvent(**entry)


@dataclass(frozen=True)
class NewEvent:
    """One event for `record_many`: what `record` takes as its arguments."""

    event: str
    outcome: str = "ok"
    change: str | None = None
    digest: str | None = None
    actor: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def record_many(root: Path, events: Sequence[NewEvent]) -> list[AuditEvent]:
    """Append `events` in order under one lock, in one write and one fsync, then one head update.

    The chain is the same as that many `record` calls would make. A crash in the middle of
    the write leaves whole entries and a torn last line, which `verify_chain` reports and the
    next append moves aside, exactly as for a single event.
    """
    if not events:
        return []
    who = default_actor() if any(not e.actor for e in events) else ""
    with audit_log(root).open("a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            raw, fragment = _tail(handle)
            last = _parse_last(raw)
            if fragment:
                last = _discard_torn_tail(root, handle, last, fragment, events[0].actor or who)
            entries: list[dict[str, Any]] = []
            for new in events:
                fields = _fields(
                    new.event,
                    new.outcome,
                    change=new.change,
                    digest=new.digest,
                    actor=new.actor or who,
                    details=new.details,
                )
                last = _new_entry(last, fields)
                entries.append(last)
            _write(root, handle, entries)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return [AuditEvent(**entry) for entry in entries]


def read_events(root: Path) -> list[AuditEvent]:
    """Every complete entry, in order; a torn last line is left out (verify reports it)."""
    path = audit_log(root)
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")[:-1]
    events = []
    for number, raw in enumerate(lines, start=1):
        entry, reason = parse_entry(raw)
        if entry is None:
            raise AuditError(f"{path}: entry {number}: {reason}")
        events.append(AuditEvent(**entry))
    return events


def verify_chain(root: Path) -> AuditReport:
    """Check every link of the chain and the head record; name the first bad entry."""
    path = audit_log(root)
    data = path.read_bytes() if path.is_file() else b""
    head = head_path(root)
    return check_lines(data, head.read_bytes() if head.is_file() else None, GENESIS, entry_hash)


def select(
    events: Iterable[AuditEvent], *, change: str | None = None, event: str | None = None
) -> list[AuditEvent]:
    """Events of one change and/or whose name starts with `event` (e.g. "notice.")."""
    return [
        e
        for e in events
        if (change is None or e.change == change) and (event is None or e.event.startswith(event))
    ]


def as_dict(event: AuditEvent) -> dict[str, Any]:
    return asdict(event)
