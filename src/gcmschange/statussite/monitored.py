"""System health as monitoring sees it, for the status site: optional and offline-safe.

The site's states come from records (changes, incidents, checks). Where policy.yml names a
Prometheus for the environment the site describes (`analysis.prometheus`), the site also
asks it, as of the site's own `now`: each system's health (scrape targets `up`, nginx's
`nginx_up`, firing `ALERTS`), and the spans when a system was down or alerting, which become
monitored outages in the history. Monitoring is a second witness, never a requirement: a
Prometheus that cannot be asked makes the health "unknown", said on the page, and the
history falls back to records; the build never fails for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gcmschange.analysis import prometheus
from gcmschange.errors import GcmsError

# A host is down when its exporter cannot be scraped or its nginx does not answer.
HOSTS_UP = 'min by (system, host) (up{system!=""})'
NGINX_UP = "min by (system, host) (nginx_up)"
FIRING = 'ALERTS{alertstate="firing"}'
# One series per system and level while it is unhealthy; "seen" marks that monitoring had
# data at all, so reading back stops at the first span it has none for (its retention).
HISTORY = (
    'label_replace(count by (system) (ALERTS{alertstate="firing"}), "level", "degraded", "", "")'
    ' or label_replace(max by (system) (up{system!=""}) == 0'
    ' or max by (system) (nginx_up) == 0, "level", "outage", "", "")'
    ' or label_replace(count by (system) (up{system!=""}), "level", "seen", "", "")'
)
STEP_SECONDS = 60.0
LOOKBACK = timedelta(days=2 * 366)  # two years: a period and the same period a year before


@dataclass(frozen=True)
class Source:
    """Where the site reads health from; `endpoint` None with `problem` when unusable."""

    environment: str
    endpoint: prometheus.Endpoint | None
    problem: str = ""
    step_seconds: float = STEP_SECONDS


@dataclass(frozen=True)
class Health:
    """One system now, as monitoring sees it."""

    system: str
    state: str  # operational, degraded, outage
    alerts: tuple[str, ...]  # alert names firing on it
    down: tuple[str, ...]  # hosts not answering


@dataclass(frozen=True)
class Outage:
    """A span when monitoring saw a system down (outage) or alerting (degraded)."""

    system: str
    start: datetime
    end: datetime
    level: str


@dataclass(frozen=True)
class Reading:
    known: bool  # False: monitoring could not be asked; health unknown
    problem: str
    health: dict[str, Health]
    outages: tuple[Outage, ...]
    complete: bool = True  # False: the history read back stopped early (an error)


def source_for(root: Path, environment: str, step_seconds: float = STEP_SECONDS) -> Source:
    """The Prometheus policy.yml names for `environment` (the lab's own for `lab`)."""
    from gcmschange.analysis.judge import endpoint_for
    from gcmschange.rules.policy import load_policy

    try:
        endpoint = endpoint_for(root, load_policy(root), environment)
    except GcmsError as exc:
        return Source(environment, None, exc.message, step_seconds)
    if endpoint is None:
        why = f"no Prometheus for environment {environment} in policy.yml (analysis.prometheus)"
        return Source(environment, None, why, step_seconds)
    return Source(environment, endpoint, "", step_seconds)


def _health(
    endpoint: prometheus.Endpoint, systems: Sequence[str], now: datetime
) -> dict[str, Health]:
    hosts: dict[str, dict[str, bool]] = {}
    for promql in (HOSTS_UP, NGINX_UP):
        for series in prometheus.query(endpoint, promql, now):
            system, host = series.labels.get("system", ""), series.labels.get("host", "")
            if system in systems:
                seen = hosts.setdefault(system, {})
                seen[host] = seen.get(host, True) and series.value >= 1
    alerts: dict[str, set[str]] = {}
    for series in prometheus.query(endpoint, FIRING, now):
        system = series.labels.get("system", "")
        if system in systems:
            alerts.setdefault(system, set()).add(series.labels.get("alertname", "?"))
    found = {}
    for system in sorted(set(hosts) | set(alerts)):
        up = hosts.get(system, {})
        down = tuple(sorted(h for h, ok in up.items() if not ok))
        firing = tuple(sorted(alerts.get(system, ())))
        state = "outage" if up and len(down) == len(up) else "operational"
        if state == "operational" and (down or firing):
            state = "degraded"
        found[system] = Health(system, state, firing, down)
    return found


def _spans(points: Iterable[float], step: float, system: str, level: str) -> list[Outage]:
    """Consecutive bad points as spans; each point stands for the step that follows it."""
    runs: list[list[float]] = []
    for moment in sorted(points):
        if runs and moment - runs[-1][-1] <= step * 1.5:
            runs[-1].append(moment)
        else:
            runs.append([moment])
    return [_outage(system, run[0], run[-1] + step, level) for run in runs]


def _outage(system: str, start: float, end: float, level: str) -> Outage:
    return Outage(
        system, datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC), level
    )


def _merge(spans: list[Outage]) -> list[Outage]:
    """Overlapping spans of one system as one, at the worse level."""
    merged: list[Outage] = []
    for span in sorted(spans, key=lambda o: (o.system, o.start)):
        if merged and merged[-1].system == span.system and span.start <= merged[-1].end:
            prev = merged[-1]
            level = "outage" if "outage" in (prev.level, span.level) else prev.level
            merged[-1] = Outage(prev.system, prev.start, max(prev.end, span.end), level)
        else:
            merged.append(span)
    return merged


def _history(
    endpoint: prometheus.Endpoint, systems: Sequence[str], now: datetime, step: float
) -> list[Outage]:
    """Every monitored outage of `systems` since monitoring has data (up to `LOOKBACK`),
    read back from `now` in pieces a range query allows, ended ones only: one still going
    on is today's health, not history."""
    points: dict[tuple[str, str], list[float]] = {}
    piece = timedelta(seconds=step * prometheus.MAX_POINTS)
    end = now
    while end > now - LOOKBACK:
        start = max(end - piece, now - LOOKBACK)
        seen = False
        for series in prometheus.query_range(endpoint, HISTORY, start, end, step):
            system, level = series.labels.get("system", ""), series.labels.get("level", "")
            if level == "seen":
                seen = seen or bool(series.points)
            elif system in systems:
                points.setdefault((system, level), []).extend(t for t, _ in series.points)
        if not seen:
            break
        end = start - timedelta(seconds=step)
    spans = [s for (sys, lvl), pts in points.items() for s in _spans(set(pts), step, sys, lvl)]
    return [o for o in _merge(spans) if o.end <= now]


def read(source: Source, systems: Sequence[str], now: datetime) -> Reading:
    """Health now and the monitored outages; never raises for monitoring's sake."""
    if source.endpoint is None:
        return Reading(False, source.problem, {}, ())
    try:
        health = _health(source.endpoint, systems, now)
    except GcmsError as exc:
        return Reading(False, exc.message, {}, ())
    try:
        outages = _history(source.endpoint, systems, now, source.step_seconds)
    except GcmsError as exc:  # today's health stands; the history falls back to records
        return Reading(True, exc.message, health, (), complete=False)
    return Reading(True, "", health, tuple(outages))
