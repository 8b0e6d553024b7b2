"""Signals and kill -9 around a real ansible-playbook (connection local: no lab needed).

Ctrl-C or SIGTERM while a playbook runs stops that playbook and ends the verb as interrupted
(exit 130), instead of being swallowed by ansible-runner's handler and read as a failed wave.
A kill -9 of gcmschange leaves its playbook running (pexpect starts it ignoring SIGHUP);
`stop_leftovers`, which resume and rollback call first, finds and stops it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from gcmschange.errors import CancelledError, ExitCode
from gcmschange.execution import runner

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: a long task
      ansible.builtin.command: sleep {seconds}
"""


def sleep_seconds(tmp_path: Path) -> str:
    """A duration no other process on the machine sleeps for, to find this test's task."""
    return f"{100 + zlib.crc32(str(tmp_path).encode()) % 100_000 / 1000:.3f}"


def sleepers(tmp_path: Path) -> list[int]:
    wanted = f"sleep\0{sleep_seconds(tmp_path)}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "cmdline").read_bytes() == wanted:
                found.append(int(entry.name))
    return found


def spec(tmp_path: Path, name: str = "work") -> runner.RunSpec:
    playbook = PLAYBOOK.format(seconds=sleep_seconds(tmp_path))
    (tmp_path / "play.yml").write_text(playbook, encoding="utf-8")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n",
        encoding="utf-8",
    )
    return runner.RunSpec(tmp_path / "play.yml", inventory, tmp_path / "runs" / name)


def wait_for_pid(work_dir: Path, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    pid_file = work_dir / runner.PID_FILE
    while time.monotonic() < deadline:
        if pid_file.is_file() and pid_file.read_text(encoding="utf-8").strip():
            return int(pid_file.read_text(encoding="utf-8"))
        time.sleep(0.1)
    raise AssertionError(f"no {pid_file} after {timeout} s")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_playbook_stops_it_and_interrupts(
    tmp_path: Path, signum: signal.Signals
) -> None:
    run = spec(tmp_path)
    pids: list[int] = []

    def send() -> None:
        pids.append(wait_for_pid(run.work_dir))
        deadline = time.monotonic() + 30
        while not sleepers(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)  # the task is running on the "host"
        os.kill(os.getpid(), signum)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    before = signal.getsignal(signal.SIGINT)
    started = time.monotonic()
    with pytest.raises(CancelledError) as caught:
        runner.run_playbook(run)
    sender.join(5)
    assert caught.value.exit_code == ExitCode.INTERRUPTED
    assert f"{signum.name} received: the playbook was stopped" in caught.value.message
    assert time.monotonic() - started < 60  # not the 120 s of the task
    assert pids and not alive(pids[0])
    assert sleepers(tmp_path) == []  # the workers and the task went with it
    assert signal.getsignal(signal.SIGINT) is before  # ours again, for the next Ctrl-C


def test_a_playbook_left_by_a_killed_run_is_stopped_by_stop_leftovers(tmp_path: Path) -> None:
    run = spec(tmp_path)
    code = (
        "import sys; from pathlib import Path; from gcmschange.execution import runner; "
        f"runner.run_playbook(runner.RunSpec(Path({str(run.playbook)!r}), "
        f"Path({str(run.inventory)!r}), Path({str(run.work_dir)!r})))"
    )
    orchestrator = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        pid = wait_for_pid(run.work_dir)
        deadline = time.monotonic() + 30
        while not sleepers(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        orchestrator.kill()
        orchestrator.wait(10)
        time.sleep(1)
        assert alive(pid), "the playbook should outlive a kill -9 of its orchestrator"
        assert runner.stop_leftovers(tmp_path / "runs", grace_s=5) == (pid,)
        assert not alive(pid)
        assert sleepers(tmp_path) == []
        assert runner.stop_leftovers(tmp_path / "runs") == ()  # nothing twice
    finally:
        if orchestrator.poll() is None:
            orchestrator.kill()
        # whatever this test started and is still there (the assertions failed early)
        pid_file = run.work_dir / runner.PID_FILE
        if pid_file.is_file():
            runner.stop_leftovers(tmp_path / "runs", grace_s=1)


def test_a_stale_pid_file_naming_another_process_is_left_alone(tmp_path: Path) -> None:
    work = tmp_path / "runs" / "old"
    work.mkdir(parents=True)
    (work / runner.PID_FILE).write_text(f"{os.getpid()}\n", encoding="utf-8")  # reused PID
    assert runner.stop_leftovers(tmp_path / "runs") == ()
    (work / runner.PID_FILE).write_text("not a pid\n", encoding="utf-8")
    assert runner.stop_leftovers(tmp_path / "runs") == ()
