"""Bring a lab up, look at it, bring it down.

Order matters (see reference/lab-fleet-poc.sh): check everything that can refuse first,
reserve a network and the shared mount points under the machine lock, then make the hosts,
start them all and only then wait for them together, so 20 hosts take about a second.
Whatever goes wrong after the first thing is made, `_teardown` removes all of it.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from gcmschange import proc
from gcmschange.errors import GcmsError, LabError
from gcmschange.execution.nodes import ExecNode
from gcmschange.execution.nodes import parse as exec_parse
from gcmschange.lab import clientfiles, hostproc, monitoring, netns, preflight, registry
from gcmschange.lab.layout import (
    EXEC_NODE_PREFIX,
    FIRST_HOST_OCTET,
    LOOPBACK,
    MAX_LATENCY_MS,
    NETNS,
    HostRecord,
    LabRecord,
    Layout,
    host_name,
    load_record,
    save_record,
)
from gcmschange.rules.estate import load_estate

READY_TIMEOUT = 15.0
T = TypeVar("T")


@dataclass(frozen=True)
class LabHost:
    name: str
    system: str
    address: str
    pid: int | None  # sshd, PID 1 of the host, as seen from the machine; None when down
    state: str  # "up", "down" or "partitioned"
    exec_node: bool = False


@dataclass(frozen=True)
class LabState:
    root: Path
    id: str
    mode: str  # "netns" or "loopback"; "" when no lab is up
    network: str
    hosts: tuple[LabHost, ...]
    ssh_config: Path
    inventory: Path
    latency_ms: int = 0

    @property
    def is_up(self) -> bool:
        return bool(self.hosts)


def ssh_config_path(root: Path) -> Path:
    return Layout.of(root).ssh_config


def up(
    root: Path,
    systems: Sequence[str] | None = None,
    hosts_per_system: int = 2,
    mode: str = "auto",
    *,
    ready_timeout: float = READY_TIMEOUT,
    exec_nodes: int = 0,
    latency_ms: int = 0,
) -> LabState:
    """Start `hosts_per_system` hosts for each system and `exec_nodes` execution nodes (in
    no system: they run playbooks for the others), add `latency_ms` of round trip between
    lab machines, and write the client files."""
    preflight.require_root()
    wanted = preflight.systems_of(load_estate(root), systems)
    preflight.check_size(wanted, hosts_per_system, exec_nodes)
    if not 0 <= latency_ms <= MAX_LATENCY_MS:
        raise LabError(f"--latency: {latency_ms} ms is outside 0..{MAX_LATENCY_MS} ms")
    preflight.require_tools(need_ip=mode != LOOPBACK)
    layout = Layout.of(root)
    with registry.locked(layout.lock_file):
        existing = load_record(layout)
        if existing is not None:
            raise LabError(
                f"a lab is already up for {layout.root} ({len(existing.hosts)} hosts, "
                f"{existing.mode}); run `gcmschange lab down` first"
            )
        chosen = preflight.resolve_mode(mode)
        if chosen == LOOPBACK:
            preflight.require_port_22_free_on_loopback()
            if latency_ms:
                raise LabError("--latency needs network-namespace mode (a bridge to delay on)")
        if latency_ms and (why := netns.netem_missing()):
            raise LabError(f"--latency: tc netem cannot delay traffic here: {why}")
        _teardown(layout)  # what an earlier lab with this id left behind
        record = _reserve(layout, chosen, wanted, hosts_per_system, exec_nodes)
        record = replace(record, latency_ms=latency_ms)
        try:
            _build(layout, record, ready_timeout)
        except BaseException as exc:
            _teardown(layout)
            if isinstance(exc, GcmsError):
                reason = exc.message.splitlines()[0]
                raise LabError(f"lab up failed (nothing left behind): {reason}") from exc
            raise
    return status(root)


def _reserve(
    layout: Layout, mode: str, systems: Sequence[str], per_system: int, exec_nodes: int
) -> LabRecord:
    with registry.machine_lock():
        registry.prune_stale()
        network = registry.choose_network(layout, mode)
        registry.create_mountpoints(target for _sub, target in hostproc.MOUNTS)
        registry.claim(layout, network)
        prefix = network.rsplit(".", 1)[0]
        names = [(s, host_name(s, n)) for s in systems for n in range(1, per_system + 1)]
        names += [("", f"{EXEC_NODE_PREFIX}-{n}") for n in range(1, exec_nodes + 1)]
        hosts = tuple(
            HostRecord(name, system, i, f"{prefix}.{FIRST_HOST_OCTET + i}", exec_node=not system)
            for i, (system, name) in enumerate(names)
        )
        record = LabRecord(layout.id, str(layout.root), mode, network, hosts)
        save_record(layout, record)  # before the lock goes: an unrecorded claim looks stale
    return record


def spec_of(layout: Layout, record: LabRecord, host: HostRecord) -> hostproc.HostSpec:
    ns = layout.netns(host.name) if record.mode == NETNS else None
    kept = _python_under_root() if host.exec_node else ()
    return hostproc.HostSpec(host.name, layout.host_dir(host.name), host.address, ns, kept)


def _python_under_root() -> tuple[str, ...]:
    """The controller's Python installation when it lives under /root (pyenv does), which
    every lab host covers with a /root of its own."""
    prefix = Path(sys.base_prefix).resolve()
    return (str(prefix),) if prefix.is_relative_to("/root") else ()


def _parallel(func: Callable[[T], object], items: Iterable[T]) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in pool.map(func, items):
            pass


def _build(layout: Layout, record: LabRecord, ready_timeout: float) -> None:
    specs = {h.name: spec_of(layout, record, h) for h in record.hosts}
    clientfiles.ensure_client_key(layout)
    _parallel(hostproc.host_key, specs.values())
    for spec in specs.values():
        hostproc.prepare(spec, layout.authorized_keys)
    if record.mode == NETNS:
        gateway = f"{record.network.rsplit('.', 1)[0]}.1"
        ports = [netns.Port(layout.netns(h.name), layout.veth(h.index)) for h in record.hosts]
        netns.create(layout, gateway, ports)
        netns.set_latency(layout, [p.veth for p in ports], record.latency_ms)
    started = {hostproc.spawn(spec): spec for spec in specs.values()}
    by_name = {spec.name: pid for pid, spec in started.items()}
    record = replace(
        record, hosts=tuple(replace(h, unshare_pid=by_name[h.name]) for h in record.hosts)
    )
    save_record(layout, record)
    failed = hostproc.wait_ready(started, ready_timeout)
    if failed:
        name, why = next(iter(failed.items()))
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise LabError(f"host {name} {why}{more}")
    record = replace(record, hosts=tuple(_with_sshd(h) for h in record.hosts))
    save_record(layout, record)
    clientfiles.write_all(layout, record)


def _with_sshd(host: HostRecord) -> HostRecord:
    sshd = hostproc.sshd_of(host.unshare_pid)
    if sshd.pid == 0:
        raise LabError(f"host {host.name}: sshd is not running under unshare {host.unshare_pid}")
    return replace(host, sshd_pid=sshd.pid, sshd_start=sshd.start)


def down(root: Path) -> None:
    """Stop every host by PID and remove every mount point, link, namespace and file made."""
    layout = Layout.of(root)
    with registry.locked(layout.lock_file):
        _teardown(layout)


def _teardown(layout: Layout) -> None:
    record = load_record(layout)
    monitoring.stop_layout(layout)  # the lab's Prometheus runs on the controller, by PID
    _close_masters(layout)
    known = [hostproc.Pid(h.sshd_pid, h.sshd_start) for h in record.hosts] if record else []
    hostproc.stop(known)
    hostproc.sweep(layout.hosts_dir)
    hostproc.reap([h.unshare_pid for h in record.hosts] if record else [])
    if shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin"):
        netns.sweep(layout)
    with registry.machine_lock():
        registry.release(layout.id)
        registry.remove_mountpoints_if_last()
    shutil.rmtree(layout.control_dir, ignore_errors=True)
    clientfiles.remove(layout)
    shutil.rmtree(layout.base, ignore_errors=True)


def _close_masters(layout: Layout) -> None:
    """End ssh ControlMaster sessions to the lab; a partitioned host would keep one hanging."""

    def close(socket: Path) -> None:
        proc.run(
            ["ssh", "-F", "/dev/null", "-S", str(socket), "-O", "exit", "lab"],
            check=False,
            timeout=5,
        )

    _parallel(close, clientfiles.control_sockets(layout))


def status(root: Path) -> LabState:
    layout = Layout.of(root)
    record = load_record(layout)
    if record is None:
        return LabState(layout.root, layout.id, "", "", (), layout.ssh_config, layout.inventory)
    hosts = tuple(_host_state(h) for h in record.hosts)
    return LabState(
        layout.root,
        layout.id,
        record.mode,
        record.network,
        hosts,
        layout.ssh_config,
        layout.inventory,
        record.latency_ms,
    )


def _host_state(host: HostRecord) -> LabHost:
    running = hostproc.alive(hostproc.Pid(host.sshd_pid, host.sshd_start))
    state = ("partitioned" if host.partitioned else "up") if running else "down"
    pid = host.sshd_pid if running else None
    return LabHost(host.name, host.system, host.address, pid, state, host.exec_node)


def exec_nodes(root: Path) -> tuple[ExecNode, ...]:
    """The running lab's execution nodes, as the lab inventory names them."""
    layout = Layout.of(root)
    record = load_record(layout)
    if record is None:
        return ()
    return exec_parse(clientfiles.exec_nodes(layout, record), "lab")


def parse_latency(text: str) -> int:
    """Milliseconds from `30ms`, `30` or `0.03s`."""
    raw = text.strip().lower()
    try:
        if raw.endswith("ms"):
            value = float(raw[:-2])
        elif raw.endswith("s"):
            value = float(raw[:-1]) * 1000
        else:
            value = float(raw)
    except ValueError as exc:
        raise LabError(f"--latency: {text!r} is not a delay like 30ms") from exc
    if not 0 <= value <= MAX_LATENCY_MS:
        raise LabError(f"--latency: {text} is outside 0..{MAX_LATENCY_MS}ms")
    return round(value)
