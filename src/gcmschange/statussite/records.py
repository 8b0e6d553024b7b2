"""What the status site reads from other modules' records, behind one small adapter each.

The site never parses another module's files itself when that module offers a reader; where
it must interpret records (the apply engine's audit events, verification results), the names
it relies on are the constants below, so a rename on the producing side is a one-line fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gcmschange.approvals.statements import APPROVALS_DIR, parse_statement, parse_time
from gcmschange.audit import anchor, trail
from gcmschange.audit.trail import AuditEvent
from gcmschange.errors import GcmsError
from gcmschange.model import ChangeRequest
from gcmschange.notify.change_calendar import instant_problem
from gcmschange.notify.incidents import Incident, read_incidents

# The apply engine's events (gcmschange/apply.py): `{kind}.started` opens a run (apply,
# resume, rollback); `{kind}.finished` with one of its final outcomes closes it. A
# `rollback.finished` with outcome ok/failed is the rollback *step* inside a run, not its end.
RUN_STARTED = frozenset({"apply.started", "resume.started", "rollback.started"})
RUN_FINISHED = frozenset({"apply.finished", "resume.finished", "rollback.finished"})
# Final outcome -> what the site calls it. A failed rollback keeps its locks and awaits
# `resume`, so the site keeps the run open (under change) rather than calling it over.
FINAL_OUTCOMES = {"applied": "completed", "rolled_back": "rolled_back"}
STILL_OPEN_OUTCOMES = frozenset({"rollback_failed"})
# Verification and drift results: `verified` (apply.verify_change) names its change, whose
# systems it covers; a drift event may name systems in its details ("systems" or "system").
CHECK_EVENTS = frozenset({"verified"})
CHECK_PREFIXES = ("drift.",)
CHECK_PASSED = frozenset({"ok", "passed", "clean"})

IN_PROGRESS = "in_progress"


@dataclass(frozen=True)
class Run:
    """One apply of a change, from its first event to the event that ended it."""

    change: str
    start: datetime
    end: datetime | None
    outcome: str  # "completed", "rolled_back" or IN_PROGRESS


@dataclass(frozen=True)
class CheckResult:
    """The last verification or drift result of one system."""

    system: str
    time: datetime
    passed: bool


def event_time(event: AuditEvent) -> datetime:
    return datetime.fromisoformat(event.time)


def _ending(event: AuditEvent) -> str | None:
    if event.event in RUN_FINISHED:
        return FINAL_OUTCOMES.get(event.outcome)
    return None


def runs(events: Iterable[AuditEvent]) -> list[Run]:
    """Every apply run in the log; a run with no final event is still in progress.

    A resume, or a rollback of an interrupted run, continues the open run (same start).
    """
    open_runs: dict[str, datetime] = {}
    done: list[Run] = []
    for event in events:
        if event.change is None:
            continue
        if event.event in RUN_STARTED:
            open_runs.setdefault(event.change, event_time(event))
            continue
        ending = _ending(event) if event.change in open_runs else None
        if ending is not None:
            start = open_runs.pop(event.change)
            done.append(Run(event.change, start, event_time(event), ending))
    done += [Run(change, start, None, IN_PROGRESS) for change, start in open_runs.items()]
    return sorted(done, key=lambda r: (r.start, r.change))


def _systems_of(event: AuditEvent) -> tuple[str, ...]:
    named = event.details.get("systems", event.details.get("system"))
    if isinstance(named, str):
        return (named,)
    if isinstance(named, list):
        return tuple(s for s in named if isinstance(s, str))
    return ()


def checks(
    events: Iterable[AuditEvent], systems_of_change: dict[str, tuple[str, ...]]
) -> dict[str, CheckResult]:
    """The latest verification/drift result per system (later events replace earlier)."""
    latest: dict[str, CheckResult] = {}
    for event in events:
        if event.event not in CHECK_EVENTS and not event.event.startswith(CHECK_PREFIXES):
            continue
        named = _systems_of(event) or systems_of_change.get(event.change or "", ())
        for system in named:
            latest[system] = CheckResult(system, event_time(event), event.outcome in CHECK_PASSED)
    return latest


def _time_problem(event: AuditEvent) -> str:
    try:
        moment = datetime.fromisoformat(event.time)
    except (TypeError, ValueError):
        return f"time {event.time!r} is not an ISO 8601 time"
    return instant_problem(moment)


def _dated(events: Iterable[AuditEvent], log: str) -> tuple[list[AuditEvent], list[str]]:
    """The events whose time the site can place, and a line for each one it cannot.

    A log is hash-chained, not schema-checked: a time another tool wrote (or a year 9999)
    must cost that entry its place in the history, not the whole site.
    """
    kept: list[AuditEvent] = []
    left_out: list[str] = []
    for event in events:
        why = _time_problem(event)
        if why:
            left_out.append(f"{log}: entry {event.seq} ({event.event}): {why}")
        else:
            kept.append(event)
    return kept, left_out


def read_audit(root: Path, remote: str | None = None) -> tuple[list[AuditEvent], tuple[str, ...]]:
    """This repository's audit events, plus, with `remote`, those of every other log anchored
    there (other pipelines, other controllers), oldest first; and what was left out: anchored
    logs that failed their checks, and entries whose time cannot be placed."""
    recorded = trail.read_events(root)
    local, left_out = _dated(recorded, "audit log")
    if remote is None:
        return local, tuple(left_out)
    found = anchor.remote_logs(root, remote)
    own = anchor.log_id(recorded)
    merged = list(local)
    for lid, log in found.logs.items():
        if lid != own:
            kept, bad = _dated(log, f"audit log {lid}")
            merged += kept
            left_out += bad
    return sorted(merged, key=event_time), (*found.problems, *left_out)


def incidents(root: Path) -> list[Incident]:
    return read_incidents(root)


def approved(root: Path, change: ChangeRequest, now: datetime) -> bool:
    """Whether the approval gate passes for `change` at its current digest.

    The real verdict needs the change rendered against its environment's inventory; when
    that cannot be done here (an inventory generated only on the lab, say), the site falls
    back to "a signed statement for this change, environment and not expired exists". That
    fallback can show as planned a change the gate would refuse (a stale digest): the site
    informs, it never authorises, and apply checks the gate itself.
    """
    from gcmschange.apply import road
    from gcmschange.approvals import gate
    from gcmschange.rules.policy import load_policy, required_roles

    folder = root / APPROVALS_DIR / change.id
    if not folder.is_dir() and required_roles(load_policy(root), change):
        return False  # needs approvals and has none: no need to render it to know
    try:
        digest = road.prepare(root, change.path or change.id).digest
    except GcmsError:
        return _has_current_statement(root, change, now)
    return gate.check_gate(root, change, digest, now=now).passed


def _has_current_statement(root: Path, change: ChangeRequest, now: datetime) -> bool:
    folder = root / APPROVALS_DIR / change.id
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            statement = parse_statement(path.read_text(encoding="utf-8"), str(path))
        except (GcmsError, OSError, UnicodeDecodeError):
            continue
        fits = statement.change == change.id and statement.environment == change.environment
        if fits and parse_time(statement.expires) > now:
            return True
    return False
