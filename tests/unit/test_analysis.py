"""Canary analysis (issue 17): conditions, templates, measuring; against a real Prometheus
(Debian's, started on a loopback port with its own storage, scraping a metrics page this
test serves) where one is installed."""

from __future__ import annotations

import math
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gcmschange.analysis import measure, prometheus
from gcmschange.analysis.expr import Condition, compile_condition
from gcmschange.analysis.measure import Verdict
from gcmschange.analysis.templates import (
    Check,
    Template,
    from_estate_document,
    host_pattern,
    load_estate_analysis,
    parse,
    spec_for,
)
from gcmschange.errors import InvalidInputError
from gcmschange.lab import loadgen, monitoring
from gcmschange.model import ChangeRequest
from gcmschange.resources import reference_estate
from gcmschange.rules.policy import Inconclusive, from_document
from gcmschange.validate.load import from_document as change_from_document

# --- the condition language ---


@pytest.mark.parametrize(
    ("text", "value", "holds"),
    [
        ("result < 0.05", 0.01, True),
        ("result < 0.05", 0.2, False),
        ("result >= 0.95 && !isNaN(result)", math.nan, False),
        ("isNaN(result) or result > 2", math.nan, True),
        ("(result - 1) * 100 <= 5", 1.04, True),
        ("not (result == 1)", 1.0, False),
        ("result / 0 > 1000", 1.0, True),  # +Inf, as PromQL gives
        ("-result < 0 and true", 3.0, True),
    ],
)
def test_conditions_hold_as_written(text: str, value: float, holds: bool) -> None:
    assert compile_condition(text, "t").holds(value) is holds


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("result", "gives a number, not true or false"),
        ("result < 1 < 2", "chained comparisons need 'and'"),
        ("__import__('os').system('id')", "unexpected"),
        ("__import__(result)", "unknown name '__import__'"),
        ("result.__class__", "unexpected"),
        ("true + 1", "expected a number, found a boolean"),
        ("result <", "expected more, found 'the end'"),
        ("", "empty condition"),
    ],
)
def test_conditions_that_cannot_work_are_refused_at_compile_time(text: str, why: str) -> None:
    with pytest.raises(InvalidInputError, match=r"^t: ") as caught:
        compile_condition(text, "t")
    assert why in caught.value.message


# --- templates, defaults and a change's overrides ---


def _change(
    analysis: dict[str, object] | None = None, systems: tuple[str, ...] = ("portal",)
) -> ChangeRequest:
    doc: dict[str, object] = {
        "id": "CHG-T-1",
        "title": "t",
        "type": "normal",
        "requester": "rm-alice",
        "environment": "lab",
        "systems": list(systems),
        "playbook": "configure",
        "window": {"start": "2026-01-01T00:00", "end": "2026-01-02T00:00", "timezone": "UTC"},
    }
    if analysis is not None:
        doc["analysis"] = analysis
    return change_from_document(doc, "changes/CHG-T-1.yaml")


def test_the_reference_estate_gives_portal_and_case_api_their_defaults() -> None:
    estate = load_estate_analysis(reference_estate())
    spec = spec_for(estate, _change(systems=("portal", "case_api")))
    names = [c.name for c in spec.checks]
    assert names[:2] == ["error-rate@portal", "latency@portal"]
    assert "error-rate@case_api" in names
    assert spec.bake == 10


def test_a_change_overrides_a_named_template_and_adds_its_own() -> None:
    estate = load_estate_analysis(reference_estate())
    spec = spec_for(
        estate,
        _change(
            {
                "bake_seconds": 30,
                "templates": {
                    "error-rate": {"success_condition": "result < 0.01"},
                    "queue-depth": {"query": "max(q)", "failure_condition": "result > 5"},
                },
            }
        ),
    )
    by_name = {c.name: c.template for c in spec.checks}
    assert by_name["error-rate@portal"].success is not None
    assert by_name["error-rate@portal"].success.text == "result < 0.01"
    assert by_name["error-rate@portal"].count == 3  # the estate's other fields stay
    assert "queue-depth@portal" in by_name
    assert spec.bake == 30
    # Approvers read, in the plan, every judge the change itself changed or brought: a query
    # of vector(0) would otherwise read like the estate's own error rate.
    assert "'max(q)' (ADDED BY THIS CHANGE)" in by_name["queue-depth@portal"].describe()
    changed = by_name["error-rate@portal"].describe()
    assert "(CHANGED BY THIS CHANGE)" in changed and "query '" in changed
    assert "BY THIS CHANGE" not in by_name["latency@portal"].describe()


def test_use_chooses_exactly_and_an_empty_list_turns_analysis_off() -> None:
    estate = load_estate_analysis(reference_estate())
    assert [c.name for c in spec_for(estate, _change({"use": ["nginx-up"]})).checks] == [
        "nginx-up@portal"
    ]
    assert spec_for(estate, _change({"use": []})).checks == ()
    with pytest.raises(InvalidInputError, match=r"\$\.analysis\.use\[0\]: no template named"):
        spec_for(estate, _change({"use": ["nope"]}))


def test_templates_refuse_what_cannot_be_measured() -> None:
    with pytest.raises(InvalidInputError, match="unknown argument"):
        parse("x", {"query": "up{a='{{ args.nope }}'}", "success_condition": "result > 0"}, "w")
    with pytest.raises(InvalidInputError, match="needs a success_condition or a failure"):
        parse("x", {"query": "up"}, "w")
    with pytest.raises(InvalidInputError, match=r"w\.count: expected a whole number >= 1"):
        parse("x", {"query": "up", "count": 0, "success_condition": "result > 0"}, "w")
    with pytest.raises(InvalidInputError, match=r"\$\.systems\.portal\.analysis\[0\]"):
        from_estate_document({"systems": {"portal": {"analysis": ["missing"]}}})


def test_arguments_go_into_queries_as_plain_names_only() -> None:
    template = Template("t", 'up{host=~"{{ args.hosts }}",system="{{ args.system }}"}')
    args = {"system": "portal", "hosts": host_pattern(["portal-1", "a.b"]), "wave": "1"}
    assert template.bind({**args, "environment": "lab"}) == (
        'up{host=~"portal-1|a\\\\.b",system="portal"}'
    )
    with pytest.raises(InvalidInputError):
        host_pattern(['x"}) or vector(1) #'])


def test_policy_fails_closed_unless_it_says_proceed() -> None:
    assert from_document({}).analysis.inconclusive is Inconclusive.FAIL
    doc = {"analysis": {"inconclusive": "proceed", "prometheus": {"prod": "http://127.0.0.1:9"}}}
    assert from_document(doc).analysis.inconclusive is Inconclusive.PROCEED


def test_the_policy_names_any_http_server_without_credentials_in_the_url() -> None:
    assert prometheus.Endpoint.of("http://127.0.0.1:9090/").url == "http://127.0.0.1:9090"
    assert (
        prometheus.Endpoint.of("https://prometheus.ops.example:9090/prom/").url
        == "https://prometheus.ops.example:9090/prom"
    )
    for bad in ("ftp://127.0.0.1", "http://user:pw@prometheus:9090", "http://p:9090/?x=1", "p"):
        with pytest.raises(InvalidInputError) as refused:
            prometheus.Endpoint.of(bad)
        assert "pw" not in refused.value.message


# --- measuring, with a fake clock and source ---


@dataclass
class FakeClock:
    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _check(
    *,
    name: str = "err",
    interval: float = 2,
    count: int = 3,
    failure_limit: int = 0,
    failure: Condition | None = None,
) -> Check:
    success = compile_condition("result < 0.05", "s")
    template = Template(name, "q", interval, count, success, failure, failure_limit)
    return Check(template, "portal")


def test_a_check_fails_at_the_first_failure_beyond_its_limit_and_stops_measuring() -> None:
    values = iter([0.01, 0.2, 0.3])
    clock = FakeClock()
    result = measure.run([_check()], ["q"], lambda _q: next(values), clock)
    assert result.verdict is Verdict.FAILED
    assert [m.verdict for m in result.measurements] == [Verdict.SUCCESSFUL, Verdict.FAILED]
    assert clock.slept == [2]
    assert "err@portal failed (last value 0.2)" in result.summary()


def test_a_failure_limit_tolerates_that_many() -> None:
    values = iter([0.2, 0.01, 0.01])
    result = measure.run([_check(failure_limit=1)], ["q"], lambda _q: next(values), FakeClock())
    assert result.verdict is Verdict.SUCCESSFUL
    assert len(result.measurements) == 3


def test_no_data_and_an_unreachable_prometheus_are_inconclusive_never_a_pass() -> None:
    def down(_query: str) -> float:
        raise prometheus.PrometheusError("prometheus http://127.0.0.1:1: unreachable")

    result = measure.run([_check()], ["q"], down, FakeClock())
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.measurements[0].verdict is Verdict.ERROR
    assert result.measurements[0].value is None
    nodata = measure.run([_check()], ["q"], lambda _q: math.nan, FakeClock())
    assert nodata.verdict is Verdict.INCONCLUSIVE


def test_both_conditions_and_neither_holds_is_inconclusive() -> None:
    template = _check(failure=compile_condition("result > 0.5", "f")).template
    assert measure.judge(template, 0.3) is Verdict.INCONCLUSIVE
    assert measure.judge(template, 0.9) is Verdict.FAILED
    assert measure.judge(template, 0.0) is Verdict.SUCCESSFUL


def test_checks_run_on_their_own_intervals_and_the_worst_verdict_wins() -> None:
    fast, slow = _check(interval=1, count=4), _check(name="lat", interval=3, count=2)
    seen: list[str] = []
    clock = FakeClock()

    def source(query: str) -> float:
        seen.append(f"{query}@{clock.now:g}")
        return 0.01 if query == "a" else 0.9

    result = measure.run([fast, slow], ["a", "b"], source, clock)
    assert result.verdict is Verdict.FAILED
    assert seen == ["a@0", "b@0", "a@1", "a@2", "a@3"]
    assert [c.verdict for c in result.checks] == [Verdict.SUCCESSFUL, Verdict.FAILED]


# --- against a real Prometheus ---


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Exporter:
    """A metrics page this test serves and edits, scraped by the real Prometheus."""

    text: str = ""


@dataclass(frozen=True)
class RealPrometheus:
    endpoint: prometheus.Endpoint
    exporter: Exporter
    running: monitoring.Monitoring


@pytest.fixture
def real_prometheus(tmp_path: Path) -> Iterator[RealPrometheus]:
    if shutil.which("prometheus") is None:
        pytest.skip("needs Debian's prometheus (apt-get install prometheus)")
    exporter = Exporter('gcms_test_error_ratio{system="portal",host="portal-1"} 0.2\n')

    server = loadgen.metrics_server(("127.0.0.1", 0), lambda: exporter.text)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings: dict[str, object] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [
            {
                "job_name": "test",
                "static_configs": [{"targets": [f"127.0.0.1:{server.server_address[1]}"]}],
            }
        ],
    }
    running = None
    try:
        running = monitoring.spawn_prometheus(
            tmp_path / "prom", f"127.0.0.1:{_free_port()}", settings
        )
        yield RealPrometheus(prometheus.Endpoint.of(running.prometheus), exporter, running)
    finally:
        if running is not None:
            monitoring.stop_process(running)
        server.shutdown()
        server.server_close()


def _wait_for_value(endpoint: prometheus.Endpoint, query: str, want: float) -> None:
    for _ in range(100):
        got = prometheus.value(endpoint, query)
        if got == want:
            return
        threading.Event().wait(0.1)
    raise AssertionError(f"{query} never became {want} (last {got})")


@pytest.mark.slow
def test_a_real_prometheus_judges_fails_recovers_and_goes_inconclusive_when_stopped(
    real_prometheus: RealPrometheus,
) -> None:
    endpoint = real_prometheus.endpoint
    template = parse(
        "error-ratio",
        {
            "query": (
                'max(gcms_test_error_ratio{system="{{ args.system }}",host=~"{{ args.hosts }}"})'
            ),
            "interval_seconds": 0.2,
            "count": 2,
            "success_condition": "result < 0.05",
        },
        "test",
    )
    check = Check(template, "portal")
    queries = measure.bound([check], {"portal": ["portal-1"]}, wave="1", environment="lab")
    _wait_for_value(endpoint, queries[0], 0.2)

    def source(query: str) -> float:
        return prometheus.value(endpoint, query)

    bad = measure.run([check], queries, source)
    assert bad.verdict is Verdict.FAILED
    assert bad.measurements[0].value == pytest.approx(0.2)
    assert bad.measurements[0].query == queries[0]

    real_prometheus.exporter.text = 'gcms_test_error_ratio{system="portal",host="portal-1"} 0.01\n'
    _wait_for_value(endpoint, queries[0], 0.01)
    assert measure.run([check], queries, source).verdict is Verdict.SUCCESSFUL

    no_data = measure.bound([check], {"portal": ["portal-2"]}, wave="1", environment="lab")
    assert measure.run([check], no_data, source).verdict is Verdict.INCONCLUSIVE

    with pytest.raises(prometheus.PrometheusError, match="parse error"):
        prometheus.value(endpoint, "sum(")

    monitoring.stop_process(real_prometheus.running)
    stopped = measure.run([check], queries, source)
    assert stopped.verdict is Verdict.INCONCLUSIVE
    assert stopped.measurements[0].verdict is Verdict.ERROR
    assert "unreachable" in stopped.measurements[0].message


# --- in the journal ---


def test_a_failed_wave_analysis_is_a_failed_wave_for_resume(tmp_path: Path) -> None:
    from gcmschange.apply import journal
    from gcmschange.apply.journal import Stage, Step

    assert str(Step.wave_pass(2).analysis) == "wave-2-analysis"
    assert Step.parse("wave-2-analysis") == Step.wave_pass(2).analysis
    assert Step.parse("rollback-analysis") == Step(Stage.ROLLBACK).analysis
    book = journal.Journal(tmp_path / "journal.jsonl", "r1")
    book.begin(Step(Stage.RUN), kind="apply", waves=[["portal-1"]], threshold=0)
    book.begin(Step.wave_pass(1).push, hosts=["portal-1"])
    book.done(Step.wave_pass(1).push, hosts=["portal-1"], failed={}, unreachable=[])
    book.begin(Step.wave_pass(1).analysis, hosts=["portal-1"])
    book.failed(Step.wave_pass(1).analysis, hosts=["portal-1"], verdict="failed")
    episode = journal.episode(journal.read(tmp_path / "journal.jsonl"))
    assert episode.failed_wave
    assert journal.host_states(episode)["portal-1"] == "failed: analysis failed"
    from gcmschange.apply import verbs

    shown = verbs._analyses(episode)
    assert shown == (
        {"step": "wave-1", "state": "failed", "checks": [], "measurements": 0, "last": None},
    )


@pytest.mark.slow
def test_the_health_gate_reads_firing_alerts_and_the_policy_decides_unknown_health(
    real_prometheus: RealPrometheus,
) -> None:
    from gcmschange.analysis.judge import Judge, health
    from gcmschange.analysis.templates import Spec

    judge = Judge(Spec(10, ()), real_prometheus.endpoint, Inconclusive.FAIL, "lab")
    real_prometheus.exporter.text = 'nginx_up{system="portal",host="portal-1"} 0\n'
    found = None
    for _ in range(100):  # the lab's rules: GcmsNginxDown fires at the next evaluation
        found = health(judge, ["portal", "case_api"])
        if found is not None and found.verdict is Verdict.FAILED:
            break
        threading.Event().wait(0.1)
    assert found is not None and found.alerts == ("GcmsNginxDown{system=portal, host=portal-1}",)
    assert health(judge, ["case_api"]) == health(judge, ["eta"])  # other systems: healthy
    assert judge.blocks(Verdict.INCONCLUSIVE)
    assert not Judge(Spec(10, ()), None, Inconclusive.PROCEED, "lab").blocks(Verdict.INCONCLUSIVE)
    monitoring.stop_process(real_prometheus.running)
    unknown = health(judge, ["portal"])
    assert unknown is not None and unknown.verdict is Verdict.INCONCLUSIVE
    assert "unreachable" in unknown.message
