"""Dates no calendar can hold (a window in the year 9999, a time without a zone, an unknown zone)
cost only their own record a place in `calendar` and `site`, with a warning: never exit 3,
which would stop the Pages job of every later pipeline."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import icalendar
import pytest
import yaml

from gcmschange.apply import road
from gcmschange.approvals.sign import approve
from gcmschange.audit import trail
from gcmschange.cli import main
from gcmschange.errors import GcmsError
from gcmschange.gitrepo import commit_paths
from gcmschange.paths import audit_log
from gcmschange.validate.load import load_change
from tests.conftest import KEYS

FAR = "CHG-MED-0999"  # its window ends on the last evening of the year 9999, Toronto time
ZONE = "America/Toronto"


def _add_change(root: Path, change_id: str, window: dict[str, str], env: str = "lab") -> Path:
    doc = yaml.safe_load((root / "changes" / "CHG-LAB-0002.yaml").read_text("utf-8"))
    doc.update(id=change_id, environment=env, window=window)
    path = root / "changes" / f"{change_id}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    commit_paths(root, [path], f"add {change_id}")
    return path


def _far_window() -> dict[str, str]:
    return {"start": "9999-12-31T20:00:00", "end": "9999-12-31T22:00:00", "timezone": ZONE}


def _calendar(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = main(["--repo", str(root), "calendar", "--output", "json", *args])
    captured = capsys.readouterr()
    assert "internal error" not in captured.err
    return code, json.loads(captured.out)


def _problems_for(payload: Any, file: str) -> list[str]:
    return [p["message"] for p in payload["problems"] if p["file"] == file]


def test_calendar_skips_a_window_in_the_year_9999_with_a_warning(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_change(estate_repo, FAR, _far_window())
    out = tmp_path / "all.ics"
    code, payload = _calendar(estate_repo, capsys, "-o", str(out))
    assert code == 0
    skipped = _problems_for(payload, f"changes/{FAR}.yaml")
    assert any("outside the dates a calendar" in m for m in skipped), payload["problems"]
    assert FAR not in {e["ref"] for e in payload["entries"]}
    assert "CHG-LAB-0001" in {e["ref"] for e in payload["entries"]}
    cal = icalendar.Calendar.from_ical(out.read_bytes())
    uids = {str(e["UID"]) for e in cal.walk("VEVENT")}
    assert "CHG-LAB-0001@gcmschange" in uids and f"{FAR}@gcmschange" not in uids
    # The text view says the same, and still exits 0.
    assert main(["--repo", str(estate_repo), "calendar"]) == 0
    assert f"skipped changes/{FAR}.yaml" in capsys.readouterr().out


def test_calendar_keeps_the_last_window_it_can_hold_and_an_unknown_zone_is_a_warning(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    late = {"start": "9998-06-01T20:00:00", "end": "9998-06-01T22:00:00", "timezone": ZONE}
    _add_change(estate_repo, "CHG-MED-0998", late)
    # An explicit offset needs no zone to be read, so only the calendar meets the bad name.
    odd = {"start": "2026-03-01T20:00:00+00:00", "end": "2026-03-01T22:00:00+00:00"}
    _add_change(estate_repo, "CHG-MED-0001", {**odd, "timezone": "Mars/Olympus_Mons"})
    out = tmp_path / "all.ics"
    code, payload = _calendar(estate_repo, capsys, "-o", str(out))
    assert code == 0
    assert any(
        "Mars/Olympus_Mons" in m for m in _problems_for(payload, "changes/CHG-MED-0001.yaml")
    )
    event = next(
        e
        for e in icalendar.Calendar.from_ical(out.read_bytes()).walk("VEVENT")
        if str(e["UID"]) == "CHG-MED-0998@gcmschange"
    )
    assert event.decoded("DTSTART").astimezone(UTC) == datetime(9998, 6, 2, 0, 0, tzinfo=UTC)


def _approve_or_sign_by_hand(root: Path, change_id: str, tmp: Path) -> None:
    """A signed approval when validation accepts the change; a statement the site's fallback
    reads when it refuses it (a schema bounding the years would), so the change is planned
    either way."""
    key = tmp / "owner-partner-gateway"
    shutil.copy(KEYS / "owner-partner-gateway", key)
    key.chmod(0o600)
    try:
        change = load_change(root, change_id)
        approve(
            root, change, road.prepare(root, change_id).digest, key, role="owner:partner_gateway"
        )
    except GcmsError:
        folder = root / "approvals" / change_id
        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        statement = {
            "change": change_id,
            "comment": "",
            "digest": "0" * 64,
            "environment": "staging",
            "expires": f"{now + timedelta(days=2):%Y-%m-%dT%H:%M:%SZ}",
            "format": "gcmschange-approval/v1",
            "issued": f"{now:%Y-%m-%dT%H:%M:%SZ}",
            "nonce": "0" * 32,
            "principal": "owner-partner-gateway",
            "role": "owner:partner_gateway",
        }
        (folder / "by-hand.json").write_text(json.dumps(statement), encoding="utf-8")


def _append_raw_audit_entry(root: Path, time: str) -> None:
    """An entry with a well-formed chain link but a time gcmschange would never write, as
    another tool (or a hand) might have left it."""
    last = trail.read_events(root)[-1]
    entry: dict[str, Any] = {
        "seq": last.seq + 1,
        "time": time,
        "actor": "someone",
        "event": "drift.checked",
        "outcome": "ok",
        "change": None,
        "digest": None,
        "details": {"systems": ["portal"]},
        "prev": last.hash,
    }
    entry["hash"] = trail.entry_hash(entry)
    with audit_log(root).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


def _incident_record(incident_id: str, start: str, end: str | None) -> str:
    record = {
        "id": incident_id,
        "title_en": "Far away",
        "title_fr": "Très loin",
        "systems": ["eta"],
        "partners": ["air_maple"],
        "impact": "outage",
        "start": start,
        "end": end,
        "timezone": ZONE,
        "recorded": "2026-01-01T00:00:00+00:00",
    }
    return json.dumps(record) + "\n"


def _site(root: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Any, str]:
    code = main(["--repo", str(root), "site", "-o", str(out), "--output", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for lang in ("", "fr/"):
        assert (out / f"{lang}index.html").is_file()
        ET.fromstring((out / f"{lang}feed.atom").read_bytes())
    icalendar.Calendar.from_ical((out / "calendar" / "all.ics").read_bytes())
    return json.loads(captured.out), captured.err


def test_site_leaves_out_an_approved_window_in_the_year_9999(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_change(estate_repo, FAR, _far_window(), env="staging")
    _approve_or_sign_by_hand(estate_repo, FAR, tmp_path)
    payload, err = _site(estate_repo, tmp_path / "public", capsys)
    assert any(s.startswith(f"changes/{FAR}.yaml: ") for s in payload["skipped"])
    assert f"warning: left out of the site: changes/{FAR}.yaml" in err
    assert payload["planned"] == []


def test_site_leaves_out_audit_entries_and_incidents_it_cannot_date(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trail.record(estate_repo, "validated", change="CHG-LAB-0001")
    _append_raw_audit_entry(estate_repo, "2026-01-01T00:00:00")  # no zone
    _append_raw_audit_entry(estate_repo, "9999-12-31T23:59:59-05:00")  # past the year 9999 in UTC
    _append_raw_audit_entry(estate_repo, "last Tuesday")
    incidents = estate_repo / ".gcmschange" / "incidents.jsonl"
    incidents.write_text(
        _incident_record("INC-FAR", "9999-12-31T23:00:00-05:00", None)
        + _incident_record("INC-NAIVE", "2026-01-01T00:00:00", "2026-01-01T01:00:00")
        + _incident_record("INC-OK", "2026-01-01T00:00:00+00:00", "2026-01-01T01:00:00+00:00"),
        encoding="utf-8",
    )
    payload, err = _site(estate_repo, tmp_path / "public", capsys)
    skipped = "\n".join(payload["skipped"])
    assert "incident INC-FAR" in skipped and "incident INC-NAIVE" in skipped
    left_out = "\n".join(payload["left_out"])
    assert left_out.count("drift.checked") == 3
    assert "has no time zone" in left_out and "not an ISO 8601 time" in left_out
    assert "warning: left out of the site: incident INC-FAR" in err
    assert payload["history"] == ["INC-OK"]


def test_an_incident_the_site_could_not_show_is_refused_before_it_is_recorded(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["notices", "incident", "--system", "eta", "--title-en", "x", "--title-fr", "y"]
    code = main(["--repo", str(estate_repo), *args, "--start", "9999-12-31T23:00:00"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "outside the dates" in err
    assert not (estate_repo / ".gcmschange" / "incidents.jsonl").exists()


def test_site_now_past_what_it_can_show_is_a_usage_error(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "public"
    args = ["--repo", str(estate_repo), "site", "-o", str(out), "--now", "9999-12-31T23:00-05:00"]
    assert main(args) == 2
    assert "outside the dates" in capsys.readouterr().err
