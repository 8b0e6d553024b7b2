"""Checks across changes and against the clock: calendar conflicts, notice, duplicate ids.

Conflicts: two open changes (every file under changes/) whose windows overlap in the same
environment, on the same system or on systems that depend on each other. Policy decides
whether that blocks (`calendar.conflicts`, default: error in prod and staging, warning
elsewhere, because the lab's demo changes keep long overlapping windows on purpose).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime

from gcmschange.errors import Problem
from gcmschange.rules.policy import Policy
from gcmschange.validate.context import Context
from gcmschange.validate.rules import Facts


def _related_systems(ctx: Context, facts: Iterable[Facts]) -> dict[str, frozenset[str]]:
    """Each named system -> the named systems related to it. Linear in the names: each is
    looked up in the estate's graph, never compared with every other name."""
    names = {s for f in facts for s in f.systems}
    return {a: ctx.estate.related_to(a) & names for a in names}


def _shared(a: Facts, b: Facts, related: dict[str, frozenset[str]]) -> tuple[str, str] | None:
    """The first system of `a` that `b` also targets, else the first related pair."""
    order: dict[str, int] = {}
    for i, system in enumerate(b.systems):
        order.setdefault(system, i)
    same = next((s for s in a.systems if s in order), None)
    if same is not None:
        return same, same
    for x in a.systems:
        places = [order[y] for y in related.get(x, ()) if y in order]
        if places:
            return x, b.systems[min(places)]
    return None


def _overlapping(facts: list[Facts]) -> Iterator[tuple[Facts, Facts]]:
    """Pairs whose windows overlap, by a sweep over start times (not every pair)."""
    active: list[Facts] = []
    for current in sorted(facts, key=lambda f: f.start):
        active = [f for f in active if f.end > current.start]
        yield from ((earlier, current) for earlier in active)
        active.append(current)


def conflicts(ctx: Context, facts: list[Facts], targets: set[str]) -> list[tuple[str, Problem]]:
    """(file, problem) for every target file in a conflict, naming the other change."""
    related = _related_systems(ctx, facts)
    by_env: dict[str, list[Facts]] = defaultdict(list)
    for fact in facts:
        by_env[fact.environment].append(fact)
    found: list[tuple[str, Problem]] = []
    for env, group in by_env.items():
        level = ctx.policy.conflict_level(env)
        for a, b in _overlapping(group):
            pair = _shared(a, b, related)
            if pair is None or a.id == b.id:
                continue
            for this, other, (mine, theirs) in ((a, b, pair), (b, a, pair[::-1])):
                if this.file in targets:
                    how = "the same system" if mine == theirs else f"related system {theirs}"
                    msg = (
                        f"calendar conflict with {other.id}: windows overlap in {env} on "
                        f"{mine} ({how})"
                    )
                    found.append((this.file, Problem(msg, this.where, "conflict", level)))
    return found


def clock(policy: Policy, fact: Facts, now: datetime) -> list[Problem]:
    """Notice before the window (emergencies exempt) and windows already over."""
    found: list[Problem] = []
    notice = policy.min_notice(fact.environment)
    ahead = fact.start - now.timestamp()  # seconds
    if fact.end <= now.timestamp():
        found.append(Problem("window has already ended", fact.where, "window", "warning"))
    elif notice is not None and fact.type != "emergency" and ahead < notice.total_seconds():
        hours = notice.total_seconds() / 3600
        found.append(
            Problem(
                f"window starts in {ahead / 3600:.1f} h; {fact.environment} needs {hours:g} h "
                "notice",
                fact.where,
                "policy",
            )
        )
    return found


def clock_all(
    policy: Policy, facts: Iterable[Facts], targets: set[str], now: datetime
) -> Iterator[tuple[str, Problem]]:
    """(file, problem) from `clock` for every target; most changes are far ahead, so they
    are passed over with one comparison."""
    moment = now.timestamp()
    quiet_from: dict[str, float] = {}  # per environment: windows starting later are fine
    for fact in facts:
        env = fact.environment
        if env not in quiet_from:
            notice = policy.min_notice(env)
            quiet_from[env] = moment + (notice.total_seconds() if notice else 0.0)
        if fact.start >= quiet_from[env] and fact.end > moment:
            continue
        if fact.file in targets:
            yield from ((fact.file, p) for p in clock(policy, fact, now))


def duplicate_ids(facts: dict[str, list[str]]) -> dict[str, str]:
    """file -> message, for every file whose id another file uses too."""
    out: dict[str, str] = {}
    for change_id, files in facts.items():
        for file in files if len(files) > 1 else ():
            others = ", ".join(f for f in files if f != file)
            out[file] = f"id {change_id} is also used by {others}"
    return out
