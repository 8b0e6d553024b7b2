"""Measuring: each check's query taken `count` times, `interval` apart, and judged.

A measurement is successful, failed, inconclusive (no data, or neither condition held while
both were given) or an error (Prometheus could not answer). As with Argo Rollouts, a check
fails once its failed measurements exceed its failure limit, and is inconclusive once its
inconclusive and error measurements exceed its inconclusive limit; it stops measuring as soon
as its verdict cannot change. An unreachable Prometheus is therefore "inconclusive", never a
pass: what happens then is the policy's to say (`rules.policy.AnalysisRules`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from gcmschange.analysis import prometheus
from gcmschange.analysis.templates import Check, Template, host_pattern


class Verdict(StrEnum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"  # a measurement only: Prometheus could not give a number


@dataclass(frozen=True)
class Measurement:
    check: str  # template@system
    query: str  # as sent, arguments filled in
    value: float | None  # None when there was no number (error)
    verdict: Verdict
    time: str  # ISO 8601, UTC
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        shown = None if self.value is None or math.isnan(self.value) else self.value
        return {
            "check": self.check,
            "query": self.query,
            "value": shown,
            "verdict": self.verdict.value,
            "time": self.time,
            "message": self.message,
        }


@dataclass(frozen=True)
class CheckResult:
    check: str
    verdict: Verdict
    measurements: tuple[Measurement, ...]


@dataclass(frozen=True)
class AnalysisResult:
    verdict: Verdict  # successful, failed or inconclusive
    checks: tuple[CheckResult, ...]
    seconds: float = 0.0

    @property
    def measurements(self) -> tuple[Measurement, ...]:
        return tuple(m for c in self.checks for m in c.measurements)

    def summary(self) -> str:
        bad = [c for c in self.checks if c.verdict is not Verdict.SUCCESSFUL]
        if not bad:
            return f"analysis {self.verdict.value} ({len(self.checks)} check(s))"
        parts = []
        for check in bad:
            last = check.measurements[-1] if check.measurements else None
            seen = "no measurement" if last is None else _shown(last)
            parts.append(f"{check.check} {check.verdict.value} ({seen})")
        return f"analysis {self.verdict.value}: " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "seconds": round(self.seconds, 2),
            "checks": [{"check": c.check, "verdict": c.verdict.value} for c in self.checks],
            "measurements": [m.as_dict() for m in self.measurements],
        }


def _shown(m: Measurement) -> str:
    if m.value is None:
        return m.message
    return f"last value {m.value:.4g}" if not math.isnan(m.value) else "no data"


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


Source = Callable[[str], float]  # PromQL -> the query's one number (PrometheusError if none)


def judge(template: Template, value: float) -> Verdict:
    """Argo's rules: failure first; with only one condition, the other outcome is implied."""
    if math.isnan(value):
        return Verdict.INCONCLUSIVE  # no data says nothing about the change
    if template.failure is not None and template.failure.holds(value):
        return Verdict.FAILED
    if template.success is not None:
        if template.success.holds(value):
            return Verdict.SUCCESSFUL
        return Verdict.INCONCLUSIVE if template.failure is not None else Verdict.FAILED
    return Verdict.SUCCESSFUL


@dataclass
class _Running:
    """One check while it is measured (mutable: the run's own bookkeeping)."""

    order: int
    check: Check
    query: str
    due: float
    taken: list[Measurement] = field(default_factory=list)

    def count(self, *verdicts: Verdict) -> int:
        return sum(1 for m in self.taken if m.verdict in verdicts)

    @property
    def verdict(self) -> Verdict | None:
        """Decided, or None while more measurements could still change it."""
        template = self.check.template
        if self.count(Verdict.FAILED) > template.failure_limit:
            return Verdict.FAILED
        if self.count(Verdict.INCONCLUSIVE, Verdict.ERROR) > template.inconclusive_limit:
            return Verdict.INCONCLUSIVE
        if len(self.taken) >= template.count:
            return Verdict.SUCCESSFUL
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _measure(running: _Running, source: Source) -> Measurement:
    name = running.check.name
    try:
        value = source(running.query)
    except prometheus.PrometheusError as exc:
        return Measurement(name, running.query, None, Verdict.ERROR, _now(), exc.message)
    verdict = judge(running.check.template, value)
    note = "no data" if math.isnan(value) else ""
    return Measurement(name, running.query, value, verdict, _now(), note)


def bound(checks: Sequence[Check], hosts_of: Mapping[str, Sequence[str]], **args: str) -> list[str]:
    """Each check's query with its arguments: the system, its hosts in the wave, the rest."""
    return [
        c.template.bind({**args, "system": c.system, "hosts": host_pattern(hosts_of[c.system])})
        for c in checks
    ]


def run(
    checks: Sequence[Check],
    queries: Sequence[str],
    source: Source,
    clock: Clock | None = None,
    on_measurement: Callable[[Measurement], None] | None = None,
) -> AnalysisResult:
    """Measure every check on its own interval until each is decided; the worst verdict wins."""
    tick = clock or RealClock()
    began = tick.monotonic()
    pending = [
        _Running(i, c, q, began) for i, (c, q) in enumerate(zip(checks, queries, strict=True))
    ]
    done: list[_Running] = []
    while pending:
        current = min(pending, key=lambda r: r.due)
        wait = current.due - tick.monotonic()
        if wait > 0:
            tick.sleep(wait)
        measured = _measure(current, source)
        current.taken.append(measured)
        if on_measurement is not None:
            on_measurement(measured)
        current.due += current.check.template.interval
        if current.verdict is not None:
            pending.remove(current)
            done.append(current)
    results = tuple(
        CheckResult(r.check.name, r.verdict or Verdict.INCONCLUSIVE, tuple(r.taken))
        for r in sorted(done, key=lambda r: r.order)
    )
    return AnalysisResult(overall(r.verdict for r in results), results, tick.monotonic() - began)


def overall(verdicts: Iterable[Verdict]) -> Verdict:
    found = set(verdicts)
    if Verdict.FAILED in found:
        return Verdict.FAILED
    if Verdict.INCONCLUSIVE in found or Verdict.ERROR in found:
        return Verdict.INCONCLUSIVE
    return Verdict.SUCCESSFUL
