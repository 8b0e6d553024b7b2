"""The one place where gcmschange runs subprocesses, and reads /proc about them.

A failing command becomes an `ExternalError` that names the command, its exit code and
what it printed, so no caller has to format that again.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gcmschange.errors import ExternalError


@dataclass(frozen=True)
class Completed:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def describe(args: Sequence[str], returncode: int, stdout: str, stderr: str) -> str:
    lines = [f"command failed (exit {returncode}): {' '.join(args)}"]
    if stdout.strip():
        lines.append(f"stdout: {stdout.strip()}")
    if stderr.strip():
        lines.append(f"stderr: {stderr.strip()}")
    return "\n".join(lines)


def run(
    args: Sequence[str],
    *,
    check: bool = True,
    input_text: str | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = 120,
) -> Completed:
    """Run a command without a shell; raise `ExternalError` on failure when `check`."""
    argv = tuple(str(a) for a in args)
    try:
        done = subprocess.run(
            argv,
            input=input_text,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ExternalError(f"{argv[0]}: not found on PATH (is it installed?)") from exc
    except subprocess.TimeoutExpired as exc:
        raise ExternalError(f"command timed out after {timeout}s: {' '.join(argv)}") from exc
    result = Completed(argv, done.returncode, done.stdout, done.stderr)
    if check and done.returncode != 0:
        raise ExternalError(describe(argv, done.returncode, done.stdout, done.stderr))
    return result


def spawn(
    args: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    new_session: bool = True,
) -> subprocess.Popen[bytes]:
    """Start a long-lived process with its output in `log`; the caller keeps the PID."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(a) for a in args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=new_session,
        )


def pipe(
    args: Sequence[str], *, stderr_log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a process to stream bytes through (its stdin and stdout are pipes the caller
    reads and writes), its stderr in `stderr_log`; the caller waits for it."""
    with stderr_log.open("ab") as err:
        try:
            return subprocess.Popen(
                [str(a) for a in args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise ExternalError(f"{args[0]}: not found on PATH (is it installed?)") from exc


def finish(process: subprocess.Popen[bytes], timeout: float) -> int:
    """Wait for a piped process to exit; kill it if it has not within `timeout` seconds."""
    for stream in (process.stdin, process.stdout):
        if stream is not None and not stream.closed:
            stream.close()
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


# What /proc says of processes gcmschange started earlier, possibly from another process (a
# killed run's playbook, a lab host). A PID alone can be reused; a PID with its start time
# names one process.


@dataclass(frozen=True)
class ProcStat:
    state: str  # R, S, D, Z (zombie), X (dead), ...
    parent: int
    start: int  # clock ticks since boot

    @property
    def gone(self) -> bool:
        """Exited, or a zombie waiting to be reaped: nothing left to stop."""
        return self.state in ("Z", "X")


def stat_of(pid: int) -> ProcStat | None:
    """`/proc/PID/stat`, or None when no such process exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # Fields from the third on; the second (comm) is in parentheses and may hold spaces.
    fields = text[text.rindex(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return ProcStat(fields[0], int(fields[1]), int(fields[19]))


def live_start(pid: int) -> int | None:
    """When `pid` started, if it is still running (not gone, not a zombie)."""
    stat = stat_of(pid)
    return None if stat is None or stat.gone else stat.start


def comm(pid: int) -> str:
    """The process's short name ("" when it is gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def pids() -> list[int]:
    """Every PID in this PID namespace now."""
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]


def cmdline(pid: int) -> bytes:
    """The process's arguments, NUL-separated (b"" when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def children() -> dict[int, list[int]]:
    """Every process's children now, by parent PID."""
    tree: dict[int, list[int]] = {}
    for pid in pids():
        stat = stat_of(pid)
        if stat is not None:
            tree.setdefault(stat.parent, []).append(pid)
    return tree


def descendants(pid: int) -> list[tuple[int, int]]:
    """Every process still running below `pid` now, each as (PID, start time)."""
    tree = children()
    found: list[tuple[int, int]] = []
    todo = list(tree.get(pid, ()))
    while todo:
        current = todo.pop()
        start = live_start(current)
        if start is not None:
            found.append((current, start))
        todo.extend(tree.get(current, ()))
    return found
