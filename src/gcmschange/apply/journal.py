"""The apply journal: a durable record, written before each step, of what is about to happen.

`.gcmschange/changes/<id>/journal.jsonl`, one JSON line per entry, fsynced (and the folder
fsynced when the file is new) before the step it announces runs. A step is announced with
status "begin" and closed with "done" or "failed"; a step that began and never closed was
cut short, and `resume` treats its hosts as possibly touched. Every run of the change (apply,
resume, rollback) appends to the same file under its own run id.

A `kill -9` in the middle of a write leaves a torn last line: it was never fsynced, so its
step never started, and the reader ignores it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gcmschange.masking import mask_data
from gcmschange.paths import change_dir

BEGIN, DONE, FAILED = "begin", "done", "failed"


@dataclass(frozen=True)
class Entry:
    seq: int
    time: str
    run: str
    step: str  # e.g. "lock", "wave-2-push", "wave-2-verify", "rollback-push", "end"
    status: str  # begin, done, failed
    data: dict[str, Any] = field(default_factory=dict)


def path_of(root: Path, change: str) -> Path:
    return change_dir(root, change) / "journal.jsonl"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Appends entries of one run; each `write` returns once the entry is on disk."""

    def __init__(self, path: Path, run: str, secrets: Sequence[str] = ()) -> None:
        self.path = path
        self.run = run
        self.secrets = tuple(secrets)
        self._seq = len(read(path))

    def write(self, step: str, status: str, **data: Any) -> Entry:
        self._seq += 1
        entry = Entry(
            seq=self._seq,
            time=datetime.now(UTC).isoformat(timespec="milliseconds"),
            run=self.run,
            step=step,
            status=status,
            data=mask_data(data, self.secrets),
        )
        line = json.dumps(asdict(entry), sort_keys=True, ensure_ascii=False) + "\n"
        is_new = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if is_new:
            _fsync_dir(self.path.parent)
        return entry

    def begin(self, step: str, **data: Any) -> Entry:
        return self.write(step, BEGIN, **data)

    def done(self, step: str, **data: Any) -> Entry:
        return self.write(step, DONE, **data)

    def failed(self, step: str, **data: Any) -> Entry:
        return self.write(step, FAILED, **data)


def _parse(line: str) -> Entry | None:
    try:
        raw = json.loads(line)
        return Entry(**raw) if isinstance(raw, dict) else None
    except (ValueError, TypeError):
        return None


def read(path: Path) -> list[Entry]:
    """Every complete entry; a torn last line (never fsynced, so never acted on) is left out."""
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        entry = _parse(line)
        if entry is not None:
            entries.append(entry)
    return entries


def runs(entries: Iterable[Entry]) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {}
    for entry in entries:
        out.setdefault(entry.run, []).append(entry)
    return out


@dataclass(frozen=True)
class Episode:
    """The entries since the last finished run: one apply and the resumes that followed it."""

    entries: tuple[Entry, ...]

    @property
    def start(self) -> dict[str, Any]:
        first = next((e for e in self.entries if e.step == "run" and e.status == BEGIN), None)
        return dict(first.data) if first else {}

    @property
    def finished(self) -> Entry | None:
        return next((e for e in reversed(self.entries) if e.step == "end"), None)

    @property
    def last(self) -> Entry | None:
        return self.entries[-1] if self.entries else None

    def closed(self, step: str) -> Entry | None:
        """The last done/failed entry of `step`, if it ever finished."""
        return next(
            (e for e in reversed(self.entries) if e.step == step and e.status != BEGIN), None
        )

    def began(self, step: str) -> bool:
        return any(e.step == step and e.status == BEGIN for e in self.entries)

    @property
    def locks(self) -> dict[str, str]:
        taken = self.closed("lock")
        return dict(taken.data.get("refs", {})) if taken and taken.status == DONE else {}

    @property
    def touched(self) -> tuple[str, ...]:
        """Every host a push of this change may have reached (its push began)."""
        return tuple(dict.fromkeys(h for e in self.entries if _touches(e) for h in e.data["hosts"]))

    @property
    def rollback_began(self) -> bool:
        return any(e.step.startswith("rollback-") for e in self.entries)

    @property
    def failed_wave(self) -> bool:
        """A wave was judged failed (the decision is journalled before the rollback starts)."""
        return any(e.step == "decision" and e.data.get("rollback") for e in self.entries)


def _touches(e: Entry) -> bool:
    """Entries naming hosts a push of this change (or of its rollback) may have reached."""
    if "hosts" not in e.data:
        return False
    if e.step.endswith("-push") and e.status == BEGIN:
        return True
    return e.step == "decision" or (e.step == "run" and e.data.get("kind") == "rollback")


def episode(entries: Sequence[Entry]) -> Episode:
    start = 0
    for index, entry in enumerate(entries):
        if entry.step == "end" and index + 1 < len(entries):
            start = index + 1
    return Episode(tuple(entries[start:]))


def host_states(ep: Episode) -> dict[str, str]:
    """Where each host of the change stands, from the journal alone."""
    waves = ep.start.get("waves", [])
    states = {h: "pending" for wave in waves for h in wave}
    for e in ep.entries:
        kind = e.step.rsplit("-", 1)[-1]
        if kind not in {"push", "verify"}:
            continue
        rolling = e.step.startswith("rollback")
        if e.status == BEGIN:
            for h in e.data.get("hosts", ()):
                states[h] = (
                    ("rolling back" if rolling else "pushing")
                    if kind == "push"
                    else (states.get(h, "pending"))
                )
            continue
        _close(states, e, kind, rolling)
    return states


def _close(states: dict[str, str], e: Entry, kind: str, rolling: bool) -> None:
    failed = e.data.get("failed", {})
    unreachable = set(e.data.get("unreachable", ()))
    for h in e.data.get("hosts", ()):
        if h in unreachable:
            states[h] = "unreachable" + (" (not rolled back)" if rolling else "")
        elif h in failed:
            what = "rollback failed" if rolling else "failed"
            states[h] = f"{what}: {failed[h]}" if kind == "push" else f"{what}: verification"
        elif kind == "push":
            states[h] = "restored" if rolling else "applied"
        else:
            states[h] = "restored, verified" if rolling else "applied, verified"
