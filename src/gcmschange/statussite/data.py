"""The status site's facts: each system's state now, what is planned, what happened.

Everything is derived from the change requests, the estate graph, the audit log (apply runs,
verification and drift results), the incident records and the approvals, at one moment
`now`, so the same inputs and the same `now` always give the same site.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from gcmschange import yamlsafe
from gcmschange.audit.trail import AuditEvent
from gcmschange.errors import GcmsError, ValidationError
from gcmschange.masking import mask_text, secret_values
from gcmschange.model import ChangeRequest
from gcmschange.notify.change_calendar import window_problem
from gcmschange.notify.incidents import Incident
from gcmschange.rules.estate import Estate, load_estate
from gcmschange.statussite import records
from gcmschange.validate.load import from_document, load_change

State = Literal["operational", "degraded", "outage", "under_change"]
STATES: tuple[State, ...] = ("operational", "degraded", "under_change", "outage")
# Outcomes of an interruption, for labels: changes end completed / rolled back / failed,
# incidents are open or resolved.
OPEN = "open"
RESOLVED = "resolved"


@dataclass(frozen=True)
class Event:
    """A change run or an incident, as the public may know it."""

    kind: Literal["change", "incident"]
    ref: str
    title_en: str
    title_fr: str
    systems: tuple[str, ...]  # the systems named (change targets, incident systems)
    affected: tuple[str, ...]  # those and everything downstream (estate graph)
    partners: tuple[str, ...]
    level: str  # none, degraded, outage
    description_en: str
    description_fr: str
    start: datetime
    end: datetime | None
    timezone: str
    outcome: str  # completed, rolled_back, failed, in_progress, open, resolved

    @property
    def interruption(self) -> bool:
        """Counted in the measures: a declared impact, an incident, or a change undone."""
        return self.kind == "incident" or self.level != "none" or self.outcome != "completed"

    @property
    def anchor(self) -> str:
        """Unique within a page even when a change ran twice: its ref and its start, UTC."""
        return f"ev-{self.ref}-{self.start.astimezone(UTC):%Y%m%dT%H%M%SZ}"

    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds()) if self.end else 0


@dataclass(frozen=True)
class SystemStatus:
    id: str
    name_en: str
    name_fr: str
    state: State
    because: tuple[str, ...]  # refs of the changes and incidents that set the state


@dataclass(frozen=True)
class Measure:
    key: str  # a month (YYYY-MM, UTC) or a system id
    interruptions: int
    downtime_seconds: int


@dataclass(frozen=True)
class SiteData:
    now: datetime
    estate: Estate
    systems: tuple[SystemStatus, ...]
    planned: tuple[Event, ...]  # approved, window not yet over, not yet run
    current: tuple[Event, ...]  # changes in progress and open incidents
    history: tuple[Event, ...]  # finished runs and resolved incidents, newest first
    by_month: tuple[Measure, ...]
    by_system: tuple[Measure, ...]
    left_out: tuple[str, ...] = ()  # anchored audit logs that failed their checks
    skipped: tuple[str, ...] = ()  # changes and incidents whose times cannot be shown

    def for_partner(self, partner: str) -> SiteData:
        """Only what affects `partner`: its systems, and events whose blast radius reaches it."""
        consumes = set(self.estate.partners[partner].consumes)

        def mine(events: tuple[Event, ...]) -> tuple[Event, ...]:
            return tuple(e for e in events if partner in e.partners)

        history = mine(self.history)
        return SiteData(
            now=self.now,
            estate=self.estate,
            systems=tuple(s for s in self.systems if s.id in consumes),
            planned=mine(self.planned),
            current=mine(self.current),
            history=history,
            by_month=measures(history, month_of),
            by_system=measures(history, lambda e: tuple(s for s in e.systems if s in consumes)),
            left_out=self.left_out,
            skipped=self.skipped,
        )


def _masked(change: ChangeRequest, root: Path, text: str) -> str:
    return mask_text(text, secret_values(root, change))


def _title_fr(estate: Estate, change: ChangeRequest) -> str:
    given = change.raw.get("title_fr")
    if isinstance(given, str) and given:
        return given
    return ", ".join(estate.systems[s].name_fr for s in change.systems if s in estate.systems)


def change_event(
    root: Path, estate: Estate, change: ChangeRequest, run: records.Run | None
) -> Event:
    radius = estate.blast_radius(tuple(s for s in change.systems if s in estate.systems))
    return Event(
        kind="change",
        ref=change.id,
        title_en=_masked(change, root, change.title),
        title_fr=_masked(change, root, _title_fr(estate, change)),
        systems=change.systems,
        affected=radius.systems,
        partners=radius.partners,
        level=change.impact.level,
        description_en=_masked(change, root, change.impact.description_en),
        description_fr=_masked(change, root, change.impact.description_fr),
        start=run.start if run else change.window.start,
        end=run.end if run else change.window.end,
        timezone=change.window.timezone,
        outcome=run.outcome if run else "planned",
    )


def incident_event(estate: Estate, incident: Incident, now: datetime) -> Event:
    radius = estate.blast_radius(tuple(s for s in incident.systems if s in estate.systems))
    return Event(
        kind="incident",
        ref=incident.id,
        title_en=incident.title_en,
        title_fr=incident.title_fr,
        systems=incident.systems,
        affected=radius.systems,
        partners=radius.partners,
        level=incident.impact,
        description_en=incident.description_en,
        description_fr=incident.description_fr,
        start=incident.start,
        end=incident.end if incident.resolved(now) else None,
        timezone=incident.timezone,
        outcome=RESOLVED if incident.resolved(now) else OPEN,
    )


def _lenient(root: Path, path: Path) -> ChangeRequest:
    rel = str(path.relative_to(root))
    return from_document(yamlsafe.load_file(path, rel, root=root).data, rel)


def load_changes(root: Path) -> list[ChangeRequest]:
    """Every change request the site can describe.

    A change that ran stays in the history even if it no longer validates (a later change
    may conflict with its window, say), so a file validation refuses is read as written;
    only one that cannot be read at all is left out, for `validate` to report.
    """
    found = []
    for path in sorted((root / "changes").glob("*.yaml")):
        try:
            found.append(load_change(root, str(path.relative_to(root))))
        except ValidationError:
            try:
                found.append(_lenient(root, path))
            except (GcmsError, KeyError, TypeError, ValueError, AttributeError):
                continue
        except GcmsError:
            continue
    return found


def measures(
    events: Iterable[Event], keys: Callable[[Event], tuple[str, ...]]
) -> tuple[Measure, ...]:
    """Interruptions and their downtime, grouped by `keys(event)` (one event may count twice)."""
    counts: dict[str, list[int]] = {}
    for event in events:
        if not event.interruption or event.end is None:
            continue
        for key in keys(event):
            total = counts.setdefault(key, [0, 0])
            total[0] += 1
            total[1] += event.seconds()
    return tuple(Measure(k, n, s) for k, (n, s) in sorted(counts.items()))


def month_of(event: Event) -> tuple[str, ...]:
    return (f"{event.start.astimezone(UTC):%Y-%m}",)


_RANK: dict[State, int] = {"operational": 0, "degraded": 1, "under_change": 2, "outage": 3}


def _state_from(event: Event, system: str) -> State | None:
    if system in event.systems:
        if event.kind == "change":
            return "under_change"
        return "outage" if event.level == "outage" else "degraded"
    if system in event.affected and event.level != "none":
        return "degraded"
    return None


def system_states(
    estate: Estate, current: Iterable[Event], checks: dict[str, records.CheckResult]
) -> tuple[SystemStatus, ...]:
    """The worst state any current event or the last failed check gives each system."""
    states = []
    for sid, system in estate.systems.items():
        state: State = "operational"
        because: list[str] = []
        for event in current:
            found = _state_from(event, sid)
            if found is not None:
                because.append(event.ref)
                state = max(state, found, key=_RANK.__getitem__)
        check = checks.get(sid)
        if check is not None and not check.passed:
            because.append("verification")
            state = max(state, "degraded", key=_RANK.__getitem__)
        states.append(SystemStatus(sid, system.name_en, system.name_fr, state, tuple(because)))
    return tuple(states)


def _planned(
    root: Path, estate: Estate, changes: Iterable[ChangeRequest], ran: set[str], now: datetime
) -> tuple[Event, ...]:
    upcoming = [
        c
        for c in changes
        if c.id not in ran and c.window.end > now and records.approved(root, c, now)
    ]
    events = [change_event(root, estate, c, None) for c in upcoming]
    return tuple(sorted(events, key=lambda e: (e.start, e.ref)))


def _showable_changes(root: Path) -> tuple[dict[str, ChangeRequest], list[str]]:
    """The changes the site can show, by id, and a line for each one whose window it cannot."""
    changes: dict[str, ChangeRequest] = {}
    skipped: list[str] = []
    for change in load_changes(root):
        window = change.window
        why = window_problem(window.start, window.end, window.timezone)
        if why:
            skipped.append(f"{change.path or change.id}: {why}")
        else:
            changes[change.id] = change
    return changes, skipped


def _showable_incidents(root: Path, now: datetime) -> tuple[list[Incident], list[str]]:
    """The incidents begun by `now`, and a line for each record whose times cannot be shown."""
    shown: list[Incident] = []
    skipped: list[str] = []
    for incident in records.incidents(root):
        why = window_problem(incident.start, incident.end, incident.timezone)
        if why:
            skipped.append(f"incident {incident.id}: {why}")
        elif incident.start <= now:
            shown.append(incident)
    return shown, skipped


def gather(root: Path, now: datetime | None = None, remote: str | None = None) -> SiteData:
    """The site's facts as of `now` (default: the current time); later records are ignored.
    With `remote`, the history includes every audit log anchored there. A record whose times
    cannot be shown (a window in the year 9999, a time without a zone) is left out and named
    in `skipped` or `left_out`: the site is published for everything else."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    estate = load_estate(root)
    changes, skipped = _showable_changes(root)
    recorded, left_out = records.read_audit(root, remote)
    log = [e for e in recorded if records.event_time(e) <= moment]
    runs = [r for r in records.runs(log) if r.change in changes]
    events = [change_event(root, estate, changes[r.change], r) for r in runs]
    incidents, skipped_incidents = _showable_incidents(root, moment)
    events += [incident_event(estate, i, moment) for i in incidents]
    current = tuple(e for e in events if e.end is None)
    history = tuple(sorted((e for e in events if e.end is not None), key=_newest_first))
    return SiteData(
        now=moment,
        estate=estate,
        systems=system_states(estate, current, _checks(log, changes)),
        planned=_planned(root, estate, changes.values(), {r.change for r in runs}, moment),
        current=current,
        history=history,
        by_month=measures(history, month_of),
        by_system=measures(history, lambda e: e.systems),
        left_out=left_out,
        skipped=(*skipped, *skipped_incidents),
    )


def _newest_first(event: Event) -> tuple[float, str]:
    end = event.end or event.start
    return (-end.timestamp(), event.ref)


def _checks(
    log: list[AuditEvent], changes: dict[str, ChangeRequest]
) -> dict[str, records.CheckResult]:
    return records.checks(log, {cid: c.systems for cid, c in changes.items()})
