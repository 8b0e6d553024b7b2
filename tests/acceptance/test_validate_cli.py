"""The validate verb end to end: calendar, ids, reporters, cache, audit, hostile files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from gcmschange.audit import trail
from gcmschange.cli import main
from gcmschange.errors import ValidationError
from gcmschange.validate import run as gcms_validate
from gcmschange.validate.load import load_change

EXAMPLES = Path(__file__).parent / "examples"
NOW = "2027-01-15T00:00:00-05:00"
GCMS = [sys.executable, "-m", "gcmschange"]


def validate(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["--repo", str(root), "validate", "--now", NOW, *args])
    return code, capsys.readouterr().out


def add_change(root: Path, example: str, **replace: str) -> Path:
    text = (EXAMPLES / "valid" / f"{example}.yaml").read_text(encoding="utf-8")
    for old, new in replace.items():
        text = text.replace(old.replace("_", "-"), new)
    change_id = next(line.split(": ")[1] for line in text.splitlines() if line.startswith("id:"))
    path = root / "changes" / f"{change_id}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_lab_changes_validate_with_warnings_only(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = validate(estate_repo, capsys)
    assert code == 0
    assert "calendar conflict with CHG-LAB-0003" in out
    assert "3 change(s) checked, 0 invalid" in out
    assert "partners affected: air_maple, northstar_airways, province_on" in out


def test_overlapping_prod_changes_on_related_systems_conflict(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_change(estate_repo, "CHG-PROD-0101")  # portal, 2027-03-10 22:00-02:00
    add_change(
        estate_repo,
        "CHG-PROD-0102",  # case_api, moved into the portal change's window
        **{"2027-03-12T10:00": "2027-03-11T00:00", "2027-03-12T12:00": "2027-03-11T01:00"},
    )
    code, out = validate(estate_repo, capsys, "--output", "json", "CHG-PROD-0101")
    assert code == 1
    (change,) = json.loads(out)["changes"]
    assert [p["message"] for p in change["problems"]] == [
        "calendar conflict with CHG-PROD-0102: windows overlap in prod on portal "
        "(related system case_api)"
    ]
    assert change["problems"][0]["path"] == "$.window"


def test_duplicate_ids_and_misnamed_files_are_refused(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = estate_repo / "changes" / "CHG-LAB-0002.yaml"
    (estate_repo / "changes" / "CHG-LAB-0009.yaml").write_bytes(source.read_bytes())
    code, out = validate(estate_repo, capsys, "CHG-LAB-0009")
    assert code == 1
    assert (
        "changes/CHG-LAB-0009.yaml:3:5: $.id: id CHG-LAB-0002 does not match the file name "
        "CHG-LAB-0009.yaml" in out
    )
    assert "0009.yaml:3:5: $.id: id CHG-LAB-0002 is also used by changes/CHG-LAB-0002.yaml" in out


def test_junit_and_codequality_reports(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = estate_repo / "changes" / "CHG-LAB-0002.yaml"
    bad.write_text(bad.read_text().replace("systems: [partner_gateway]", "systems: [gateway]"))
    code, out = validate(estate_repo, capsys, "--output", "junit")
    assert code == 1
    suite = ET.fromstring(out.split("\n", 1)[1])
    assert suite.get("tests") == "3"
    assert suite.get("failures") == "1"
    failure = suite.find("testcase[@name='CHG-LAB-0002']/failure")
    assert failure is not None
    assert "$.systems[0]: unknown system 'gateway'" in (failure.get("message") or "")
    code, out = validate(estate_repo, capsys, "--output", "codequality", "CHG-LAB-0002")
    issues = json.loads(out)
    errors = [i for i in issues if i["severity"] == "major"]
    assert errors[0]["location"] == {"path": "changes/CHG-LAB-0002.yaml", "lines": {"begin": 8}}
    assert errors[0]["check_name"] == "gcmschange.reference"
    assert len({i["fingerprint"] for i in issues}) == len(issues)


def test_each_validated_change_is_audited_once_per_verdict(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    validate(estate_repo, capsys)
    validate(estate_repo, capsys)  # same content, same verdicts: nothing new to record
    events = [e for e in trail.read_events(estate_repo) if e.event == "validated"]
    assert sorted((e.change, e.outcome) for e in events) == [
        ("CHG-LAB-0001", "ok"),
        ("CHG-LAB-0002", "ok"),
        ("CHG-LAB-0003", "ok"),
    ]
    path = estate_repo / "changes" / "CHG-LAB-0003.yaml"
    path.write_text(path.read_text().replace("verify/test_case_api.py", "verify/test_nope.py"))
    validate(estate_repo, capsys)
    last = trail.read_events(estate_repo)[-1]
    assert (last.change, last.outcome) == ("CHG-LAB-0003", "failed")


def test_one_changed_file_is_revalidated_from_the_cache(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = (EXAMPLES / "valid" / "CHG-DEV-0301.yaml").read_text()
    first_start = datetime(2027, 4, 1, 9, 0)
    for i in range(300):
        start = first_start + timedelta(hours=9 * i)  # one after the other: no conflicts
        text = (
            source.replace("CHG-DEV-0301", f"CHG-DEV-{5000 + i}")
            .replace("2027-03-15T09:00", f"{start:%Y-%m-%dT%H:%M}")
            .replace("2027-03-15T17:00", f"{start + timedelta(hours=8):%Y-%m-%dT%H:%M}")
        )
        (estate_repo / "changes" / f"CHG-DEV-{5000 + i}.yaml").write_text(text)
    assert validate(estate_repo, capsys, "--output", "json")[0] == 0
    assert list((estate_repo / ".gcmschange" / "cache").glob("validate-*.json"))
    first = estate_repo / "changes" / "CHG-DEV-5000.yaml"
    first.write_text(first.read_text().replace("Banner text", "The banner text"))
    code, out = validate(estate_repo, capsys, "--output", "json")
    assert code == 0
    assert len(json.loads(out)["changes"]) == 303
    # Timing is the benchmark's job (benchmarks/bench_validate.py); here: only one file is
    # read afresh, every other verdict comes from the cache.
    report = gcms_validate.validate(estate_repo)
    assert (report.fresh, len(report.results)) == (0, 303)
    first.write_text(first.read_text() + "# touched\n")
    assert gcms_validate.validate(estate_repo).fresh == 1


def test_load_change_instantiates_standard_changes_and_refuses_invalid_ones(
    estate_repo: Path,
) -> None:
    add_change(estate_repo, "CHG-STG-0201")
    change = load_change(estate_repo, "CHG-STG-0201")
    assert change.playbook == "configure"
    assert change.variables == {
        "maintenance_banner_en": "Staging rehearsal on Saturday 09:00-12:00 ET.",
        "maintenance_banner_fr": "Répétition en préproduction samedi de 9 h à 12 h (HE).",
    }
    assert change.template == "maintenance-banner"
    assert "playbook" not in change.raw
    path = estate_repo / "changes" / "CHG-LAB-0001.yaml"
    path.write_text(path.read_text().replace("nginx_worker_connections: 1024", "x_y: 1"))
    with pytest.raises(ValidationError) as caught:
        load_change(estate_repo, "CHG-LAB-0001")
    assert [str(p) for p in caught.value.problems] == [
        "changes/CHG-LAB-0001.yaml:11:3: $.variables.x_y: unknown variable 'x_y' "
        "(not declared in playbooks/configure.meta.yml)"
    ]


HOSTILE = {
    "bomb.yaml": (EXAMPLES / "invalid" / "alias-bomb.yaml").read_bytes(),
    "deep.yaml": b"a: " + b"[" * 10_000 + b"]" * 10_000,
    "binary.yaml": (EXAMPLES / "invalid" / "binary.yaml").read_bytes(),
    "dup.yaml": b"id: a\nid: b\n",
    "latin1.yaml": "title: café\n".encode("latin-1"),
}


def test_hostile_files_are_refused_fast_without_traceback(estate_repo: Path) -> None:
    for name, raw in HOSTILE.items():
        (estate_repo / name).write_bytes(raw)
    with (estate_repo / "huge.yaml").open("wb") as handle:
        handle.write(b"title: " + b"x" * (50 * 1024 * 1024))
    names = [*HOSTILE, "huge.yaml"]
    started = time.perf_counter()
    done = subprocess.run(
        [*GCMS, "--repo", str(estate_repo), "validate", *names],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert time.perf_counter() - started < 20  # mostly interpreter start on a shared machine
    assert "Traceback" not in done.stdout + done.stderr
    for expected in (
        "bomb.yaml:2:6: $.lol: anchor '&a' is not allowed",
        "nesting deeper than 64 levels",
        "binary.yaml:3:1: binary content (NUL byte at offset 8)",
        "dup.yaml:2:1: $.id: duplicate key 'id' (first at line 1)",
        "latin1.yaml:1:11: not UTF-8 (byte 0xe9 at offset 10)",
        "huge.yaml: file is larger than 262144 bytes",
    ):
        assert expected in done.stdout
