"""What the road asks of analysis: who judges a change's waves, each wave's verdict, and the
pre-change health gate.

A `Judge` is fixed before any host is touched: the change's checks (estate defaults and its
own block, from the sealed tree), the Prometheus of its environment (policy.yml, or the lab's
own), and what the policy does with "inconclusive". Without a Prometheus, analysis is off and
says so (the plan, the journal); where policy requires one, the change does not start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gcmschange.analysis import measure, prometheus
from gcmschange.analysis.measure import AnalysisResult, Measurement, Verdict
from gcmschange.analysis.templates import Spec, load_estate_analysis, spec_for
from gcmschange.errors import GateRefusedError, GcmsError
from gcmschange.model import ChangeRequest, Host
from gcmschange.rules.policy import Inconclusive, Policy

LAB = "lab"


@dataclass(frozen=True)
class Judge:
    spec: Spec
    endpoint: prometheus.Endpoint | None  # None: no Prometheus for this environment
    inconclusive: Inconclusive
    environment: str
    clock: measure.Clock = field(default_factory=measure.RealClock)

    @property
    def active(self) -> bool:
        return self.endpoint is not None and bool(self.spec.checks)

    @property
    def off_reason(self) -> str:
        if self.endpoint is None:
            return f"no Prometheus for environment {self.environment} (policy.yml analysis)"
        if not self.spec.checks:
            return "no analysis template applies to the change's systems"
        return ""

    def blocks(self, verdict: Verdict) -> bool:
        """Does `verdict` stop the change? Failed always; inconclusive as the policy says."""
        if verdict is Verdict.FAILED:
            return True
        return verdict is Verdict.INCONCLUSIVE and self.inconclusive is Inconclusive.FAIL

    def describe(self, hosts: Sequence[Host]) -> tuple[str, ...]:
        """One line per check that would judge a wave holding `hosts` (for the plan)."""
        if not self.active:
            return (f"not judged by metrics: {self.off_reason}",)
        systems = {h.system for h in hosts}
        return tuple(
            f"{c.name}: {c.template.describe()}" for c in self.spec.for_systems(sorted(systems))
        )


def lab_endpoint(root: Path) -> str | None:
    """The running lab's Prometheus, if its monitoring was started."""
    from gcmschange.lab import monitoring  # the lab is optional; most environments never ask

    watched = monitoring.load(root)
    return watched.prometheus if watched else None


def endpoint_for(root: Path, policy: Policy, environment: str) -> prometheus.Endpoint | None:
    url = policy.analysis.prometheus.get(environment)
    if url is None and environment == LAB:
        url = lab_endpoint(root)
    return prometheus.Endpoint.of(url) if url else None


def judge_for(
    root: Path,
    content: Path,
    change: ChangeRequest,
    policy: Policy,
    clock: measure.Clock | None = None,
) -> Judge:
    """The judge of `change`: templates from the sealed tree `content`, rules from `policy`."""
    spec = spec_for(load_estate_analysis(content), change)
    endpoint = endpoint_for(root, policy, change.environment)
    inconclusive = policy.analysis.inconclusive
    return Judge(spec, endpoint, inconclusive, change.environment, clock or measure.RealClock())


def require_monitoring(judge: Judge, policy: Policy, change: ChangeRequest) -> None:
    """Refuse to start a change where policy requires analysis and nothing can measure."""
    if judge.endpoint is None and change.environment in policy.analysis.required:
        raise GateRefusedError(
            f"{change.id}: refused: policy.yml requires canary analysis in "
            f"{change.environment}, and no Prometheus is configured for it"
        )


def analyse(
    judge: Judge,
    hosts: Sequence[Host],
    wave: str,
    on_measurement: Callable[[Measurement], None] | None = None,
) -> AnalysisResult | None:
    """Bake, then measure every check of the systems in `hosts`; None when analysis is off."""
    checks = judge.spec.for_systems(sorted({h.system for h in hosts}))
    if judge.endpoint is None or not checks:
        return None
    endpoint = judge.endpoint
    hosts_of: dict[str, list[str]] = {}
    for host in hosts:
        hosts_of.setdefault(host.system, []).append(host.name)
    queries = measure.bound(checks, hosts_of, wave=wave, environment=judge.environment)
    if judge.spec.bake > 0:
        judge.clock.sleep(judge.spec.bake)

    def source(query: str) -> float:
        return prometheus.value(endpoint, query)

    return measure.run(checks, queries, source, judge.clock, on_measurement)


@dataclass(frozen=True)
class Health:
    """The pre-change health gate's finding."""

    verdict: Verdict  # successful (nothing firing), failed (alerts firing), inconclusive
    alerts: tuple[str, ...] = ()  # "AlertName{system=..., host=...}"
    message: str = ""


def health(judge: Judge, systems: Sequence[str]) -> Health | None:
    """Alerts firing now on `systems` (Prometheus' ALERTS); None without a Prometheus."""
    if judge.endpoint is None:
        return None
    names = "|".join(systems)
    query = f'ALERTS{{alertstate="firing",system=~"{names}"}}'
    try:
        found = prometheus.query(judge.endpoint, query)
    except GcmsError as exc:
        return Health(Verdict.INCONCLUSIVE, message=exc.message)
    alerts = tuple(
        f"{s.labels.get('alertname', '?')}{{system={s.labels.get('system', '?')}"
        + (f", host={s.labels['host']}" if "host" in s.labels else "")
        + "}"
        for s in found
    )
    return Health(Verdict.FAILED if alerts else Verdict.SUCCESSFUL, alerts)
