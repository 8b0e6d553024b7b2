"""One playbook run on an execution node: ansible-runner's transmit -> worker -> process.

The controller packages the run (`transmit`): a private data dir holding the sealed tree as
`project/`, the run's ansible.cfg, extra vars, the rendered files and, when the estate uses
a vault, the password. Every path in it names the worker's own folder on the node, never the
controller's, so the node runs exactly these bytes and needs nothing from this machine. The
node runs `ansible-runner worker` on it (over ssh: its stdin, its stdout) and streams the
events back; `process` hands them to the same collector as a local run (progress, masking,
failures) and writes the same artifacts. A node lost mid-run ends the stream early: its
hosts that did not finish are counted unreachable, which the wave's threshold then judges.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from gcmschange import proc, vault
from gcmschange.errors import ExternalError
from gcmschange.execution import accel
from gcmschange.execution.runner import (
    Collector,
    HostStats,
    Progress,
    RunResult,
    RunSpec,
    Signalled,
    ansible_cfg,
    drop_environment,
    extravars_text,
    failure_message,
    host_stats,
    mask_tree,
    run_secrets,
    with_files,
)
from gcmschange.paths import STATE_DIR, memory_folder

WORKER_WAIT_S = 30.0  # after the stream ended, for ssh and the worker to exit


@dataclass(frozen=True)
class WorkerLink:
    """How to reach `ansible-runner worker` on one node, and where it works there."""

    node: str  # the execution node's name, for messages
    argv: tuple[str, ...]  # the command whose stdin/stdout are the worker's (ssh NODE ...)
    work_dir: str  # the worker's private data dir on the node (the command creates it)
    control_dir: str  # on the node: ssh ControlPath sockets of its runs to the hosts
    # ssh to the node, up to and including the destination, for a command of our own (the
    # stop request); () when the worker is not behind ssh (a local stand-in in tests)
    ssh: tuple[str, ...] = ()


PID_MARK = "gcms-worker-pid "  # the node's shell says the worker's PID on stderr, then execs it
CANCEL_GRACE_S = 20.0  # after the stop request, for the worker to stream its "canceled"


def _stage(spec: RunSpec, stage: Path, link: WorkerLink, password: Path | None) -> list[str]:
    """Fill `stage` as the worker will see it at `link.work_dir`; return the command line."""
    if spec.content is None:
        raise ExternalError(f"{spec.playbook}: a run on an execution node needs the sealed tree")
    remote = link.work_dir
    project = stage / "project"
    _copy_content(spec.content, project)
    cfg = ansible_cfg(spec, project, link.control_dir)
    # Paths pinned inside the sealed tree name its copy as the worker unpacks it.
    (stage / "ansible.cfg").write_text(cfg.replace(str(stage.resolve()), remote), encoding="utf-8")
    files = None
    if spec.files is not None:
        shutil.copytree(spec.files, stage / "rendered", symlinks=True)
        files = f"{remote}/rendered"
    (stage / "extravars.yml").write_text(extravars_text(with_files(spec, files)), encoding="utf-8")
    cmdline = [f"-e @{remote}/extravars.yml"]
    if password is not None:
        target = stage / "vault-password"
        shutil.copyfile(password, target)
        target.chmod(0o600)
        cmdline.append(f"--vault-password-file {remote}/vault-password")
    if spec.check:
        cmdline.append("--check")
    if spec.diff:
        cmdline.append("--diff")
    return cmdline


def _copy_content(content: Path, project: Path) -> None:
    """A sealed tree whole; a repository root (drift, converge) without its git history and
    gcmschange's own state, which no playbook reads."""
    project.mkdir()
    for entry in content.iterdir():
        if entry.name in {".git", STATE_DIR}:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, project / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, project / entry.name, follow_symlinks=False)


def _inventory_in(stage: Path, inventory: Path, content: Path) -> Path:
    """The inventory inside the payload: in the sealed tree's copy, or (a restore runs the
    base's tree with the change's inventory) copied beside it."""
    if inventory.resolve().is_relative_to(content.resolve()):
        return stage.resolve() / "project" / _relative(inventory, content)
    copy = stage.resolve() / "inventory"
    if inventory.is_dir():
        shutil.copytree(inventory, copy, symlinks=True)
        return copy
    copy.mkdir()
    shutil.copy2(inventory, copy / inventory.name)
    return copy / inventory.name


def _relative(path: Path, root: Path) -> str:
    resolved, base = path.resolve(), root.resolve()
    if not resolved.is_relative_to(base):
        raise ExternalError(f"{path}: must lie inside the sealed tree {root} to run on a node")
    return str(resolved.relative_to(base))


def _transmit(spec: RunSpec, link: WorkerLink, ident: str, folder: Path) -> Path:
    """The run packaged for the worker, as one stream in `folder/payload`."""
    import ansible_runner

    content = spec.content
    assert content is not None  # _stage refused otherwise
    stage = folder / "pdd"
    stage.mkdir()
    with vault.password_file(content) as password:
        cmdline = _stage(spec, stage, link, password)
        payload = folder / "payload"
        with payload.open("wb") as out:
            ansible_runner.run(
                streamer="transmit",
                _output=out,
                private_data_dir=str(stage),
                playbook=_relative(spec.playbook, content),
                # A path inside the private data dir: transmit makes it relative, the worker
                # makes it its own (a string that is not a path would be taken for content).
                inventory=str(_inventory_in(stage, spec.inventory, content)),
                ident=ident,
                limit=",".join(spec.limit) if spec.limit else None,
                cmdline=" ".join(cmdline),
                envvars={
                    "ANSIBLE_CONFIG": f"{link.work_dir}/ansible.cfg",
                    "ANSIBLE_HOST_KEY_CHECKING": "True",
                },
                forks=spec.forks,
                quiet=True,
                suppress_env_files=True,
                cancel_callback=lambda: False,
                timeout=3600,
            )
    shutil.rmtree(stage)  # extra vars and the vault password: gone before anything is sent
    return payload


def _feed(payload: Path, stdin: IO[bytes] | None) -> None:
    if stdin is None:
        return
    # A worker that dies early closes its end: what it said is in the stream, not here.
    with suppress(BrokenPipeError, OSError), payload.open("rb") as source, stdin:
        shutil.copyfileobj(source, stdin, 1 << 20)


class _Status:
    """The worker's last status and why, from its status lines."""

    def __init__(self) -> None:
        self.status = "unstarted"
        self.explanation = ""

    def __call__(self, data: dict[str, Any], runner_config: Any = None) -> None:
        self.status = str(data.get("status", self.status))
        if data.get("job_explanation"):
            self.explanation = str(data["job_explanation"])


def _worker_pid(spec: RunSpec) -> int | None:
    path = spec.work_dir / "worker.stderr"
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    for line in text.splitlines():
        if line.startswith(PID_MARK) and line[len(PID_MARK) :].strip().isdigit():
            return int(line[len(PID_MARK) :].strip())
    return None


def _stop_when_signalled(
    signalled: Signalled,
    ended: threading.Event,
    worker: subprocess.Popen[bytes],
    spec: RunSpec,
    link: WorkerLink,
) -> None:
    """After SIGINT/SIGTERM here: SIGTERM to the worker on the node, which ansible-runner
    takes as a cancel (it stops the playbook and its workers, then streams "canceled"); if
    the stream has not ended within the grace, cut it from this side."""
    while not ended.wait(0.2):
        if signalled() is None:
            continue
        pid = _worker_pid(spec)
        if link.ssh and pid is not None:
            with suppress(ExternalError):
                proc.run([*link.ssh, f"kill -TERM {pid}"], check=False, timeout=15)
        elif pid is not None:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        if not ended.wait(CANCEL_GRACE_S):
            worker.kill()
        return


def run_remote(
    spec: RunSpec,
    link: WorkerLink,
    progress: Progress | None = None,
    signalled: Signalled | None = None,
) -> RunResult:
    """Run `spec` on the execution node of `link`; the events come back to `progress`.
    `signalled`: the caller's record of SIGINT/SIGTERM; once set, the node is asked to stop."""
    import ansible_runner

    if spec.work_dir.exists() and any(spec.work_dir.iterdir()):
        raise ExternalError(f"{spec.work_dir}: runner work dir must be fresh")
    spec.work_dir.mkdir(parents=True, exist_ok=True)
    ident = uuid.uuid4().hex
    collector = Collector(spec, progress, local=False)
    status = _Status()
    started = time.monotonic()
    with memory_folder("gcms-transmit-") as folder:
        payload = _transmit(spec, link, ident, folder)
        worker = proc.pipe(link.argv, stderr_log=spec.work_dir / "worker.stderr")
        feeder = threading.Thread(target=_feed, args=(payload, worker.stdin), daemon=True)
        feeder.start()
        ended = threading.Event()
        if signalled is not None:
            stopper = (signalled, ended, worker, spec, link)
            threading.Thread(target=_stop_when_signalled, args=stopper, daemon=True).start()
        try:
            ansible_runner.run(
                streamer="process",
                _input=worker.stdout,
                private_data_dir=str(spec.work_dir),
                ident=ident,
                event_handler=collector,
                status_handler=status,
                quiet=True,
                cancel_callback=lambda: False,
            )
        finally:
            # Also when the stream could not be read: the worker is waited for, its pipes
            # closed, never left running behind an exception.
            ended.set()
            feeder.join(timeout=WORKER_WAIT_S)
            code = proc.finish(worker, WORKER_WAIT_S)
    duration = time.monotonic() - started
    artifacts = spec.work_dir / "artifacts"
    drop_environment(artifacts)
    mask_tree(spec.work_dir, run_secrets(spec))
    return _result(
        spec,
        link,
        collector=collector,
        status=status,
        code=code,
        artifacts=artifacts / ident,
        duration=duration,
    )


def _stderr_tail(spec: RunSpec) -> str:
    path = spec.work_dir / "worker.stderr"
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    said = "\n".join(line for line in text.splitlines() if not line.startswith(PID_MARK))
    return failure_message(said) if said.strip() else ""


def _result(
    spec: RunSpec,
    link: WorkerLink,
    *,
    collector: Collector,
    status: _Status,
    code: int,
    artifacts: Path,
    duration: float,
) -> RunResult:
    stats = collector.stats
    hosts = host_stats(stats, collector)
    # The worker's last word is a final status; a stream that ends without one was cut.
    finished = status.status in {"successful", "failed", "timeout", "canceled"}
    failures = (
        collector.failures_of(status.status, spec.limit) if finished else dict(collector.failures)
    )
    unreachable = set(collector.unreachable) | set(stats.get("dark", {}) or {})
    if not finished:
        # The stream ended before the playbook's recap: the node (or the way to it) was lost.
        why = status.explanation or _stderr_tail(spec) or f"worker exited {code}"
        why = f"execution node {link.node} lost: {why.splitlines()[0][:300]}"
        for host in lost_hosts(spec.limit, failures):
            unreachable.add(host)
            failures[host] = why
            hosts[host] = HostStats(unreachable=1)
    changes = tuple(collector.changes)
    if spec.files is not None:  # diffs name the rendered files where this machine has them
        here, there = str(spec.files.resolve()), f"{link.work_dir}/rendered"
        changes = tuple(replace(c, diff=c.diff.replace(there, here)) for c in changes)
    rc_file = artifacts / "rc"
    rc = int(rc_file.read_text().strip() or -1) if finished and rc_file.is_file() else -1
    return RunResult(
        status=status.status if finished else "failed",
        rc=rc,
        hosts=hosts,
        changes=changes,
        failures=failures,
        unreachable=tuple(sorted(unreachable)),
        artifacts=artifacts.parent,
        duration_s=duration,
        accelerated=spec.accelerate and accel.available(),
        notice=accel.MISSING if spec.accelerate and not accel.available() else "",
    )


def lost_hosts(limit: Sequence[str], failures: dict[str, str]) -> tuple[str, ...]:
    """The hosts of a run whose node was lost that had not already failed on their own."""
    return tuple(h for h in limit if h not in failures)
