"""Locks through the real CLI, on a real bare repository as the remote.

Two `apply` processes of overlapping changes start at the same moment: exactly one takes
the locks, the other is refused and names the holder. A crashed change keeps its locks;
`locks` shows them, `unlock --reason` force-releases and records it, and an unreachable
lock store refuses (fail closed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from gcmschange.apply import journal
from gcmschange.audit import trail
from gcmschange.cli import main

S = journal.Step.parse

CLI = [sys.executable, "-m", "gcmschange"]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def dev_change(root: Path, change_id: str, systems: list[str]) -> None:
    doc = yaml.safe_load((root / "changes" / "CHG-LAB-0003.yaml").read_text())
    doc.update(id=change_id, environment="dev", systems=systems, title=f"Lock test {change_id}")
    doc["verification"] = ["verify/test_common.py"]
    now = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    doc["window"] = {
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=23)).isoformat(),
        "timezone": "UTC",
    }
    (root / "changes" / f"{change_id}.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")


@pytest.fixture
def repo(estate_repo: Path, tmp_path: Path) -> Path:
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    git(estate_repo, "remote", "add", "origin", str(origin))
    dev_change(estate_repo, "CHG-DEV-0101", ["case_api"])
    dev_change(estate_repo, "CHG-DEV-0102", ["portal", "case_api"])
    git(estate_repo, "add", "changes")
    git(estate_repo, "commit", "-qm", "two overlapping dev changes")
    return estate_repo


def cli(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--repo", str(root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def wait_for(predicate: object, timeout: float = 120) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_two_applies_at_once_exactly_one_takes_the_lock(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = dict(os.environ)
    procs = {
        cid: subprocess.Popen(
            [*CLI, "--repo", str(repo), "apply", cid],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for cid in ("CHG-DEV-0101", "CHG-DEV-0102")
    }
    try:
        holders = {}

        def one_decided() -> bool:
            for cid in procs:
                ep = journal.episode(journal.read(journal.path_of(repo, cid)))
                lock = ep.closed(S("lock"))
                if lock is not None:
                    holders[cid] = lock.status
            return len(holders) == 2

        wait_for(one_decided)
        winners = [cid for cid, status in holders.items() if status == "done"]
        losers = [cid for cid, status in holders.items() if status == "failed"]
        assert len(winners) == 1 and len(losers) == 1, holders
        loser = procs[losers[0]]
        _out, err = loser.communicate(timeout=60)
        assert loser.returncode == 1
        assert f"{losers[0]}: locked: dev/case_api by {winners[0]} (held by " in err
        assert "pid " in err
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.communicate()
    # The winner was killed: it keeps its locks, and the CLI shows them.
    code, out, _ = cli(repo, capsys, "locks", "--output", "json")
    assert code == 0
    held = {lk["name"]: lk["holder"]["change"] for lk in json.loads(out)["locks"]}
    assert set(held.values()) == {winners[0]}
    assert "dev/case_api" in held
    code, out, _ = cli(repo, capsys, "status", winners[0])
    assert code == 0 and f"{winners[0]}: interrupted" in out
    code, _, err = cli(repo, capsys, "apply", winners[0])
    assert code == 1 and "an earlier run was interrupted" in err and "gcmschange resume" in err


def test_unlock_force_releases_and_records_why(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gcmschange.apply import locks

    store = locks.Store(repo)
    store.acquire(locks.refs_for("dev", ["portal"]), locks.new_holder("CHG-DEV-0101"))
    code, out, _ = cli(repo, capsys, "locks")
    assert code == 0 and out.startswith("dev/portal") and "CHG-DEV-0101 (held by" in out
    code, _, err = cli(repo, capsys, "unlock", "dev/portal")
    assert code == 2 and "--reason" in err
    code, out, _ = cli(repo, capsys, "unlock", "dev/portal", "--reason", "holder's laptop died")
    assert code == 0 and out.startswith("released dev/portal (was CHG-DEV-0101")
    event = trail.read_events(repo)[-1]
    assert (event.event, event.change, event.details["reason"]) == (
        "lock.forced",
        "CHG-DEV-0101",
        "holder's laptop died",
    )
    code, out, _ = cli(repo, capsys, "locks")
    assert out.strip() == "no locks held"


def test_an_unreachable_lock_store_refuses_before_any_host(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repo, "remote", "set-url", "origin", str(repo.parent / "gone.git"))
    code, _, err = cli(repo, capsys, "apply", "CHG-DEV-0101")
    assert code == 1
    assert "lock store unreachable, refusing" in err
    ep = journal.episode(journal.read(journal.path_of(repo, "CHG-DEV-0101")))
    assert not ep.touched and ep.finished is not None
    assert ep.finished.data["outcome"] == "refused"
    code, _, err = cli(repo, capsys, "locks")
    assert code == 1 and "lock store unreachable" in err


def test_status_takes_lock_facts_from_the_remote_not_the_journal(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal that says a lock was taken, and a remote that holds none: status believes
    the remote (a crash, an unlock or an edit may have left the journal behind)."""
    path = journal.path_of(repo, "CHG-DEV-0101")
    j = journal.Journal(path, "r1")
    j.begin(S("run"), kind="apply", waves=[["case-api-d01"]], threshold=0)
    j.done(S("lock"), refs={"refs/gcmschange/locks/dev/case_api": "0" * 40})
    code, out, _ = cli(repo, capsys, "status", "CHG-DEV-0101")
    assert code == 0 and "interrupted" in out
    assert "locks held" not in out
    code, out, _ = cli(repo, capsys, "status", "CHG-DEV-0101", "--remote", "nowhere")
    assert code == 0 and "locks: unknown (nowhere could not be reached)" in out
