"""The one place where gcmschange runs subprocesses.

A failing command becomes an `ExternalError` that names the command, its exit code and
what it printed, so no caller has to format that again.
"""

from __future__ import annotations

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
