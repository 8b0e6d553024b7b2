"""Per-file verdicts kept between runs, keyed by content digest, so re-validation is instant.

The cache file's name carries the context digest (estate, policy, schemas, catalogue,
specs, inventories and the validator's own code), so any change to those starts afresh;
each entry's key is the file's name and content. Checks against the clock and across
changes are never cached: they run on the cached facts every time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gcmschange.errors import Location, Problem
from gcmschange.model import BlastRadius
from gcmschange.paths import state_dir
from gcmschange.validate_rules import Facts


@dataclass(frozen=True)
class FileResult:
    file: str  # as shown in messages, relative to the repository when inside it
    key: str  # SHA-256 of the file name and content
    change_id: str | None
    problems: tuple[Problem, ...]
    facts: Facts | None
    blast: BlastRadius | None
    id_at: Location | None = None  # where the id is written, for cross-file messages


def _problem(raw: dict[str, Any]) -> Problem:
    return Problem(raw["message"], Location(**raw["location"]), raw["code"], raw["severity"])


def _facts(raw: dict[str, Any] | None) -> Facts | None:
    if raw is None:
        return None
    return Facts(
        raw["id"],
        raw["type"],
        raw["environment"],
        tuple(raw["systems"]),
        datetime.fromisoformat(raw["start"]),
        datetime.fromisoformat(raw["end"]),
        Location(**raw["where"]),
    )


def _problem_json(p: Problem) -> dict[str, Any]:
    loc = p.location
    where = {"file": loc.file, "line": loc.line, "column": loc.column, "path": loc.path}
    return {"message": p.message, "location": where, "code": p.code, "severity": p.severity}


def to_json(result: FileResult) -> dict[str, Any]:
    # By hand rather than dataclasses.asdict, which deep-copies and was a third of a cold run.
    facts = result.facts
    blast = result.blast
    return {
        "file": result.file,
        "key": result.key,
        "change_id": result.change_id,
        "problems": [_problem_json(p) for p in result.problems],
        "facts": None
        if facts is None
        else {
            "id": facts.id,
            "type": facts.type,
            "environment": facts.environment,
            "systems": list(facts.systems),
            "start": facts.start.isoformat(),
            "end": facts.end.isoformat(),
            "where": _problem_json(Problem("", facts.where))["location"],
        },
        "blast": None
        if blast is None
        else {"systems": list(blast.systems), "partners": list(blast.partners)},
        "id_at": None
        if result.id_at is None
        else _problem_json(Problem("", result.id_at))["location"],
    }


def from_json(raw: dict[str, Any]) -> FileResult:
    blast = raw["blast"]
    return FileResult(
        raw["file"],
        raw["key"],
        raw["change_id"],
        tuple(_problem(p) for p in raw["problems"]),
        _facts(raw["facts"]),
        BlastRadius(tuple(blast["systems"]), tuple(blast["partners"])) if blast else None,
        Location(**raw["id_at"]) if raw.get("id_at") else None,
    )


class ResultCache:
    """Loaded once, consulted per file, written once (atomically) if anything was added."""

    def __init__(self, root: Path, context_digest: str, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = state_dir(root) / "cache" / f"validate-{context_digest[:24]}.json"
        self.entries: dict[str, dict[str, Any]] = self._read() if enabled else {}
        self.used: set[str] = set()
        self.dirty = False
        self.fresh = 0

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}  # absent or damaged: it is only a cache
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> FileResult | None:
        raw = self.entries.get(key)
        if raw is None:
            return None
        self.used.add(key)
        try:
            return from_json(raw)
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, result: FileResult) -> None:
        self.fresh += 1
        if not self.enabled:
            return
        self.entries[result.key] = to_json(result)
        self.used.add(result.key)
        self.dirty = True

    def save(self) -> None:
        if not (self.enabled and self.dirty):
            return
        keep = {k: v for k, v in self.entries.items() if k in self.used}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for stale in self.path.parent.glob("validate-*.json"):
                if stale != self.path:
                    stale.unlink(missing_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(keep, separators=(",", ":")), encoding="utf-8")
            tmp.replace(self.path)
        except OSError:
            return  # a read-only checkout still validates, only without the speed-up


class AuditIndex:
    """Which verdict was last recorded in the audit log for each file.

    Re-validating an unchanged change to the same outcome decides nothing new, so it is not
    recorded again: each append costs two fsyncs, which would dominate validating a large
    repository. A new content or a new outcome is always recorded.
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
