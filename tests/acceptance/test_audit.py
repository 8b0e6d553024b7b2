"""`gcmschange audit verify|show` over a real log: every kind of tampering names its entry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gcmschange.audit import trail
from gcmschange.cli import main
from gcmschange.paths import audit_log

APPENDER = """
import sys
from pathlib import Path
from gcmschange.audit.trail import record
root, tag, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for i in range(count):
    record(root, "test.append", change=tag, details={"i": i, "pad": "x" * (i % 50)})
"""


def _seed(root: Path, count: int = 5) -> list[bytes]:
    for i in range(count):
        trail.record(root, "test.event", change=f"CHG-{i % 2}", details={"i": i})
    return audit_log(root).read_bytes().splitlines(keepends=True)


def _verify(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--repo", str(root), "audit", "verify"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_intact_chain_verifies(estate_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(estate_repo)
    code, out = _verify(estate_repo, capsys)
    assert code == 0, out
    assert "intact: 5 entries" in out


def test_empty_log_is_intact(estate_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _verify(estate_repo, capsys)
    assert code == 0, out


def test_one_byte_edit_names_the_entry(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _seed(estate_repo)
    lines[2] = lines[2].replace(b'"i": 2', b'"i": 7')
    audit_log(estate_repo).write_bytes(b"".join(lines))
    code, out = _verify(estate_repo, capsys)
    assert code == 1
    assert "entry 3: hash mismatch" in out


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda ls: ls[:2] + ls[3:], "entry 3: sequence gap: expected seq 3, found 4"),
        (lambda ls: [*ls[:2], ls[3], ls[2], *ls[4:]], "entry 3: sequence gap"),
        (lambda ls: [*ls[:3], ls[1], *ls[3:]], "entry 4: out of order: expected seq 4, found 2"),
        (lambda ls: ls[:4], "entry 5: missing: the log ends after entry 4"),
        (lambda ls: [*ls[:4], ls[4][:20]], "entry 5: truncated tail"),
    ],
    ids=["deleted", "reordered", "inserted", "truncated", "torn"],
)
def test_structural_tampering_names_the_entry(
    estate_repo: Path,
    capsys: pytest.CaptureFixture[str],
    mutate: object,
    expected: str,
) -> None:
    lines = _seed(estate_repo)
    assert callable(mutate)
    audit_log(estate_repo).write_bytes(b"".join(mutate(lines)))
    code, out = _verify(estate_repo, capsys)
    assert code == 1
    assert expected in out


def test_forged_insert_with_valid_own_hash_breaks_the_link(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _seed(estate_repo, 3)
    forged = json.loads(lines[1])
    forged.update(seq=2, event="forged", prev=trail.GENESIS)
    forged["hash"] = trail.entry_hash(forged)
    tail = [json.loads(raw) for raw in lines[1:]]
    body = [lines[0], (json.dumps(forged) + "\n").encode()]
    for entry in tail:  # renumber the rest so only the link can betray the forgery
        entry["seq"] += 1
        entry["hash"] = trail.entry_hash(entry)
        body.append((json.dumps(entry) + "\n").encode())
    audit_log(estate_repo).write_bytes(b"".join(body))
    code, out = _verify(estate_repo, capsys)
    assert code == 1
    assert "entry 2: prev does not match the hash of entry 1" in out


def test_torn_tail_is_moved_aside_and_recorded(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _seed(estate_repo, 3)
    audit_log(estate_repo).write_bytes(b"".join(lines) + b'{"seq": 4, "ti')
    assert _verify(estate_repo, capsys)[0] == 1
    trail.record(estate_repo, "after.crash")
    code, out = _verify(estate_repo, capsys)
    assert code == 0, out
    names = [e.event for e in trail.read_events(estate_repo)]
    assert names[-2:] == ["audit.tail_discarded", "after.crash"]
    assert trail.read_events(estate_repo)[-2].details["fragment"] == '{"seq": 4, "ti'


def test_concurrent_appenders_keep_the_chain(estate_repo: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(estate_repo), f"P{n}", "40"])
        for n in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    report = trail.verify_chain(estate_repo)
    assert report.ok, str(report)
    assert report.entries == 160


def _kill_then_check(root: Path, proc: subprocess.Popen[bytes], after_s: float) -> None:
    """SIGKILL an appender mid-write: the chain is whole or reports its torn tail, and the
    next record leaves it whole."""
    time.sleep(after_s)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    report = trail.verify_chain(root)
    assert report.ok or report.truncated_tail, str(report)
    trail.record(root, "after.kill")
    assert trail.verify_chain(root).ok


def test_killed_appender_leaves_a_verifiable_or_reported_chain(estate_repo: Path) -> None:
    for attempt in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(estate_repo), f"K{attempt}", "100000"]
        )
        _kill_then_check(estate_repo, proc, 1.0 + attempt * 0.3)


def test_show_filters_by_change(estate_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(estate_repo)
    code = main(
        ["--repo", str(estate_repo), "audit", "show", "--change", "CHG-1", "--output", "json"]
    )
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [e["details"]["i"] for e in payload["events"]] == [1, 3]
    assert main(["--repo", str(estate_repo), "audit", "show", "--event", "test."]) == 0
    assert "test.event" in capsys.readouterr().out


def test_damaged_last_entry_fails_closed(estate_repo: Path) -> None:
    lines = _seed(estate_repo, 2)
    audit_log(estate_repo).write_bytes(lines[0] + b"garbage\n")
    with pytest.raises(trail.AuditError, match="last entry is damaged"):
        trail.record(estate_repo, "x")


BATCH_APPENDER = """
import sys
from pathlib import Path
from gcmschange.audit.trail import NewEvent, record_many
root, tag = Path(sys.argv[1]), sys.argv[2]
for n in range(100000):
    batch = [NewEvent("test.batch", change=tag, details={"n": n, "i": i}) for i in range(200)]
    record_many(root, batch)
"""


def _batch(count: int) -> list[trail.NewEvent]:
    return [
        trail.NewEvent("validated", "ok" if i % 3 else "failed", f"CHG-{i}", details={"i": i})
        for i in range(count)
    ]


def test_a_batch_is_one_stretch_of_the_same_chain(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(estate_repo, 2)
    recorded = trail.record_many(estate_repo, _batch(50))
    trail.record(estate_repo, "after.batch")
    code, out = _verify(estate_repo, capsys)
    assert code == 0, out
    assert "intact: 53 entries" in out
    events = trail.read_events(estate_repo)
    assert events[2:52] == recorded
    assert [e.seq for e in recorded] == list(range(3, 53))
    assert [(e.change, e.outcome) for e in recorded[:3]] == [
        ("CHG-0", "failed"),
        ("CHG-1", "ok"),
        ("CHG-2", "ok"),
    ]
    assert trail.record_many(estate_repo, []) == []
    assert trail.verify_chain(estate_repo).entries == 53


def test_a_crash_in_the_middle_of_a_batch_is_a_torn_tail(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = b"".join(_seed(estate_repo, 3))
    head_before = trail.head_path(estate_repo).read_bytes()
    trail.record_many(estate_repo, _batch(40))
    written = audit_log(estate_repo).read_bytes()[len(before) :]
    lines = written.splitlines(keepends=True)
    # What a crash leaves: the head is replaced only after the batch is written and fsynced.
    trail.head_path(estate_repo).write_bytes(head_before)
    whole = len(b"".join(lines[:19]))
    audit_log(estate_repo).write_bytes(before + written[:whole])
    assert trail.verify_chain(estate_repo).ok  # whole entries, head behind: as for one record
    audit_log(estate_repo).write_bytes(before + written[: whole + len(lines[19]) // 2])
    report = trail.verify_chain(estate_repo)
    assert (report.ok, report.truncated_tail, report.entries) == (False, True, 22)
    assert _verify(estate_repo, capsys)[0] == 1
    trail.record_many(estate_repo, _batch(2))
    code, out = _verify(estate_repo, capsys)
    assert code == 0, out
    events = trail.read_events(estate_repo)
    assert [e.event for e in events[-3:]] == ["audit.tail_discarded", "validated", "validated"]
    assert events[-3].details["bytes"] == len(lines[19]) // 2


def test_killed_batch_appender_leaves_a_verifiable_or_reported_chain(estate_repo: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", BATCH_APPENDER, str(estate_repo), "B"])
    _kill_then_check(estate_repo, proc, 1.5)
