"""Canary analysis on real monitoring (issue 17, "Show").

One lab for the module (portal x 2, case_api x 2) with its Prometheus and an nginx exporter on
every host, and the bounded load generator sending traffic through the portal to the case API
the whole time, so every change is judged by how its hosts answer under load. Each test starts
from the estate's baseline with no alert firing.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from gcmschange import lab
from gcmschange.analysis import prometheus
from gcmschange.apply import journal, locks, push, road, verbs
from gcmschange.apply.journal import Stage, Step
from gcmschange.errors import GateRefusedError
from gcmschange.lab import loadgen, monitoring
from tests.conftest import copy_estate
from tests.lab.conftest import _isolated_env, give_origin_and_keys, require_lab, ssh
from tests.lab.test_apply import Recorder, approved, file_state, new_change

pytestmark = [pytest.mark.lab, pytest.mark.slow]
RPS = 30.0  # in all, over 4 hosts: 7.5 requests per second per host
RATE_LIMIT = 6  # per client, on the portal: about one request in five refused under RPS
PORTAL_CONF = "/etc/nginx/conf.d/gcms-portal.conf"


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_lab()
    if shutil.which("prometheus") is None or shutil.which("prometheus-nginx-exporter") is None:
        pytest.skip("needs Debian's prometheus and prometheus-nginx-exporter")
    base = tmp_path_factory.mktemp("analysis-lab")
    generator = None
    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolated_env(monkeypatch, base / "home")
        root = copy_estate(base / "estate")
        give_origin_and_keys(root, base)
        try:
            lab.up(root, ("portal", "case_api"), hosts_per_system=2)
            running = monitoring.start(root)
            address, _, port = running.probe.rpartition(":")
            generator = loadgen.LoadGenerator(
                loadgen.lab_targets(root), rps=RPS, duration=1800, metrics_at=(address, int(port))
            )
            generator.start()
            yield root
        finally:
            if generator is not None:
                generator.stop()
            lab.down(root)


def _endpoint(root: Path) -> prometheus.Endpoint:
    running = monitoring.load(root)
    assert running is not None
    return prometheus.Endpoint.of(running.prometheus)


def _firing(root: Path) -> tuple[prometheus.Series, ...]:
    return prometheus.query(_endpoint(root), 'ALERTS{alertstate="firing"}')


def _wait(what: str, ready: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.fixture
def fleet(watched: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Baseline configuration, Prometheus up, traffic flowing, no alert, no lock, no journal."""
    _isolated_env(monkeypatch, watched.parent / "home")
    monitoring.start(watched)  # a test may have stopped it
    result = push.push(
        watched,
        watched / "inventories/lab/hosts.yml",
        road.baseline(watched, "lab"),
        tmp_path / "baseline",
    )
    assert not result.failures, result.failures
    endpoint = _endpoint(watched)
    served = 'sum(rate(gcms_probe_requests_total{code="200"}[5s]))'
    _wait("traffic in Prometheus", lambda: prometheus.value(endpoint, served) > RPS / 2)
    _wait("no alert firing", lambda: not _firing(watched), timeout=90)
    for held in locks.Store(watched).list():
        locks.Store(watched).force_unlock(held.name, "test reset")
    shutil.rmtree(watched / ".gcmschange" / "changes", ignore_errors=True)
    return watched


def _portal_change(root: Path, change_id: str, **variables: object) -> str:
    return approved(
        root,
        new_change(
            root,
            change_id,
            "CHG-LAB-0001",
            title=f"Portal change {change_id}",
            systems=["portal"],
            variables=variables,
            rollout={"canary": 1, "waves": ["100%"], "failure_threshold": 0},
            verification=["verify/test_common.py", "verify/test_portal.py"],
        ),
    )


def _entries(root: Path, change: str) -> list[journal.Entry]:
    return journal.read(journal.path_of(root, change))


def _at(entries: list[journal.Entry], step: Step, status: journal.Status) -> datetime:
    found = next(e for e in entries if e.step == step and e.status == status)
    return datetime.fromisoformat(found.time)


def test_the_health_gate_refuses_while_an_alert_fires(fleet: Path) -> None:
    change = _portal_change(fleet, "CHG-LAB-1701", nginx_worker_connections=300)
    assert ssh(fleet, "portal-2", "service nginx stop").returncode == 0
    try:
        _wait("GcmsNginxDown to fire", lambda: bool(_firing(fleet)))
        with pytest.raises(
            GateRefusedError,
            match=r"alerts firing on its systems: .*GcmsNginxDown\{system=portal, host=portal-2\}",
        ):
            verbs.apply(fleet, change)
        assert verbs.status(fleet, change).state == "never run"  # refused before the lock
        assert locks.Store(fleet).list() == ()
    finally:
        assert ssh(fleet, "portal-2", "service nginx start").returncode == 0


def test_a_rate_limit_that_passes_every_check_is_caught_at_the_canary(fleet: Path) -> None:
    change = _portal_change(fleet, "CHG-LAB-1702", portal_api_rate_limit=RATE_LIMIT)
    beyond = file_state(fleet, "portal-2", PORTAL_CONF)
    seen = Recorder()
    result = verbs.apply(fleet, change, verbs.Options(reporter=seen))
    assert result.outcome == "rolled_back" and int(result.exit_code) == 4, result
    # Every testinfra check of the canary passed: only the metrics saw the refusals.
    assert [s.hosts for s in result.steps] == [("portal-1",)]
    assert result.steps[0].failed == {} and result.steps[0].verified == ("portal-1",)
    assert "analysis failed" in result.reason and "error-rate@portal failed" in result.reason
    failed = [m for a in result.analysis for m in a["measurements"] if m["verdict"] == "failed"]
    assert failed and failed[0]["check"] == "error-rate@portal"
    assert 0.05 < failed[0]["value"] < 0.6, failed[0]
    # Beyond the canary: not pushed, not touched.
    entries = _entries(fleet, change)
    pushed = {h for e in entries if e.step.action is journal.Action.PUSH for h in e.data["hosts"]}
    assert pushed == {"portal-1"}
    assert file_state(fleet, "portal-2", PORTAL_CONF) == beyond
    assert "limit_req" not in ssh(fleet, "portal-1", f"cat {PORTAL_CONF}").stdout
    # The rollback is judged by the same analysis, and the service is whole again.
    assert [a["step"] for a in result.analysis] == ["wave-1", "rollback"]
    assert result.analysis[1]["verdict"] == "successful"
    bad_push = _at(entries, Step.wave_pass(1).push, journal.BEGIN)
    restored = _at(entries, Step(Stage.ROLLBACK).push, journal.DONE)
    caught = _at(entries, Step.wave_pass(1).analysis, journal.FAILED)
    print(  # the numbers the issue asks for, in the test log (-s / --durations)
        f"\nbad push -> caught by analysis {(caught - bad_push).total_seconds():.1f}s, "
        f"-> restored {(restored - bad_push).total_seconds():.1f}s; canary error rate "
        f"{failed[0]['value']:.2f}"
    )
    assert (restored - bad_push).total_seconds() < 120
    analysed = next(
        e for e in entries if e.step == Step.wave_pass(1).analysis and e.data.get("measurements")
    )
    assert analysed.data["measurements"][0]["query"].startswith("(sum(rate(gcms_probe_requests")
    assert verbs.status(fleet, change).hosts["portal-1"].startswith("restored")
    assert locks.Store(fleet).list() == ()


def test_a_good_change_passes_analysis_at_every_wave(fleet: Path) -> None:
    change = _portal_change(fleet, "CHG-LAB-1703", nginx_worker_connections=300)
    result = verbs.apply(fleet, change)
    assert result.outcome == "applied", result
    assert [a["step"] for a in result.analysis] == ["wave-1", "wave-2"]
    assert all(a["verdict"] == "successful" for a in result.analysis)
    checks = {c["check"] for a in result.analysis for c in a["checks"]}
    assert checks == {
        "error-rate@portal",
        "latency@portal",
        "upstream-failures@portal",
        "nginx-up@portal",
    }
    start = next(e for e in _entries(fleet, change) if e.step.stage is Stage.RUN)
    assert start.data["analysis"]["active"] is True


def test_prometheus_stopped_mid_change_is_inconclusive_and_policy_fails_closed(
    fleet: Path,
) -> None:
    change = _portal_change(fleet, "CHG-LAB-1704", nginx_worker_connections=320)

    class StopsPrometheus(Recorder):
        def stage(self, text: str) -> None:
            super().stage(text)
            if text.startswith("analysis of wave-1"):
                assert monitoring.stop(fleet)

    result = verbs.apply(fleet, change, verbs.Options(reporter=StopsPrometheus()))
    assert result.outcome == "rolled_back" and int(result.exit_code) == 4, result
    assert "analysis inconclusive" in result.reason
    assert "(policy: inconclusive fail)" in result.reason
    first = result.analysis[0]["measurements"][0]
    assert first["verdict"] == "error" and "unreachable" in first["message"]
    # Going back is not blocked by an unmeasurable rollback: it was verified by its checks.
    assert result.rollback is not None and result.rollback.verified == ("portal-1",)
    assert json.dumps(result.as_dict())  # the outcome, measurements included, is JSON
