"""`gcmschange plan` against real lab hosts: exactly the TLS line on each gateway, zero changes
when the hosts are already in the target state, and an unreachable host makes it incomplete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gcmschange import lab
from gcmschange.apply import push, road
from gcmschange.audit.trail import read_events
from gcmschange.cli import main
from gcmschange.plan.check import load_plan
from gcmschange.rules.estate import load_inventory
from tests.conftest import ESTATE
from tests.lab.conftest import LabFactory

pytestmark = pytest.mark.lab

TLS_CHANGE = "CHG-LAB-0002"
# The gateways' standard TLS setting, as a change: hosts at the baseline already have it.
NO_OP_CHANGE = (
    (ESTATE / "changes" / f"{TLS_CHANGE}.yaml")
    .read_text(encoding="utf-8")
    .replace(TLS_CHANGE, "CHG-LAB-0951")
    .replace('tls_protocols: "TLSv1.3"', 'tls_protocols: "TLSv1.2 TLSv1.3"')
)


def plan_json(root: Path, change: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    code = main(["--repo", str(root), "plan", change, "--output", "json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def gateways(lab_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The gateway hosts, brought to the estate's standard configuration (no change applied)."""
    inventory = load_inventory(lab_repo, "lab")
    hosts = list(inventory.groups["partner_gateway"])
    rendered = road.baseline(lab_repo, "lab").for_hosts(hosts)
    work = tmp_path_factory.mktemp("baseline")
    result = push.push(lab_repo, inventory.path, rendered, work / "run", hosts=hosts)
    assert result.status == "successful", result.failures
    return hosts


def test_tls_change_shows_exactly_the_protocol_line_on_each_gateway(
    lab_repo: Path, gateways: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, plan = plan_json(lab_repo, TLS_CHANGE, capsys)
    assert code == 0, [(h["host"], h["status"], h["message"]) for h in plan["hosts"]]
    assert plan["summary"] == {"changed": 2, "unchanged": 0, "unreachable": 0, "failed": 0}
    for host in plan["hosts"]:
        assert host["host"] in gateways
        (task,) = host["tasks"]
        assert task["task"] == "Rendered files are in place"
        conf = f"{host['host']}:/etc/nginx/conf.d/gcms-partner_gateway.conf"
        assert f"--- {conf} (current)\n+++ {conf} (planned)\n" in task["diff"]
        changed = [
            line
            for line in task["diff"].splitlines()
            if line[:1] in "+-" and not line.startswith(("---", "+++"))
        ]
        assert changed == ["-    ssl_protocols TLSv1.2 TLSv1.3;", "+    ssl_protocols TLSv1.3;"]
    saved = load_plan(lab_repo, TLS_CHANGE)
    assert saved.digest == plan["digest"] == road.prepare(lab_repo, TLS_CHANGE).digest
    assert "tmp" not in json.dumps(plan["hosts"])  # headers name host paths, not temp files
    planned = [e for e in read_events(lab_repo) if e.event == "planned"]
    assert planned[-1].change == TLS_CHANGE and planned[-1].outcome == "ok"


def test_hosts_already_in_the_target_state_plan_zero_changes(
    lab_repo: Path, gateways: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Inside the repository: a change file is read only from there (a path outside is refused).
    change = lab_repo / "changes" / "CHG-LAB-0951.yaml"
    change.write_text(NO_OP_CHANGE, encoding="utf-8")
    try:
        code, plan = plan_json(lab_repo, str(change), capsys)
    finally:
        change.unlink()
    assert code == 0, plan.get("error") or [(h["host"], h["status"]) for h in plan["hosts"]]
    assert plan["summary"] == {"changed": 0, "unchanged": 2, "unreachable": 0, "failed": 0}
    assert all(host["tasks"] == [] for host in plan["hosts"])


def test_unreachable_host_makes_the_plan_incomplete(
    fresh_lab: LabFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    root = fresh_lab(systems=("partner_gateway",), hosts_per_system=2)
    down, up = load_inventory(root, "lab").groups["partner_gateway"]
    lab.crash(root, down)
    try:
        code, plan = plan_json(root, TLS_CHANGE, capsys)
    finally:
        lab.start(root, down)
    assert code == 6
    assert plan["ok"] is False and plan["complete"] is False
    status = {h["host"]: h for h in plan["hosts"]}
    assert status[down]["status"] == "unreachable"
    assert status[down]["message"].startswith("unreachable:")
    assert status[up]["status"] == "changed"  # a fresh host: everything would change
    events = [e for e in read_events(root) if e.event == "planned"]
    assert events[-1].outcome == "incomplete"
    assert events[-1].details["unreachable"] == [down]
