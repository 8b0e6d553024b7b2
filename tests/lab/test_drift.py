"""Drift (issue 7): a file edited by hand on one lab host is found, and only that host reported.

The verdict rules (exit codes, JUnit) are checked first on reports built by hand; the lab test
then runs the real thing: check mode and the verification tests over real ssh.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from gcmschange.apply.converge import converge
from gcmschange.audit.trail import read_events
from gcmschange.cli import main
from gcmschange.errors import ExitCode, UnreachableError
from gcmschange.plan.drift import CLEAN, DRIFTED, UNREACHABLE, Difference, DriftReport, HostDrift
from tests.lab.conftest import LabFactory, ssh


def _report(*hosts: HostDrift) -> DriftReport:
    return DriftReport("lab", "abc", "2026-11-29T12:00:00+00:00", hosts, ".gcmschange/drift/x", 1.0)


CLEAN_HOST = HostDrift("portal-1", "portal", CLEAN)
DRIFTED_HOST = HostDrift("portal-2", "portal", DRIFTED, (Difference("files", "-a\n+b\n"),))
GONE_HOST = HostDrift("case-api-1", "case_api", UNREACHABLE, message="ssh: connect refused")


@pytest.mark.parametrize(
    ("hosts", "code", "outcome"),
    [
        ((CLEAN_HOST,), ExitCode.OK, "clean"),
        ((CLEAN_HOST, DRIFTED_HOST), ExitCode.FAILURE, "drifted"),
        ((CLEAN_HOST, GONE_HOST), ExitCode.INCOMPLETE, "incomplete"),
        ((GONE_HOST, DRIFTED_HOST), ExitCode.FAILURE, "drifted"),  # a finding beats a gap
    ],
)
def test_exit_code_and_outcome(hosts: tuple[HostDrift, ...], code: ExitCode, outcome: str) -> None:
    report = _report(*hosts)
    assert (report.exit_code, report.outcome) == (code, outcome)


def test_junit_has_one_case_per_host() -> None:
    from gcmschange.plan.drift import junit_report

    suite = ET.fromstring(junit_report(_report(CLEAN_HOST, DRIFTED_HOST, GONE_HOST)))[0]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert len(cases["portal-1"]) == 0
    failure = cases["portal-2"].find("failure")
    assert failure is not None
    assert "+b" in (failure.text or "")
    assert cases["case-api-1"].find("error") is not None


@pytest.mark.lab
@pytest.mark.slow
def test_hand_edit_on_one_host_is_the_only_drift(
    fresh_lab: LabFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the portal's verification reaches the case API through its upstream: both are needed
    root = fresh_lab(systems=("portal", "case_api"), hosts_per_system=1)
    try:
        converge(root, "lab")
    except UnreachableError:  # a controller loaded by other work drops ssh sessions: once more
        converge(root, "lab")
    repo = ["--repo", str(root)]

    assert main([*repo, "drift", "lab"]) == 0
    capsys.readouterr()

    edit = "sed -i 's/worker_connections [0-9]*;/worker_connections 99;/' /etc/nginx/nginx.conf"
    assert ssh(root, "portal-1", edit).returncode == 0
    junit = tmp_path / "drift.xml"
    code = main([*repo, "drift", "lab", "--output", "json", "--junit", str(junit)])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["outcome"] == "drifted"
    states = {h["host"]: h["status"] for h in report["hosts"]}
    assert states == {"portal-1": "drifted", "case-api-1": "clean"}
    (host,) = [h for h in report["hosts"] if h["host"] == "portal-1"]
    diffs = "".join(d["diff"] for d in host["differences"])
    assert "--- portal-1:/etc/nginx/nginx.conf (on the host)" in diffs
    assert "-    worker_connections 99;" in diffs
    failures = [c.get("name") for c in ET.parse(junit).iter("testcase") if len(c)]
    assert failures == ["portal-1"]

    events = [e for e in read_events(root) if e.event == "drift.checked"]
    assert [e.outcome for e in events] == ["clean", "drifted"]
    assert events[-1].details["drifted"] == ["portal-1"]
