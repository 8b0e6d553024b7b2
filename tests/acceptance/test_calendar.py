"""`gcmschange calendar`: RFC 5545 output, right across DST, with conflicts and freezes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import icalendar
import pytest

from gcmschange.cli import main

DST_CHANGE = "CHG-PRD-0100"


def _add_change(
    root: Path, change_id: str, *, env: str, start: str, end: str, systems: str
) -> None:
    source = (root / "changes" / "CHG-LAB-0002.yaml").read_text(encoding="utf-8")
    text = (
        source.replace("id: CHG-LAB-0002", f"id: {change_id}")
        .replace("environment: lab", f"environment: {env}")
        .replace('start: "2026-01-01T00:00:00"', f'start: "{start}"')
        .replace('end: "2030-12-31T23:00:00"', f'end: "{end}"')
        .replace("systems: [partner_gateway]", f"systems: [{systems}]")
    )
    (root / "changes" / f"{change_id}.yaml").write_text(text, encoding="utf-8")


@pytest.fixture
def prod_repo(estate_repo: Path) -> Path:
    # Saturday 23:00 EDT to Sunday 03:00 EST: the clocks fall back at 02:00 inside the window.
    _add_change(
        estate_repo,
        DST_CHANGE,
        env="prod",
        start="2026-10-31T23:00:00",
        end="2026-11-01T03:00:00",
        systems="batch",
    )
    approvals = estate_repo / "approvals" / DST_CHANGE
    approvals.mkdir(parents=True)
    (approvals / "owner.statement").write_text("approved\n", encoding="utf-8")
    return estate_repo


def _calendar(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = main(["--repo", str(root), "calendar", "--output", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def _event(cal: icalendar.Calendar, uid: str) -> icalendar.Event:
    found = [e for e in cal.walk("VEVENT") if str(e["UID"]) == uid]
    assert len(found) == 1
    event = found[0]
    assert isinstance(event, icalendar.Event)
    return event


def test_window_across_november_dst_switch_has_the_right_utc_times(
    prod_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "changes.ics"
    code, _ = _calendar(prod_repo, capsys, "--env", "prod", "-o", str(out))
    assert code == 0
    raw = out.read_bytes()
    assert b"\r\n" in raw and raw.startswith(b"BEGIN:VCALENDAR")
    assert b"DTSTART;TZID=America/Toronto:20261031T230000" in raw
    assert b"DTEND;TZID=America/Toronto:20261101T030000" in raw
    cal = icalendar.Calendar.from_ical(raw)
    event = _event(cal, f"{DST_CHANGE}@gcmschange")
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    assert start.astimezone(UTC) == datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    # 4 wall-clock hours plus the repeated one (Python subtracts same-zone times on the wall clock)
    assert (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() == 5 * 3600
    assert str(event["STATUS"]) == "CONFIRMED"
    # The file's own VTIMEZONE (what a client without the IANA database uses) agrees.
    (vtimezone,) = cal.walk("VTIMEZONE")
    assert isinstance(vtimezone, icalendar.Timezone)
    zone = vtimezone.to_tz()
    local_end = datetime(2026, 11, 1, 3, 0, tzinfo=zone)
    assert local_end.astimezone(UTC) == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    local_start = datetime(2026, 10, 31, 23, 0, tzinfo=zone)
    assert local_start.astimezone(UTC) == datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def test_environment_filter_and_pending_status(
    prod_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lab.ics"
    code, payload = _calendar(prod_repo, capsys, "--env", "lab", "-o", str(out))
    assert code == 0
    assert [e["ref"] for e in payload["entries"]] == [
        "CHG-LAB-0001",
        "CHG-LAB-0002",
        "CHG-LAB-0003",
    ]
    cal = icalendar.Calendar.from_ical(out.read_bytes())
    assert {str(e["STATUS"]) for e in cal.walk("VEVENT")} == {"TENTATIVE"}


def test_conflicts_on_related_systems_and_freezes(
    prod_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_change(
        prod_repo,
        "CHG-PRD-0101",
        env="prod",
        start="2026-11-01T00:30:00",
        end="2026-11-01T02:00:00",
        systems="db_proxy",
    )
    _add_change(
        prod_repo,
        "CHG-PRD-0102",
        env="prod",
        start="2026-11-01T00:30:00",
        end="2026-11-01T02:00:00",
        systems="log_shipper",
    )
    _add_change(
        prod_repo,
        "CHG-PRD-0103",
        env="prod",
        start="2026-12-20T10:00:00",
        end="2026-12-20T11:00:00",
        systems="portal",
    )
    code, payload = _calendar(prod_repo, capsys, "--env", "prod")
    assert code == 0
    pairs = {(c["first"], c["second"]): c["reason"] for c in payload["conflicts"]}
    assert pairs == {
        (DST_CHANGE, "CHG-PRD-0101"): "overlapping windows on related systems: batch ~ db_proxy",
        ("CHG-PRD-0103", "Year-end freeze / Gel de fin d'année"): "CHG-PRD-0103 falls in freeze",
    }
    # Validation refuses a change in a freeze; the calendar still lists it, and says so.
    refused = [p for p in payload["problems"] if p["file"] == "changes/CHG-PRD-0103.yaml"]
    assert refused and refused[0]["message"].startswith("listed, but validation refuses it:")
    assert main(["--repo", str(prod_repo), "calendar", "--env", "prod", "--strict"]) == 1
    text = capsys.readouterr().out
    assert "Conflicts: 2" in text and "CHG-PRD-0100 x CHG-PRD-0101" in text


def test_unreadable_change_is_skipped_with_a_reason(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (estate_repo / "changes" / "CHG-BAD.yaml").write_text("id: [unclosed\n", encoding="utf-8")
    code, payload = _calendar(estate_repo, capsys)
    assert code == 0
    assert payload["problems"][0]["file"] == "changes/CHG-BAD.yaml"


def test_unknown_environment_is_refused(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--repo", str(estate_repo), "calendar", "--env", "qa"]) == 1
    assert "--env qa: unknown environment" in capsys.readouterr().err
