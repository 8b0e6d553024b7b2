"""The status site's facts: each system's state now, what is planned, what happened.

Everything is derived from the change requests, the estate graph, the audit log (apply runs,
verification and drift results), the incident records and the approvals, at one moment
`now`, so the same inputs and the same `now` always give the same site. Monitoring, when the
site is asked to read it (`monitored`), is one more input, read as of that same `now`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
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
from gcmschange.statussite import monitored, records
from gcmschange.validate.load import from_document, load_change

State = Literal["operational", "degraded", "outage", "under_change"]
STATES: tuple[State, ...] = ("operational", "degraded", "under_change", "outage")
# Outcomes of an interruption, for labels: changes end completed / rolled back / failed,
# incidents are open or resolved.
OPEN = "open"
RESOLVED = "resolved"


@dataclass(frozen=True)
class Event:
    """A change run, an incident or an outage monitoring saw, as the public may know it."""

    kind: Literal["change", "incident", "monitored"]
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
        return self.kind != "change" or self.level != "none" or self.outcome != "completed"

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
    # What monitoring says now: "" (not asked), "unknown", or operational/degraded/outage.
    monitored: str = ""
    alerts: tuple[str, ...] = ()  # alert names firing on it


@dataclass(frozen=True)
class Measure:
    key: str  # a month (YYYY-MM, UTC) or a system id
    interruptions: int
    downtime_seconds: int


@dataclass(frozen=True)
class Comparison:
    """Interruptions and downtime in a period and in the same period a year earlier: the
    measure the agency reports (its improvement plan: -33 % interruptions, -34 % downtime)."""

    key: str  # "12m" (the twelve months to now) or a month, YYYY-MM (UTC)
    start: datetime
    end: datetime
    interruptions: int
    downtime_seconds: int
    before_interruptions: int
    before_downtime_seconds: int

    @property
    def interruptions_change(self) -> int | None:
        return percent(self.interruptions, self.before_interruptions)

    @property
    def downtime_change(self) -> int | None:
        return percent(self.downtime_seconds, self.before_downtime_seconds)


def percent(now: int, before: int) -> int | None:
    """The change in whole percent; None when there is nothing a year earlier to compare."""
    return None if before == 0 else round((now - before) * 100 / before)


@dataclass(frozen=True)
class MonitoringNote:
    """What the site could learn from monitoring, for the pages to say so."""

    asked: bool = False
    known: bool = False  # health read now; False with `asked`: health unknown
    history: bool = False  # monitored outages are in the history
    problem: str = ""  # why not (internal: the command's warnings, never a page)


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
    year_on_year: tuple[Comparison, ...] = ()
    monitoring: MonitoringNote = MonitoringNote()

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
            year_on_year=year_on_year(history, self.now),
            monitoring=self.monitoring,
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


def year_before(moment: datetime) -> datetime:
    """The same moment a year earlier (29 February falls back to the 28th)."""
    try:
        return moment.replace(year=moment.year - 1)
    except ValueError:
        return moment.replace(year=moment.year - 1, day=28)


def _month_start(moment: datetime, back: int = 0) -> datetime:
    index = moment.year * 12 + moment.month - 1 - back
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _compare(key: str, start: datetime, end: datetime, events: list[Event]) -> Comparison:
    def within(a: datetime, b: datetime) -> list[Event]:
        return [e for e in events if a <= e.start < b]

    now, before = within(start, end), within(year_before(start), year_before(end))
    return Comparison(
        key,
        start,
        end,
        len(now),
        sum(e.seconds() for e in now),
        len(before),
        sum(e.seconds() for e in before),
    )


def year_on_year(history: Iterable[Event], now: datetime) -> tuple[Comparison, ...]:
    """The twelve months to `now` against the twelve before them, then each of those months
    (the current one so far) against the same month a year earlier, where either had any.
    An event counts in the period it started in, as in the monthly measures."""
    events = [e for e in history if e.interruption and e.end is not None]
    moment = now.astimezone(UTC)
    found = [_compare("12m", year_before(moment), moment, events)]
    for back in range(11, -1, -1):
        start = _month_start(moment, back)
        end = min(_month_start(moment, back - 1), moment)
        month = _compare(f"{start:%Y-%m}", start, end, events)
        if month.interruptions or month.before_interruptions:
            found.append(month)
    return tuple(found)


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


def with_health(
    systems: Iterable[SystemStatus], reading: monitored.Reading | None
) -> tuple[SystemStatus, ...]:
    """Each system's state, made worse where monitoring sees worse (never better: a change
    in progress stays under change), and what monitoring says beside it."""
    if reading is None:
        return tuple(systems)
    shown = []
    for status in systems:
        health = reading.health.get(status.id)
        if not reading.known or health is None:
            label = "unknown" if not reading.known else ""
            shown.append(replace(status, monitored=label))
            continue
        seen: State = "outage" if health.state == "outage" else "operational"
        if health.state == "degraded":
            seen = "degraded"
        worse = _RANK[seen] > _RANK[status.state]
        shown.append(
            replace(
                status,
                state=seen if worse else status.state,
                because=(*status.because, "monitoring") if worse else status.because,
                monitored=health.state,
                alerts=health.alerts,
            )
        )
    return tuple(shown)


def monitored_events(
    estate: Estate, outages: Iterable[monitored.Outage], events: Iterable[Event], now: datetime
) -> list[Event]:
    """Monitored outages as history events, except where a change or an incident on the same
    systems already counts that time: one interruption is counted once."""
    known = [e for e in events if e.interruption]

    def counted(outage: monitored.Outage) -> bool:
        return any(
            outage.system in e.affected and e.start < outage.end and (e.end or now) > outage.start
            for e in known
        )

    found = []
    for outage in outages:
        system = estate.systems.get(outage.system)
        if system is None or counted(outage):
            continue
        radius = estate.blast_radius((outage.system,))
        what = MONITORED_WHAT[outage.level]
        found.append(
            Event(
                kind="monitored",
                ref=f"MON-{outage.system}-{outage.start:%Y%m%dT%H%M%SZ}",
                title_en=f"{system.name_en}: seen by monitoring",
                title_fr=f"{system.name_fr} : constaté par la supervision",
                systems=(outage.system,),
                affected=radius.systems,
                partners=radius.partners,
                level=outage.level,
                description_en=what[0],
                description_fr=what[1],
                start=outage.start,
                end=outage.end,
                timezone="UTC",
                outcome=RESOLVED,
            )
        )
    return found


MONITORED_WHAT = {
    "outage": ("No server of the system answered.", "Aucun serveur du système ne répondait."),
    "degraded": ("Monitoring alerts fired.", "Des alertes de supervision se sont déclenchées."),
}


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


def _monitoring(
    source: monitored.Source | None, estate: Estate, moment: datetime
) -> tuple[monitored.Reading | None, MonitoringNote]:
    if source is None:
        return None, MonitoringNote()
    reading = monitored.read(source, tuple(estate.systems), moment)
    history = reading.known and reading.complete
    return reading, MonitoringNote(True, reading.known, history, reading.problem)


def gather(
    root: Path,
    now: datetime | None = None,
    remote: str | None = None,
    monitoring: monitored.Source | None = None,
) -> SiteData:
    """The site's facts as of `now` (default: the current time); later records are ignored.
    With `remote`, the history includes every audit log anchored there; with `monitoring`,
    each system's health and the outages monitoring saw, as of `now`. A record whose times
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
    reading, note = _monitoring(monitoring, estate, moment)
    if reading is not None:
        events += monitored_events(estate, reading.outages, events, moment)
    current = tuple(e for e in events if e.end is None)
    history = tuple(sorted((e for e in events if e.end is not None), key=_newest_first))
    states = system_states(estate, current, _checks(log, changes))
    return SiteData(
        now=moment,
        estate=estate,
        systems=with_health(states, reading),
        planned=_planned(root, estate, changes.values(), {r.change for r in runs}, moment),
        current=current,
        history=history,
        by_month=measures(history, month_of),
        by_system=measures(history, lambda e: e.systems),
        left_out=left_out,
        skipped=(*skipped, *skipped_incidents),
        year_on_year=year_on_year(history, moment),
        monitoring=note,
    )


def _newest_first(event: Event) -> tuple[float, str]:
    end = event.end or event.start
    return (-end.timestamp(), event.ref)


def _checks(
    log: list[AuditEvent], changes: dict[str, ChangeRequest]
) -> dict[str, records.CheckResult]:
    return records.checks(log, {cid: c.systems for cid, c in changes.items()})
