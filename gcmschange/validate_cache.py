"""Per-file verdicts kept between runs, so re-validating an unchanged repository is instant.

The cache file's name carries the context digest (estate, policy, schemas, catalogue,
specs, inventories and the validator's own code), so any change to those starts afresh.
Each row is one file: its verdict, the digest of its name and content the verdict is for,
and (like git's index) the file's stat signature when it was read, so that an unchanged
file is neither read nor hashed again. A signature is only kept when the file was last
changed well before it was read: a write within the file system's timestamp granularity
after our read would otherwise leave the same signature on new content ("racy git").
Checks against the clock and across changes are never cached: they run on the cached facts
every time.

The file is plain JSON (never pickle: a cache can come from elsewhere) in a compact shape:
rows are lists, blast radii are shared, and rows not re-checked are written back as read.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gcmschange.errors import Location, Problem
from gcmschange.model import BlastRadius
from gcmschange.paths import state_dir
from gcmschange.validate_rules import Facts

FORMAT = 2
RACY_NS = 3_000_000_000  # changed this recently: the signature may not tell a later write
Signature = tuple[int, int, int, int, int]  # size, mtime_ns, ctime_ns, inode, device
Row = list[Any]  # [file, signature | None, key, change_id, id_at, problems, facts, blast]


@dataclass(frozen=True)
class FileResult:
    file: str  # as shown in messages, relative to the repository when inside it
    key: str  # SHA-256 of the file name and content
    change_id: str | None
    problems: tuple[Problem, ...]
    facts: Facts | None
    blast: BlastRadius | None
    id_at: Location | None = None  # where the id is written, for cross-file messages


def signature(st: os.stat_result) -> Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _where(loc: Location) -> list[Any]:
    return [loc.file, loc.line, loc.column, loc.path]


def _problem_row(p: Problem) -> list[Any]:
    return [p.message, *_where(p.location), p.code, p.severity]


def _problem(raw: list[Any]) -> Problem:
    return Problem(raw[0], Location(raw[1], raw[2], raw[3], raw[4]), raw[5], raw[6])


def _facts_row(facts: Facts | None) -> list[Any] | None:
    if facts is None:
        return None
    start, end = facts.start.isoformat(), facts.end.isoformat()
    return [facts.id, facts.type, facts.environment, facts.systems, start, end, _where(facts.where)]


def _facts(raw: list[Any] | None) -> Facts | None:
    if raw is None:
        return None
    start, end = datetime.fromisoformat(raw[4]), datetime.fromisoformat(raw[5])
    return Facts(raw[0], raw[1], raw[2], tuple(raw[3]), start, end, Location(*raw[6]))


class ResultCache:
    """Loaded once, consulted per file, written once (atomically) if anything changed."""

    def __init__(self, root: Path, context_digest: str, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = state_dir(root) / "cache" / f"validate-{context_digest[:24]}.json"
        self.rows: dict[str, Row] = {}
        self.blasts: list[list[list[str]]] = []
        if enabled:
            self._read()
        self.shared: dict[int, BlastRadius] = {}
        self.blast_ids = {
            (tuple(b[0]), tuple(b[1])): i for i, b in enumerate(self.blasts) if len(b) == 2
        }
        self.kept: dict[str, Row] = {}
        self.dirty = False
        self.fresh = 0
        self.old_before = time.time_ns() - RACY_NS

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_bytes())
            if data["format"] == FORMAT:
                rows, blasts = data["rows"], data["blasts"]
                self.rows = {row[0]: row for row in rows if isinstance(row, list) and len(row) == 8}
                self.blasts = [b for b in blasts if isinstance(b, list)]
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            self.rows, self.blasts = {}, []  # absent or damaged: it is only a cache

    def unchanged(self, file: str, sig: Signature) -> FileResult | None:
        """The verdict for a file whose stat signature is the one recorded: not read again."""
        row = self.rows.get(file)
        if row is None or row[1] is None or tuple(row[1]) != sig:
            return None
        return self._use(row)

    def get(self, file: str, key: str, sig: Signature | None) -> FileResult | None:
        """The verdict for this file name and content, if known; records the new signature."""
        row = self.rows.get(file)
        if row is None or row[2] != key:
            return None
        found = self._use(row)
        if found is not None and sig is not None:
            stable = self._stable(sig)
            if stable != (None if row[1] is None else tuple(row[1])):
                self.kept[file] = [file, stable, *row[2:]]
                self.dirty = True
        return found

    def put(self, result: FileResult, sig: Signature | None) -> None:
        self.fresh += 1
        if not self.enabled:
            return
        blast = result.blast
        blast_id = None if blast is None else self._blast_id(blast)
        self.kept[result.file] = [
            result.file,
            None if sig is None else self._stable(sig),
            result.key,
            result.change_id,
            None if result.id_at is None else _where(result.id_at),
            [_problem_row(p) for p in result.problems],
            _facts_row(result.facts),
            blast_id,
        ]
        self.dirty = True

    def save(self) -> None:
        if not self.enabled or not (self.dirty or self.kept.keys() != self.rows.keys()):
            return
        data = {"format": FORMAT, "blasts": self.blasts, "rows": list(self.kept.values())}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for stale in self.path.parent.glob("validate-*.json"):
                if stale != self.path:
                    stale.unlink(missing_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
            tmp.replace(self.path)
        except OSError:
            return  # a read-only checkout still validates, only without the speed-up

    def _stable(self, sig: Signature) -> Signature | None:
        return sig if max(sig[1], sig[2]) < self.old_before else None

    def _use(self, row: Row) -> FileResult | None:
        try:
            found = FileResult(
                row[0],
                row[2],
                row[3],
                tuple(_problem(p) for p in row[5]) if row[5] else (),
                _facts(row[6]),
                None if row[7] is None else self._blast(row[7]),
                None if row[4] is None else Location(*row[4]),
            )
        except (KeyError, TypeError, ValueError, IndexError):
            return None  # a damaged row is only a miss
        self.kept[row[0]] = row
        return found

    def _blast(self, index: int) -> BlastRadius:
        found = self.shared.get(index)
        if found is None:
            systems, partners = self.blasts[index]
            found = self.shared[index] = BlastRadius(tuple(systems), tuple(partners))
        return found

    def _blast_id(self, blast: BlastRadius) -> int:
        key = (blast.systems, blast.partners)
        if key not in self.blast_ids:
            self.blast_ids[key] = len(self.blasts)
            self.blasts.append([list(blast.systems), list(blast.partners)])
        return self.blast_ids[key]


class AuditIndex:
    """Which verdict was last recorded in the audit log for each file.

    Re-validating an unchanged change to the same outcome decides nothing new, so it is not
    recorded again. A new content or a new outcome is always recorded.
    """

    def __init__(self, root: Path) -> None:
        self.path = state_dir(root) / "cache" / "audited-verdicts.json"
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            data = {}
        self.seen: dict[str, str] = data if isinstance(data, dict) else {}
        self.dirty = False

    def is_new(self, file: str, key: str, outcome: str) -> bool:
        return self.seen.get(file) != f"{key}:{outcome}"

    def mark(self, file: str, key: str, outcome: str) -> None:
        self.seen[file] = f"{key}:{outcome}"
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.seen, separators=(",", ":")), encoding="utf-8")
            tmp.replace(self.path)
        except OSError:
            return
