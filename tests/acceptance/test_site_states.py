"""How the site derives "under change" and "degraded"; how `gcmschange site` refuses input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gcmschange.audit import trail
from gcmschange.cli import main


def _build(root: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    now = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    code = main(["--repo", str(root), "site", "-o", str(out), "--now", now, "--output", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result: dict[str, object] = json.loads(captured.out)
    return result


def test_interrupted_apply_is_under_change_and_failed_verification_degrades(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An apply killed mid-wave keeps its locks: the change is still in progress.
    trail.record(estate_repo, "apply.started", change="CHG-LAB-0001", details={"run": "r1"})
    trail.record(estate_repo, "apply.interrupted", outcome="failed", change="CHG-LAB-0001")
    trail.record(estate_repo, "verified", outcome="failed", change="CHG-LAB-0002")
    result = _build(estate_repo, tmp_path / "site", capsys)
    assert result["systems"] == {
        "portal": "under_change",
        "case_api": "under_change",
        "partner_gateway": "degraded",
        "eta": "operational",  # CHG-LAB-0001 declares no impact downstream
        "db_proxy": "operational",
        "batch": "operational",
        "log_shipper": "operational",
    }
    assert result["current"] == ["CHG-LAB-0001"]
    en = (tmp_path / "site" / "index.html").read_text("utf-8")
    fr = (tmp_path / "site" / "fr" / "index.html").read_text("utf-8")
    assert "↻</span> Under change" in en and "↻</span> Changement en cours" in fr
    assert "!</span> Degraded" in en and "!</span> Dégradé" in fr


def test_resume_closes_the_interrupted_run_and_a_passing_check_clears_the_state(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trail.record(estate_repo, "apply.started", change="CHG-LAB-0001", details={"run": "r1"})
    trail.record(estate_repo, "apply.interrupted", outcome="failed", change="CHG-LAB-0001")
    trail.record(estate_repo, "resume.started", change="CHG-LAB-0001", details={"run": "r2"})
    trail.record(estate_repo, "resume.finished", outcome="applied", change="CHG-LAB-0001")
    trail.record(estate_repo, "verified", outcome="failed", change="CHG-LAB-0002")
    trail.record(estate_repo, "verified", outcome="ok", change="CHG-LAB-0002")
    result = _build(estate_repo, tmp_path / "site", capsys)
    systems = result["systems"]
    assert isinstance(systems, dict)
    assert set(systems.values()) == {"operational"}
    assert result["history"] == ["CHG-LAB-0001"]
    status = json.loads((tmp_path / "site" / "status.json").read_text("utf-8"))
    assert status["history"][0]["outcome"] == "completed"
    assert status["measures"]["by_month"] == []  # no declared impact: not an interruption


@pytest.mark.parametrize(
    ("now", "message"),
    [
        ("2026-12-01T12:00", "--now '2026-12-01T12:00': give a time zone"),
        ("tomorrow", "--now 'tomorrow': not an ISO 8601 time"),
    ],
)
def test_bad_now_is_refused_in_one_line(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], now: str, message: str
) -> None:
    assert main(["--repo", str(estate_repo), "site", "-o", "unused", "--now", now]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_output_that_is_a_file_is_refused_in_one_line(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder\n")
    assert main(["--repo", str(estate_repo), "site", "-o", str(blocker / "site")]) == 1
    err = capsys.readouterr().err
    assert "cannot write the site" in err and err.count("\n") == 1
