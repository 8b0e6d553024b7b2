"""Execution nodes: which machine runs the playbook for which hosts, and whether it is well.

An estate reaches its hosts through execution nodes, one or more per network zone (AWX's
model, without its mesh): `estate.yml` names them per environment with the systems each
reaches, and an environment's inventory may name them instead as the variable
`gcms_execution_nodes` (the lab's generated inventory does). A host is run by a node that
reaches its system, the hosts of one run dealt round-robin across the nodes that share a
zone; a host no node claims is run from the controller. Each node's share runs at the same
time as the others' (`remote.run_remote`), and their results are one result.

Node settings (both sources): `ssh` (destination for ssh), `systems` (default: all),
`ansible_runner` (the command on the node), `work_dir` (its scratch folder there) and
`ssh_config` (an ssh_config file on the controller for reaching the node).
"""

from __future__ import annotations

import re
import shlex
import signal
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from gcmschange import proc
from gcmschange.errors import CancelledError, ExternalError, InvalidInputError
from gcmschange.execution.remote import PID_MARK, WorkerLink, run_remote
from gcmschange.execution.runner import (
    HostStats,
    Progress,
    RunResult,
    RunSpec,
    own_signals,
    run_playbook,
)
from gcmschange.model import Host

INVENTORY_VAR = "gcms_execution_nodes"
# Memory-backed, as on the controller: a run's folder holds the vault password and rendered
# files with secret values until the worker deletes it, and a disk may keep what was deleted.
DEFAULT_WORK_DIR = "/dev/shm/gcmschange-worker"
HEALTH_TIMEOUT_S = 15.0
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
# ssh destinations and remote paths go into an argv and a remote shell: no option-looking
# value, no whitespace, nothing a shell would read as syntax.
_SSH = re.compile(r"^[A-Za-z0-9_.@:\[\]-]{1,253}$")
_PATH = re.compile(r"^/[A-Za-z0-9_./+-]{0,500}$")
_KEYS = frozenset({"ssh", "systems", "ansible_runner", "work_dir", "ssh_config"})


@dataclass(frozen=True)
class ExecNode:
    name: str
    ssh: str  # destination for ssh: a host, user@host, or a Host of `ssh_config`
    systems: tuple[str, ...] = ()  # the systems whose hosts it reaches; () for every one
    ansible_runner: str = "ansible-runner"  # the command on the node
    work_dir: str = DEFAULT_WORK_DIR  # its scratch folder on the node
    ssh_config: str = ""  # on the controller: `ssh -F` for reaching the node

    def reaches(self, system: str) -> bool:
        return not self.systems or system in self.systems


@dataclass(frozen=True)
class NodeHealth:
    name: str
    ssh: str
    reachable: bool
    version: str  # ansible-runner's version on the node; "" when unknown
    detail: str  # why not reachable, in one line


def parse(raw: Any, where: str) -> tuple[ExecNode, ...]:
    """Nodes from `{name: {ssh: ..., systems: [...], ...}}`, each setting checked."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"{where}: expected a mapping of node name to its settings")
    return tuple(_node(str(name), spec, f"{where}.{name}") for name, spec in raw.items())


def _node(name: str, spec: Any, where: str) -> ExecNode:
    if not _NAME.match(name):
        raise InvalidInputError(f"{where}: a node name is lowercase letters, digits, . _ -")
    if not isinstance(spec, Mapping):
        raise InvalidInputError(f"{where}: expected a mapping with at least `ssh`")
    unknown = sorted(set(map(str, spec)) - _KEYS)
    if unknown:
        raise InvalidInputError(f"{where}: unknown setting {unknown[0]!r}")
    ssh = _text(spec, "ssh", _SSH, where, required=True)
    if ssh.startswith("-"):
        raise InvalidInputError(f"{where}.ssh: must not start with '-' (an ssh option)")
    systems = spec.get("systems", [])
    if not isinstance(systems, list) or not all(isinstance(s, str) for s in systems):
        raise InvalidInputError(f"{where}.systems: expected a list of system ids")
    runner = _text(spec, "ansible_runner", re.compile(r"^(/[\w./+-]+|ansible-runner)$"), where)
    return ExecNode(
        name=name,
        ssh=ssh,
        systems=tuple(systems),
        ansible_runner=runner or "ansible-runner",
        work_dir=_text(spec, "work_dir", _PATH, where) or DEFAULT_WORK_DIR,
        ssh_config=_text(spec, "ssh_config", _PATH, where),
    )


def _text(
    spec: Mapping[str, Any],
    key: str,
    pattern: re.Pattern[str],
    where: str,
    *,
    required: bool = False,
) -> str:
    value = spec.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not pattern.match(value) or ".." in value.split("/"):
        raise InvalidInputError(f"{where}.{key}: {value!r} is not an acceptable value")
    return value


def of_environment(from_estate: Sequence[ExecNode], hosts: Sequence[Host]) -> tuple[ExecNode, ...]:
    """The environment's nodes: its inventory's `gcms_execution_nodes` when it sets them (on
    any host), else the estate's."""
    for host in hosts:
        if INVENTORY_VAR in host.vars:
            return parse(host.vars[INVENTORY_VAR], f"inventory: {host.name}: {INVENTORY_VAR}")
    return tuple(from_estate)


def place(
    nodes: Sequence[ExecNode], hosts: Sequence[Host], down: frozenset[str] = frozenset()
) -> dict[str, ExecNode | None]:
    """Host name -> the node that runs it (None: the controller), hosts that share the same
    nodes dealt round-robin across them in the order given. Nodes in `down` are passed over
    while another node reaches the same hosts (a zone with every node down keeps them: its
    hosts are then unreachable, as they are from here)."""
    dealt: dict[tuple[str, ...], int] = {}
    placed: dict[str, ExecNode | None] = {}
    for host in hosts:
        reaching = [n for n in nodes if n.reaches(host.system)]
        if not reaching:
            placed[host.name] = None
            continue
        able = [n for n in reaching if n.name not in down] or reaching
        key = tuple(n.name for n in able)
        turn = dealt.get(key, 0)
        placed[host.name] = able[turn % len(able)]
        dealt[key] = turn + 1
    return placed


def ssh_argv(node: ExecNode, command: str) -> list[str]:
    config = ["-F", node.ssh_config] if node.ssh_config else []
    # Keepalives end a stream from a node that went silent (partitioned) within ~15 s.
    options = ["-o", "BatchMode=yes", "-o", "ServerAliveInterval=5"]
    options += ["-o", "ServerAliveCountMax=3", "-o", "ConnectTimeout=10"]
    return ["ssh", *config, *options, "-T", "--", node.ssh, command]


def link(node: ExecNode, run_id: str) -> WorkerLink:
    """How one run reaches the worker on `node`: its own folder, removed when it ends."""
    folder = f"{node.work_dir}/{run_id}"
    runner = node.ansible_runner
    # The worker finds ansible-playbook beside its own ansible-runner (a venv's bin) first.
    bin_dir = runner.rsplit("/", 1)[0] if "/" in runner else ""
    path = f'PATH={shlex.quote(bin_dir)}:"$PATH" ' if bin_dir else ""
    command = (
        f"umask 077 && mkdir -p {shlex.quote(node.work_dir)} && "
        f"echo {PID_MARK}$$ >&2 && "  # exec keeps the PID: a stop request can name the worker
        f"{path}exec {shlex.quote(runner)} worker "
        f"--private-data-dir {shlex.quote(folder)} --delete"
    )
    argv = tuple(ssh_argv(node, command))
    return WorkerLink(node.name, argv, folder, f"{node.work_dir}/cp", ssh=argv[:-1])


def health(node: ExecNode) -> NodeHealth:
    """Reachable over ssh, and which ansible-runner it has."""
    try:
        done = proc.run(
            ssh_argv(node, f"{shlex.quote(node.ansible_runner)} --version"),
            check=False,
            timeout=HEALTH_TIMEOUT_S,
        )
    except ExternalError as exc:
        return NodeHealth(node.name, node.ssh, False, "", exc.message.splitlines()[0])
    if done.returncode != 0:
        why = done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}"
        return NodeHealth(node.name, node.ssh, False, "", why.splitlines()[-1][:300])
    return NodeHealth(node.name, node.ssh, True, done.stdout.strip(), "")


def health_of(nodes: Sequence[ExecNode]) -> tuple[NodeHealth, ...]:
    if not nodes:
        return ()
    with ThreadPoolExecutor(max_workers=min(8, len(nodes))) as pool:
        return tuple(pool.map(health, nodes))


def run(
    spec: RunSpec, placement: Mapping[str, ExecNode | None], progress: Progress | None = None
) -> RunResult:
    """Run `spec` with each host on its node (at the same time), as one result. Without any
    node among `spec.limit`'s hosts this is exactly a local run."""
    shares: dict[str, list[str]] = {}
    by_name: dict[str, ExecNode] = {}
    for host in spec.limit:
        node = placement.get(host)
        key = node.name if node is not None else ""
        shares.setdefault(key, []).append(host)
        if node is not None:
            by_name[node.name] = node
    if set(shares) <= {""}:
        return run_playbook(spec, progress)
    run_id = spec.work_dir.name + "-" + _token()
    started = time.monotonic()

    # The shares run in threads, where no signal arrives: this (main) thread takes SIGINT
    # and SIGTERM for all of them, and each share stops its own playbook, here or on a node.
    with own_signals() as signalled:

        def one(key: str) -> RunResult:
            hosts = tuple(shares[key])
            folder = spec.work_dir / (f"node-{key}" if key else "controller")
            share = replace(spec, limit=hosts, work_dir=folder, forks=max(5, min(50, len(hosts))))
            if not key:
                return run_playbook(share, progress, signalled)
            return run_remote(share, link(by_name[key], run_id), progress, signalled)

        spec.work_dir.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=len(shares)) as pool:
            results = list(pool.map(one, sorted(shares)))
        signum = signalled()
    if signum is not None:
        raise CancelledError(
            f"{signal.Signals(signum).name} received: the playbooks on "
            f"{', '.join(sorted(k or 'the controller' for k in shares))} were stopped after "
            f"{time.monotonic() - started:.0f} s; what they did so far is recorded"
        )
    return combine(results, spec)


def _token() -> str:
    import secrets

    return secrets.token_hex(4)


def combine(results: Sequence[RunResult], spec: RunSpec) -> RunResult:
    """Runs on disjoint hosts, side by side, as one: the worst status, every host's own."""
    hosts: dict[str, HostStats] = {}
    failures: dict[str, str] = {}
    for result in results:
        hosts.update(result.hosts)
        failures.update(result.failures)
    bad = [r for r in results if r.status != "successful"]
    return RunResult(
        status=bad[0].status if bad else "successful",
        rc=max(r.rc for r in results),
        hosts=hosts,
        changes=tuple(c for r in results for c in r.changes),
        failures=failures,
        unreachable=tuple(sorted({h for r in results for h in r.unreachable})),
        artifacts=spec.work_dir,
        duration_s=max(r.duration_s for r in results),
        accelerated=all(r.accelerated for r in results),
        notice=next((r.notice for r in results if r.notice), ""),
    )
