"""Locks on a real local bare repository: all or none, named holders, leases, fail closed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gcmschange.apply import locks
from gcmschange.audit import trail
from gcmschange.errors import InvalidInputError, LockHeldError


def clone_with_origin(estate_repo: Path, tmp_path: Path) -> Path:
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    subprocess.run(
        ["git", "-C", str(estate_repo), "remote", "add", "origin", str(origin)], check=True
    )
    return origin


def test_all_or_none_and_the_holder_is_named(estate_repo: Path, tmp_path: Path) -> None:
    clone_with_origin(estate_repo, tmp_path)
    store = locks.Store(estate_repo)
    first = store.acquire(locks.refs_for("lab", ["case_api"]), locks.new_holder("CHG-A"))
    assert list(first) == ["refs/gcmschange/locks/lab/case_api"]
    with pytest.raises(LockHeldError) as err:
        store.acquire(locks.refs_for("lab", ["portal", "case_api"]), locks.new_holder("CHG-B"))
    assert "CHG-B: locked: lab/case_api by CHG-A (held by " in err.value.message
    # all or none: the free portal lock was not taken by the refused push
    assert [lk.name for lk in store.list()] == ["lab/case_api"]
    assert store.list()[0].holder is not None
    assert store.release(first) == ()
    assert store.list() == ()


def test_release_is_leased_on_the_holders_value(estate_repo: Path, tmp_path: Path) -> None:
    clone_with_origin(estate_repo, tmp_path)
    store = locks.Store(estate_repo)
    mine = store.acquire(locks.refs_for("lab", ["portal"]), locks.new_holder("CHG-A"))
    store.force_unlock("lab/portal", "holder's machine died")
    theirs = store.acquire(locks.refs_for("lab", ["portal"]), locks.new_holder("CHG-B"))
    assert store.release(mine) == ("refs/gcmschange/locks/lab/portal",)
    assert [lk.holder.change for lk in store.list() if lk.holder] == ["CHG-B"]
    store.release(theirs)
    forced = trail.read_events(estate_repo)[-1]
    assert forced.event == "lock.forced"
    assert forced.details["reason"] == "holder's machine died"


def test_adopt_keeps_this_changes_locks_and_refuses_others(
    estate_repo: Path, tmp_path: Path
) -> None:
    clone_with_origin(estate_repo, tmp_path)
    store = locks.Store(estate_repo)
    held = store.acquire(locks.refs_for("lab", ["portal"]), locks.new_holder("CHG-A"))
    adopted = store.adopt(locks.refs_for("lab", ["portal", "case_api"]), locks.new_holder("CHG-A"))
    assert adopted["refs/gcmschange/locks/lab/portal"] == held["refs/gcmschange/locks/lab/portal"]
    with pytest.raises(LockHeldError, match="CHG-B: locked: lab/case_api by CHG-A"):
        store.adopt(locks.refs_for("lab", ["case_api"]), locks.new_holder("CHG-B"))


def test_fail_closed_without_a_remote_or_when_it_is_unreachable(estate_repo: Path) -> None:
    store = locks.Store(estate_repo)
    with pytest.raises(locks.LockStoreError, match="has no git remote 'origin'"):
        store.acquire(locks.refs_for("lab", ["portal"]), locks.new_holder("CHG-A"))
    subprocess.run(
        ["git", "-C", str(estate_repo), "remote", "add", "origin", "/nonexistent/origin.git"],
        check=True,
    )
    with pytest.raises(locks.LockStoreError, match="lock store unreachable, refusing"):
        store.acquire(locks.refs_for("lab", ["portal"]), locks.new_holder("CHG-A"))
    with pytest.raises(locks.LockStoreError, match="lock store unreachable"):
        store.list()


def test_unlock_needs_a_reason_and_a_known_lock(estate_repo: Path, tmp_path: Path) -> None:
    clone_with_origin(estate_repo, tmp_path)
    store = locks.Store(estate_repo)
    with pytest.raises(InvalidInputError, match="--reason must say why"):
        store.force_unlock("lab/portal", " ")
    with pytest.raises(InvalidInputError, match="lab/portal: no such lock"):
        store.force_unlock("lab/portal", "cleanup")
    with pytest.raises(InvalidInputError, match="a lock is named ENV/SYSTEM"):
        store.force_unlock("portal", "cleanup")
