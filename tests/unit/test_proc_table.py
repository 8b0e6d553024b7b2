"""What gcmschange reads of /proc names one process, and says when it is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from gcmschange import proc


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_running_child_is_seen_with_its_start_its_name_and_its_parent() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        _until(lambda: proc.comm(child.pid) == "sleep")  # forked, and exec'd
        stat = proc.stat_of(child.pid)
        assert stat is not None and stat.parent == os.getpid() and not stat.gone
        assert proc.live_start(child.pid) == stat.start
        assert proc.cmdline(child.pid).split(b"\0")[:2] == [b"sleep", b"30"]
        assert (child.pid, stat.start) in proc.descendants(os.getpid())
        assert child.pid in proc.children()[os.getpid()]
    finally:
        child.kill()
        child.wait()


def test_a_zombie_counts_as_gone_and_a_reaped_process_as_absent() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    # Not reaped yet: a zombie still has a /proc entry, but nothing is left to stop.
    _until(lambda: (stat := proc.stat_of(child.pid)) is not None and stat.gone)
    assert proc.live_start(child.pid) is None
    assert all(pid != child.pid for pid, _ in proc.descendants(os.getpid()))
    child.wait()
    assert proc.stat_of(child.pid) is None
    assert proc.comm(child.pid) == "" and proc.cmdline(child.pid) == b""


def test_a_name_with_spaces_and_parentheses_does_not_shift_the_fields() -> None:
    # comm is the one field that may hold ") (": the fields are read after its last ")".
    script = "import ctypes,time; ctypes.CDLL(None).prctl(15, b'a) (b c', 0, 0, 0); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        _until(lambda: proc.comm(child.pid) == "a) (b c")
        stat = proc.stat_of(child.pid)
        assert stat is not None and stat.parent == os.getpid()
    finally:
        child.kill()
        child.wait()
