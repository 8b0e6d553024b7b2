"""gitrepo leaves no git process behind: each function closes the repository it opened.

Reading an object through GitPython starts `git cat-file` processes that live as long as
the Repo. A Repo is part of a reference cycle, so it is freed by the garbage collector, which
finalizes the cycle in no set order, and a CI run once caught one of those processes still
running, its three pipes open, as unraisable ResourceWarnings blamed on an unrelated test.
These tests look at the process table right after each call, with the garbage collector held
off, so nothing but the function itself can have stopped the processes.
"""

from __future__ import annotations

import gc
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gcmschange import gitrepo, proc
from gcmschange.errors import ExternalError


def _git_children() -> list[str]:
    """Command lines of the git processes still running below this one."""
    found = []
    for pid, _start in proc.descendants(os.getpid()):
        argv = [a.decode() for a in proc.cmdline(pid).split(b"\0") if a]
        if argv and Path(argv[0]).name == "git":
            found.append(" ".join(argv))
    return found


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "estate"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("a\n", encoding="utf-8")
    (root / "estate.yml").write_text("systems: {}\n", encoding="utf-8")
    gitrepo.init_with_everything(root, "first")
    return root


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


CALLS: dict[str, Callable[[Path], object]] = {
    "head_sha": gitrepo.head_sha,
    "last_author": lambda r: gitrepo.last_author(r, r / "estate.yml"),
    "resolve_commit": lambda r: gitrepo.resolve_commit(r, "HEAD"),
    "merge_base": lambda r: gitrepo.merge_base(r, "HEAD", "HEAD"),
    "file_at": lambda r: gitrepo.file_at(r, gitrepo.head_sha(r), "estate.yml"),
    "files_at": lambda r: gitrepo.files_at(r, "HEAD", ["docs", "estate.yml"]),
    "export_tree": lambda r: gitrepo.export_tree(r, "HEAD", r.parent / "out"),
    "commit_time": lambda r: gitrepo.commit_time(r, gitrepo.head_sha(r)),
    "make_commit": lambda r: gitrepo.make_commit(r, "lock", files={"x": b"1"}),
    "has_remote": lambda r: gitrepo.has_remote(r, "origin"),
    "chain_messages": lambda r: gitrepo.chain_messages(r, "HEAD"),
}


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.usefixtures("no_gc")
def test_a_call_leaves_no_git_process_running(repo: Path, name: str) -> None:
    CALLS[name](repo)
    assert _git_children() == []


@pytest.mark.usefixtures("no_gc")
def test_a_failed_read_leaves_no_git_process_running(repo: Path) -> None:
    # The path that once leaked: an error raised from inside GitPython, its traceback
    # holding the Repo.
    with pytest.raises(ExternalError, match="no revision"):
        gitrepo.files_at(repo, "0" * 40, ["docs"])
    assert gitrepo.file_at(repo, gitrepo.head_sha(repo), "missing.yml") is None
    assert _git_children() == []


def test_the_check_sees_a_git_process_that_is_left_running(repo: Path) -> None:
    """The probe itself works: a cat-file left running is seen."""
    child = subprocess.Popen(
        ["git", "cat-file", "--batch"],
        cwd=repo,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Until it has exec'd, the child's command line is still this Python's.
        deadline = time.monotonic() + 10
        while not any("cat-file" in c for c in _git_children()):
            assert time.monotonic() < deadline, "the probe never saw git cat-file"
            time.sleep(0.01)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)
