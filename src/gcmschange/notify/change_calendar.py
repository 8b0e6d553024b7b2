"""The change calendar: approved and pending changes, freezes, and the conflicts between them.

Exported as RFC 5545 iCalendar. Every time is written in its own zone with a TZID and a
VTIMEZONE that carries that zone's real transitions over the calendar's span, so a window
that crosses a DST switch lands at the right UTC instant in any client. A window the
calendar cannot hold (see `window_problem`) is left out with a warning, never a failure:
the calendar and the status site built on it must go on for every other change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import combinations
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar

from gcmschange import textsafe, yamlsafe
from gcmschange.approvals.statements import change_dir as approvals_dir
from gcmschange.errors import GcmsError, InvalidInputError, Location, Problem, ValidationError
from gcmschange.model import ChangeRequest
from gcmschange.rules.estate import Estate, load_estate
from gcmschange.rules.policy import Freeze, load_policy
from gcmschange.validate.load import find_change_file, from_document, load_change

Status = Literal["approved", "pending", "freeze"]
STATUS_FR = {"approved": "approuvé", "pending": "en attente", "freeze": "gel"}

# The instants a calendar holds. Python's datetimes stop at the years 1 and 9999, every
# window is also written in UTC and in its own zone (up to a day apart), and the VTIMEZONEs
# are drawn a year around the windows, clamped to ZONE_SPAN (the widest icalendar can walk).
EARLIEST = datetime(1, 1, 3, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)
ZONE_SPAN = (date(1, 1, 1), date(9999, 1, 1))


@dataclass(frozen=True)
class Entry:
    uid: str
    ref: str  # change id, or freeze name
    title: str
    status: Status
    environments: tuple[str, ...]
    systems: tuple[str, ...]
    start: datetime  # aware, in `timezone`
    end: datetime
    timezone: str
    impact: str = "none"
    partners: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conflict:
    first: str
    second: str
    start: datetime  # the overlap, UTC
    end: datetime
    reason: str


@dataclass(frozen=True)
class ChangeCalendar:
    environment: str | None
    entries: tuple[Entry, ...]
    conflicts: tuple[Conflict, ...]
    problems: tuple[Problem, ...]  # change files that could not be read, left out


def _zone_name(moment: datetime) -> str:
    return moment.tzinfo.key if isinstance(moment.tzinfo, ZoneInfo) else "UTC"


def zone_of(name: str) -> ZoneInfo | None:
    """The IANA zone `name`, or None when there is no such zone (or the name is no zone name)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def instant_problem(moment: datetime) -> str:
    """Why `moment` cannot be written in a calendar or on the status site ("" when it can)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return f"{moment.isoformat()} has no time zone"
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        return (
            f"{moment.isoformat()} is outside the dates a calendar or the status site can "
            f"show ({EARLIEST.date().isoformat()} to {LATEST.date().isoformat()} UTC)"
        )
    return ""


def window_problem(start: datetime, end: datetime | None, timezone: str) -> str:
    """Why a window cannot be written in a calendar or on the status site ("" when it can).

    Every instant must carry a zone and lie between EARLIEST and LATEST, and `timezone` must
    name a real zone, so converting and writing the window can never fail.
    """
    if zone_of(timezone) is None:
        return f"time zone {timezone!r} is not a known IANA zone"
    for moment in (start, end):
        why = instant_problem(moment) if moment is not None else ""
        if why:
            return why
    return ""


def _change_entry(root: Path, estate: Estate, change: ChangeRequest) -> Entry:
    folder = approvals_dir(root, change.id)
    approved = folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))
    zone = ZoneInfo(change.window.timezone)
    return Entry(
        uid=f"{change.id}@gcmschange",
        ref=change.id,
        title=change.title,
        status="approved" if approved else "pending",
        environments=(change.environment,),
        systems=change.systems,
        start=change.window.start.astimezone(zone),
        end=change.window.end.astimezone(zone),
        timezone=change.window.timezone,
        impact=change.impact.level,
        partners=estate.blast_radius(change.systems).partners,
    )


def _freeze_entry(index: int, freeze: Freeze) -> Entry:
    return Entry(
        uid=f"freeze-{index + 1}-{freeze.start:%Y%m%d}@gcmschange",
        ref=freeze.name,
        title=freeze.name,
        status="freeze",
        environments=freeze.environments,
        systems=(),
        start=freeze.start,
        end=freeze.end,
        timezone=_zone_name(freeze.start),
    )


def filed_change(root: Path, ref: str) -> tuple[ChangeRequest, str]:
    """The change as validated, or else as filed, with the first reason validation refused it.

    The calendar and the evidence must show changes that validation refuses (a change in a
    freeze, or overlapping another, is exactly what they are for), so a refusal is not fatal
    as long as the document has the shape of a change request.
    """
    try:
        return load_change(root, ref), ""
    except ValidationError as refused:
        reason = str(refused.problems[0]) if refused.problems else refused.message
        path = find_change_file(root, ref)
        display = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        data = yamlsafe.load_file(path, display, root=root).data
        if not isinstance(data, dict):
            raise
        try:
            return from_document(data, display), reason
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(f"{display}: not a change request ({reason})") from exc


def _load_changes(root: Path) -> tuple[list[ChangeRequest], list[Problem]]:
    changes, problems = [], []
    files = sorted([*(root / "changes").glob("*.yaml"), *(root / "changes").glob("*.yml")])
    for path in files:
        where = Location(file=str(path.relative_to(root)))
        try:
            change, refused = filed_change(root, str(path))
        except GcmsError as exc:
            problems.append(Problem(exc.message, where, code="unreadable", severity="warning"))
            continue
        changes.append(change)
        if refused:
            message = f"listed, but validation refuses it: {refused}"
            problems.append(Problem(message, where, code="invalid", severity="warning"))
    return changes, problems


def _overlap(a: Entry, b: Entry) -> tuple[datetime, datetime] | None:
    start, end = max(a.start, b.start), min(a.end, b.end)
    return (start.astimezone(UTC), end.astimezone(UTC)) if start < end else None


def _conflict(estate: Estate, a: Entry, b: Entry) -> Conflict | None:
    span = _overlap(a, b)
    shared_env = set(a.environments) & set(b.environments)
    if span is None or not shared_env:
        return None
    if "freeze" in (a.status, b.status):
        if a.status == b.status:
            return None
        change, freeze = (a, b) if b.status == "freeze" else (b, a)
        return Conflict(change.ref, freeze.ref, *span, f"{change.ref} falls in freeze")
    pairs = [(x, y) for x in a.systems for y in b.systems if estate.related(x, y)]
    if not pairs:
        return None
    links = ", ".join(x if x == y else f"{x} ~ {y}" for x, y in pairs)
    return Conflict(a.ref, b.ref, *span, f"overlapping windows on related systems: {links}")


def _skipped(where: str, why: str) -> Problem:
    message = f"left out, its window cannot be written: {why}"
    return Problem(message, Location(file=where), code="unrepresentable", severity="warning")


def _entries(
    root: Path, estate: Estate, changes: list[ChangeRequest]
) -> tuple[list[Entry], list[Problem]]:
    """The calendar's entries, and a warning for each change or freeze it cannot hold."""
    entries: list[Entry] = []
    problems: list[Problem] = []
    for change in changes:
        why = window_problem(change.window.start, change.window.end, change.window.timezone)
        if why:
            problems.append(_skipped(change.path or change.id, why))
        else:
            entries.append(_change_entry(root, estate, change))
    for index, freeze in enumerate(load_policy(root).freezes):
        why = window_problem(freeze.start, freeze.end, _zone_name(freeze.start))
        if why:
            problems.append(_skipped(f"policy.yml: freeze {freeze.name}", why))
        else:
            entries.append(_freeze_entry(index, freeze))
    return entries, problems


def build_calendar(root: Path, environment: str | None = None) -> ChangeCalendar:
    """Every change under changes/ and every freeze, for one environment or all of them."""
    estate = load_estate(root)
    if environment is not None and environment not in estate.environments:
        known = ", ".join(estate.environments)
        raise InvalidInputError(f"--env {environment}: unknown environment ({known})")
    changes, problems = _load_changes(root)
    entries, skipped = _entries(root, estate, changes)
    problems += skipped
    if environment is not None:
        entries = [e for e in entries if environment in e.environments]
    entries.sort(key=lambda e: (e.start, e.ref))
    conflicts = [c for a, b in combinations(entries, 2) if (c := _conflict(estate, a, b))]
    return ChangeCalendar(environment, tuple(entries), tuple(conflicts), tuple(problems))


def _event(entry: Entry, stamp: datetime) -> icalendar.Event:
    # Every TEXT value passes textsafe.ical_text here, the one place values reach the file;
    # icalendar then applies RFC 5545's escaping of backslash, ";", "," and newline.
    text = textsafe.ical_text
    event = icalendar.Event()
    label = f"{entry.status} / {STATUS_FR[entry.status]}"
    prefix = "Freeze / Gel" if entry.status == "freeze" else entry.ref
    event.add("uid", text(entry.uid))
    event.add("dtstamp", stamp.astimezone(UTC))
    event.add("dtstart", entry.start)
    event.add("dtend", entry.end)
    event.add("summary", text(f"[{label}] {prefix}: {entry.title}"))
    event.add("status", "TENTATIVE" if entry.status == "pending" else "CONFIRMED")
    event.add("categories", ["FREEZE" if entry.status == "freeze" else "CHANGE"])
    event.add("location", text(", ".join(entry.environments)))
    lines = [
        f"Environments / Environnements: {', '.join(entry.environments)}",
        f"Systems / Systèmes: {', '.join(entry.systems) or '-'}",
        f"Impact / Incidence: {entry.impact}",
        f"Partners / Partenaires: {', '.join(entry.partners) or '-'}",
    ]
    event.add("description", "\n".join(text(line) for line in lines))
    return event


def _zone_span(entries: list[Entry]) -> tuple[date, date]:
    """A year either side of the windows, within what icalendar can walk without overflow."""
    low, high = ZONE_SPAN
    first = min(e.start for e in entries).astimezone(UTC).date()
    last = max(e.end for e in entries).astimezone(UTC).date()
    year = timedelta(days=366)
    return first - min(year, first - low), last + min(year, high - last)


def to_ical(calendar: ChangeCalendar, *, now: datetime | None = None) -> bytes:
    """The calendar as RFC 5545 bytes (CRLF lines), with a VTIMEZONE per zone used."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//gcmschange//change calendar//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", "Changes / Changements")
    # VTIMEZONEs first: some clients resolve a TZID only against zones already read.
    # Callers leave out, with a warning, what window_problem refuses; checking again here
    # keeps the writer from failing on an entry built elsewhere.
    entries = [e for e in calendar.entries if not window_problem(e.start, e.end, e.timezone)]
    if entries:
        first, last = _zone_span(entries)
        for zone in sorted({e.timezone for e in entries}):
            cal.add_component(icalendar.Timezone.from_tzid(zone, first_date=first, last_date=last))
    stamp = now or datetime.now(UTC)
    for entry in entries:
        cal.add_component(_event(entry, stamp))
    data: bytes = cal.to_ical()
    return data
