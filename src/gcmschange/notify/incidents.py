"""Unplanned outages, recorded so notices and the status site tell the same story.

`.gcmschange/incidents.jsonl` is append-only: each line is the incident as known at that
moment; `read_incidents` folds the lines into the latest state of each incident.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gcmschange.errors import InvalidInputError
from gcmschange.paths import state_dir


@dataclass(frozen=True)
class Incident:
    id: str
    title_en: str
    title_fr: str
    systems: tuple[str, ...]
    partners: tuple[str, ...]
    impact: str  # "degraded" or "outage"
    start: datetime
    end: datetime | None
    timezone: str
    recorded: datetime
    description_en: str = ""
    description_fr: str = ""

    def resolved(self, now: datetime) -> bool:
        return self.end is not None and self.end <= now


def incidents_path(root: Path) -> Path:
    return state_dir(root) / "incidents.jsonl"


def incident_id(start: datetime, systems: tuple[str, ...], title_en: str) -> str:
    """Stable for the same outage, so reporting it twice updates rather than duplicates."""
    key = json.dumps([start.isoformat(), sorted(systems), title_en]).encode("utf-8")
    return f"INC-{start:%Y%m%d-%H%M}-{hashlib.sha256(key).hexdigest()[:6]}"


def _to_json(incident: Incident) -> dict[str, Any]:
    data = asdict(incident)
    for key in ("start", "end", "recorded"):
        data[key] = data[key].isoformat() if data[key] is not None else None
    return data


def _from_json(data: dict[str, Any]) -> Incident:
    end = data.get("end")
    return Incident(
        id=data["id"],
        title_en=data["title_en"],
        title_fr=data["title_fr"],
        systems=tuple(data["systems"]),
        partners=tuple(data["partners"]),
        impact=data["impact"],
        start=datetime.fromisoformat(data["start"]),
        end=datetime.fromisoformat(end) if end else None,
        timezone=data["timezone"],
        recorded=datetime.fromisoformat(data["recorded"]),
        description_en=data.get("description_en", ""),
        description_fr=data.get("description_fr", ""),
    )


def save_incident(root: Path, incident: Incident) -> None:
    line = json.dumps(_to_json(incident), sort_keys=True, ensure_ascii=False) + "\n"
    with incidents_path(root).open("ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_incidents(root: Path) -> list[Incident]:
    """The latest state of every incident, in the order they were first recorded."""
    path = incidents_path(root)
    if not path.is_file():
        return []
    latest: dict[str, Incident] = {}
    # A line without its newline is an append a crash interrupted: not a record yet.
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            incident = _from_json(json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"{path}:{number}: not an incident record ({exc})") from exc
        latest[incident.id] = incident
    return list(latest.values())


def open_on(root: Path, systems: Iterable[str], now: datetime) -> list[Incident]:
    """The incidents begun by `now`, not yet resolved, that name any of `systems`: what the
    pre-change health gate refuses to start into (issue 17)."""
    wanted = set(systems)
    return [
        i
        for i in read_incidents(root)
        if i.start <= now and not i.resolved(now) and wanted.intersection(i.systems)
    ]
