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

The file is JSON (never pickle: a cache can come from elsewhere): the blast radii the rows
share, and one string per file, `name TAB signature TAB key TAB verdict`, with the verdict as
compact JSON. Rows of files not checked again are written back as read, and a verdict is
decoded only when its file is asked about.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gcmschange.errors import Location, Problem
from gcmschange.model import BlastRadius
from gcmschange.paths import state_dir
from gcmschange.validate.rules import Facts

FORMAT = 3
RACY_NS = 3_000_000_000  # changed this recently: the signature may not tell a later write
_NOT_IN_A_ROW = "\t"


@dataclass(frozen=True)
class FileResult:
    file: str  # as shown in messages, relative to the repository when inside it
    key: str  # SHA-256 of the file name and content
    change_id: str | None
    problems: tuple[Problem, ...]
    facts: Facts | None
    blast: BlastRadius | None
    id_pos: tuple[int, int] | None = None  # line and column of the id, for cross-file messages

    @property
    def id_at(self) -> Location:
        line, column = self.id_pos or (1, 1)
        return Location(self.file, line, column, "$.id")


def signature(st: os.stat_result) -> str:
    """Size, times and identity of a file: any write or replacement changes it."""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"


def _problem_row(p: Problem) -> list[Any]:
    loc = p.location
    return [p.message, loc.file, loc.line, loc.column, loc.path, p.code, p.severity]


def _problem(raw: list[Any]) -> Problem:
    return Problem(raw[0], Location(raw[1], raw[2], raw[3], raw[4]), raw[5], raw[6])


def _facts(change_id: str, file: str, raw: list[Any] | None) -> Facts | None:
    if raw is None:
        return None
    kind, env, systems, start, end, line, column = raw
    return Facts(change_id, kind, env, tuple(systems), float(start), float(end), file, line, column)


def _facts_row(facts: Facts | None) -> list[Any] | None:
    """The facts without what the row says already (the id and the file name)."""
    return None if facts is None else [*facts[1:6], facts.line, facts.column]


class ResultCache:
    """Loaded once, consulted per file, written once (atomically) if anything changed."""

    def __init__(self, root: Path, context_digest: str, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = state_dir(root) / "cache" / f"validate-{context_digest[:24]}.json"
        self.rows: dict[str, list[str]] = {}  # name -> [name, signature, key, verdict]
        self.blasts: list[list[list[str]]] = []
        if enabled:
            self._read()
        self.shared: dict[int, BlastRadius] = {}
        self.blast_ids = {(tuple(s), tuple(p)): i for i, (s, p) in enumerate(self.blasts)}
        self.kept: dict[str, str] = {}  # name -> line to write back
        self.dirty = False
        self.fresh = 0
        self.old_before = time.time_ns() - RACY_NS

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_bytes())
            if data["format"] != FORMAT:
                return
            blasts = [[list(map(str, s)), list(map(str, p))] for s, p in data["blasts"]]
            lines = [line.split("\t") for line in data["rows"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return  # absent or damaged: it is only a cache
        self.blasts = blasts
        self.rows = {row[0]: row for row in lines if len(row) == 4}

    def unchanged(self, sigs: dict[str, str | None]) -> dict[str, FileResult]:
        """The verdicts of files whose stat signature is the one recorded: not read again."""
        rows = [r for f, sig in sigs.items() if sig and (r := self.rows.get(f)) and r[1] == sig]
        try:  # one decode for all of them, a third of the cost of one per row
            verdicts = json.loads("[" + ",".join(row[3] for row in rows) + "]")
        except ValueError:
            verdicts = [None] * len(rows)  # a damaged row: decode them one by one
        found = {}
        for row, verdict in zip(rows, verdicts, strict=True):
            result = self._use(row, verdict)
            if result is not None:
                found[row[0]] = result
        return found

    def get(self, file: str, key: str, sig: str | None) -> FileResult | None:
        """The verdict for this file name and content, if known; records the new signature."""
        row = self.rows.get(file)
        if row is None or row[2] != key:
            return None
        found = self._use(row)
        stable = self._stable(sig)
        if found is not None and stable != row[1]:
            self.kept[file] = "\t".join((file, stable, key, row[3]))
            self.dirty = True
        return found

    def put(self, result: FileResult, sig: str | None) -> None:
        self.fresh += 1
        if not self.enabled or _NOT_IN_A_ROW in result.file or not result.key:
            return
        facts = result.facts
        if facts is not None and (facts.id, facts.file) != (result.change_id, result.file):
            return  # a row says its id and name once; anything else is checked afresh
        blast = None if result.blast is None else self._blast_id(result.blast)
        verdict = [
            result.change_id,
            result.id_pos,
            [_problem_row(p) for p in result.problems],
            _facts_row(facts),
            blast,
        ]
        text = json.dumps(verdict, ensure_ascii=False, separators=(",", ":"))
        self.kept[result.file] = "\t".join((result.file, self._stable(sig), result.key, text))
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

    def _stable(self, sig: str | None) -> str:
        """The signature if the file is old enough for it to be trusted next time, else ""."""
        if sig is None:
            return ""
        _size, mtime, ctime, _rest = sig.split(":", 3)
        return sig if max(int(mtime), int(ctime)) < self.old_before else ""

    def _use(self, row: list[str], verdict: Any = None) -> FileResult | None:
        try:
            change_id, id_pos, problems, facts, blast = verdict or json.loads(row[3])
            found = FileResult(
                row[0],
                row[2],
                change_id,
                tuple(map(_problem, problems)) if problems else (),
                _facts(change_id, row[0], facts),
                None if blast is None else self._blast(blast),
                None if id_pos is None else (id_pos[0], id_pos[1]),
            )
        except (KeyError, TypeError, ValueError, IndexError):
            return None  # a damaged row is only a miss
        self.kept[row[0]] = "\t".join(row)
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
