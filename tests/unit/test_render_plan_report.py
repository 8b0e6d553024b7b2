"""From a check + diff run to the Plan and its reports (the runner's result is built by hand:
the lab tests run the real thing)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gcmschange.apply import road
from gcmschange.errors import ExitCode
from gcmschange.execution.runner import HostStats, RunResult, TaskChange
from gcmschange.plan import report
from gcmschange.plan.check import build_plan, load_plan, save_plan

HOSTS = """\
all:
  children:
    partner_gateway:
      hosts:
        gw-1: {ansible_host: 10.0.0.4}
        gw-2: {ansible_host: 10.0.0.5}
        gw-3: {ansible_host: 10.0.0.6}
"""
RENDERED = Path("/tmp/x/plan-1/rendered")
CONF = "/etc/nginx/conf.d/gcms-partner_gateway.conf"
DIFF = (
    f"--- {CONF}\n+++ {RENDERED}/gw-1{CONF}\n@@ -1,2 +1,2 @@\n"
    "--- a comment line that looks like a header\n"
    "-    ssl_protocols TLSv1.2 TLSv1.3;\n+    ssl_protocols TLSv1.3; # token s3cr3t ```\n"
)


@pytest.fixture
def prepared(estate_repo: Path) -> road.Prepared:
    (estate_repo / "inventories/lab/hosts.yml").write_text(HOSTS, encoding="utf-8")
    found = road.prepare(estate_repo, "CHG-LAB-0002", use_cache=False)
    return road.Prepared(found.loaded, found.rendered, found.digest, ("s3cr3t",))


def _result(unreachable: tuple[str, ...] = ("gw-3",)) -> RunResult:
    return RunResult(
        status="failed" if unreachable else "successful",
        rc=4 if unreachable else 0,
        hosts={
            "gw-1": HostStats(ok=5, changed=1),
            "gw-2": HostStats(ok=5),
            **{h: HostStats(unreachable=1) for h in unreachable},
        },
        changes=(TaskChange("gw-1", "Rendered files are in place", DIFF),),
        failures=dict.fromkeys(unreachable, "unreachable: ssh: connect to host timed out"),
        unreachable=unreachable,
        artifacts=Path("/tmp/x/plan-1/runner/artifacts"),
        duration_s=1.234,
    )


def test_plan_states_headers_and_masking(prepared: road.Prepared) -> None:
    plan = build_plan(
        prepared, _result(), RENDERED, created=datetime(2026, 1, 2, tzinfo=UTC), run_dir="r"
    )
    assert [(h.host, h.status) for h in plan.hosts] == [
        ("gw-1", "changed"),
        ("gw-2", "unchanged"),
        ("gw-3", "unreachable"),
    ]
    diff = plan.hosts[0].tasks[0].diff
    assert diff.startswith(f"--- gw-1:{CONF} (current)\n+++ gw-1:{CONF} (planned)\n")
    assert "--- a comment line that looks like a header\n" in diff
    assert "s3cr3t" not in diff and "# token ********" in diff
    assert plan.exit_code == ExitCode.INCOMPLETE and not plan.complete
    assert plan.blast_radius == ("partner_gateway", "eta")
    assert plan.digest == prepared.digest


def test_failed_host_is_exit_1_and_complete_plan_exit_0(prepared: road.Prepared) -> None:
    created = datetime(2026, 1, 2, tzinfo=UTC)
    missing = build_plan(prepared, _result(()), RENDERED, created=created, run_dir="r")
    # gw-3 missing from the run's stats: never silently "unchanged".
    assert missing.hosts[2].status == "failed"
    assert missing.hosts[2].message == "the run never reached this host"
    assert missing.exit_code == ExitCode.FAILURE
    result = _result(())
    result.hosts["gw-3"] = HostStats(ok=5)
    ok = build_plan(prepared, result, RENDERED, created=created, run_dir="r")
    assert ok.exit_code == ExitCode.OK and ok.complete
    assert ok.named("unchanged") == ("gw-2", "gw-3")


def test_saved_plan_round_trips(prepared: road.Prepared) -> None:
    plan = build_plan(
        prepared, _result(), RENDERED, created=datetime(2026, 1, 2, tzinfo=UTC), run_dir="r"
    )
    path = save_plan(prepared.loaded.root, plan)
    assert load_plan(prepared.loaded.root, plan.change) == plan
    assert json.loads(path.read_text())["summary"]["unreachable"] == 1


def test_reports(prepared: road.Prepared) -> None:
    plan = build_plan(
        prepared, _result(), RENDERED, created=datetime(2026, 1, 2, tzinfo=UTC), run_dir="r"
    )
    md = report.report(plan, "markdown")
    assert "| 3 | 1 | 1 | 1 | 0 |" in md
    assert "<summary>gw-1 (partner_gateway): 1 task(s) would change</summary>" in md
    assert "````diff\n" in md  # longer than the backticks inside the diff
    assert f"**Digest:** `{plan.digest}`" in md
    assert "**Partners to notify:** air_maple" in md
    assert "- **gw-3** unreachable: unreachable: ssh: connect to host timed out" in md
    assert "Plan incomplete" in md
    text = report.report(plan, "text")
    assert f"digest {plan.digest}" in text
    assert "1 host(s) unchanged" in text and "gw-3 UNREACHABLE" in text
    payload = json.loads(report.report(plan, "json"))
    assert payload["ok"] is False and payload["summary"]["changed"] == 1
    for output in ("text", "json", "markdown"):
        assert "s3cr3t" not in report.report(plan, output)
