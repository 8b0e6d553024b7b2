"""Break one host of a running lab and mend it: crash, start, partition, heal."""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path

from gcmschange.errors import LabError
from gcmschange.lab import fleet, hostproc, netns, registry
from gcmschange.lab.layout import NETNS, HostRecord, LabRecord, Layout, load_record, save_record


def _running_lab(layout: Layout) -> LabRecord:
    record = load_record(layout)
    if record is None:
        raise LabError(f"no lab is up for {layout.root} (run `gcmschange lab up` first)")
    return record


def _sshd(host: HostRecord) -> hostproc.Pid:
    return hostproc.Pid(host.sshd_pid, host.sshd_start)


def crash(root: Path, host: str) -> None:
    """Kill the host's PID 1 with SIGKILL: every process in it dies, as in a power cut."""
    layout = Layout.of(root)
    with registry.locked(layout.lock_file):
        target = _running_lab(layout).host(host)
        if not hostproc.alive(_sshd(target)):
            raise LabError(f"lab host {host} is already down")
        hostproc.stop([_sshd(target)], signal.SIGKILL)
        hostproc.reap([target.unshare_pid])


def start(root: Path, host: str, *, ready_timeout: float = fleet.READY_TIMEOUT) -> None:
    """Boot a crashed host again: same data, key and address, a fresh /run."""
    layout = Layout.of(root)
    with registry.locked(layout.lock_file):
        record = _running_lab(layout)
        target = record.host(host)
        if hostproc.alive(_sshd(target)):
            raise LabError(f"lab host {host} is already up")
        spec = fleet.spec_of(layout, record, target)
        if spec.netns:
            port = netns.Port(spec.netns, layout.veth(target.index))
            netns.ensure_port(layout, port, record.latency_ms)
        with registry.machine_lock():
            # another tool may have removed an empty mount point while the host was down
            registry.create_mountpoints(target for _sub, target in hostproc.MOUNTS)
        hostproc.prepare(spec, layout.authorized_keys)
        pid = hostproc.spawn(spec)
        failed = hostproc.wait_ready({pid: spec}, ready_timeout)
        if failed:
            hostproc.sweep(spec.dir)
            hostproc.reap([pid])
            raise LabError(f"lab host {host} {failed[host]}")
        sshd = hostproc.sshd_of(pid)
        updated = replace(target, unshare_pid=pid, sshd_pid=sshd.pid, sshd_start=sshd.start)
        save_record(layout, record.with_host(updated))


def partition(root: Path, host: str) -> None:
    """Cut the host's link: it keeps running but nothing reaches it."""
    _set_partitioned(root, host, True)


def heal(root: Path, host: str) -> None:
    _set_partitioned(root, host, False)


def _set_partitioned(root: Path, host: str, cut: bool) -> None:
    layout = Layout.of(root)
    with registry.locked(layout.lock_file):
        record = _running_lab(layout)
        target = record.host(host)
        if record.mode != NETNS:
            verb = "partition" if cut else "heal"
            raise LabError(f"lab {verb} needs network-namespace mode (this lab is {record.mode})")
        netns.set_link(layout.veth(target.index), up=not cut)
        save_record(layout, record.with_host(replace(target, partitioned=cut)))
