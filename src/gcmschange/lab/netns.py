"""The lab's network: a bridge, one veth per host into the host's network namespace.

Everything goes through `ip -batch`, one process for the whole fleet, because 20 hosts times 5
`ip` calls each would cost more than starting the hosts themselves.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from gcmschange import proc
from gcmschange.errors import ExternalError, LabError
from gcmschange.lab.layout import Layout

# The kernel tears a namespace down asynchronously; a veth of a partitioned host was seen
# to linger for minutes, so `down` deletes links itself and waits for them to go.
GONE_TIMEOUT = 30.0


@dataclass(frozen=True)
class Port:
    netns: str
    veth: str


def _batch(lines: Sequence[str], *, force: bool = False) -> proc.Completed:
    args = ["ip", "-force", "-batch", "-"] if force else ["ip", "-batch", "-"]
    return proc.run(args, input_text="".join(f"{line}\n" for line in lines), check=not force)


def available() -> bool:
    """True when this process may create network namespaces (root, and the kernel allows it)."""
    probe = f"gcl-probe-{os.getpid()}"
    try:
        done = proc.run(["ip", "netns", "add", probe], check=False, timeout=10)
    except ExternalError:
        return False
    proc.run(["ip", "netns", "del", probe], check=False, timeout=10)
    return done.returncode == 0


def create(layout: Layout, gateway: str, ports: Sequence[Port]) -> None:
    """The bridge with the controller's address, and every host's namespace and veth."""
    lines = [
        f"link add {layout.bridge} type bridge",
        f"addr add {gateway}/24 dev {layout.bridge}",
        f"link set {layout.bridge} up",
    ]
    for port in ports:
        lines += attach_lines(layout, port)
    _batch(lines)


def attach_lines(layout: Layout, port: Port) -> list[str]:
    # The host configures its own end (address, lo) from inside, as it starts.
    return [
        f"netns add {port.netns}",
        f"link add {port.veth} type veth peer name eth0 netns {port.netns}",
        f"link set {port.veth} master {layout.bridge} up",
    ]


def ensure_port(layout: Layout, port: Port, round_trip_ms: int = 0) -> None:
    """Re-create a host's namespace and veth if they are gone (start after a sweep)."""
    if port.netns not in namespaces(layout) or port.veth not in links(layout):
        _batch([f"link del {port.veth}", f"netns del {port.netns}"], force=True)
        _batch(attach_lines(layout, port))
        set_latency(layout, [port.veth], round_trip_ms)


def inside_setup(address: str) -> str:
    """Shell run inside the host's namespace before sshd starts."""
    return f"ip link set lo up && ip addr replace {address}/24 dev eth0 && ip link set eth0 up"


def set_latency(layout: Layout, veths: Sequence[str], round_trip_ms: int) -> None:
    """Delay every frame into a lab machine by half of `round_trip_ms` (tc netem on each
    host's veth and on the bridge, the controller's port): any two lab machines then see that
    round trip, as hosts across a real network do. The qdiscs go with their links."""
    if round_trip_ms <= 0:
        return
    half = f"{round_trip_ms / 2:g}ms"
    lines = [f"qdisc replace dev {dev} root netem delay {half}" for dev in (*veths, layout.bridge)]
    proc.run(["tc", "-batch", "-"], input_text="".join(f"{line}\n" for line in lines))


def netem_missing() -> str:
    """Why this machine cannot delay lab traffic ("" when it can): tc must be installed and
    the kernel must have the netem qdisc (sch_netem), which some sandboxes leave out."""
    probe = f"gcl-nm-{os.getpid() % 100000}"
    try:
        proc.run(["ip", "link", "add", probe, "type", "bridge"], timeout=10)
    except ExternalError as exc:
        return exc.message.splitlines()[0]
    try:
        done = proc.run(
            ["tc", "qdisc", "add", "dev", probe, "root", "netem", "delay", "1ms"],
            check=False,
            timeout=10,
        )
    except ExternalError as exc:
        return exc.message.splitlines()[0]
    finally:
        proc.run(["ip", "link", "del", probe], check=False, timeout=10)
    if done.returncode != 0:
        return (done.stderr.strip() or f"tc exited {done.returncode}").splitlines()[0]
    return ""


def set_link(veth: str, up: bool) -> None:
    proc.run(["ip", "link", "set", veth, "up" if up else "down"])


def links(layout: Layout) -> list[str]:
    out = proc.run(["ip", "-o", "link", "show"]).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]
    return [n for n in names if n == layout.bridge or n.startswith(layout.veth_prefix)]


def namespaces(layout: Layout) -> list[str]:
    out = proc.run(["ip", "netns", "list"]).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(layout.netns_prefix)]


def sweep(layout: Layout, timeout: float = GONE_TIMEOUT) -> None:
    """Delete every link, bridge and namespace of this lab, and wait until none remains."""
    deadline = time.monotonic() + timeout
    while True:
        left_links, left_ns = links(layout), namespaces(layout)
        if not left_links and not left_ns:
            return
        if time.monotonic() > deadline:
            left = ", ".join(left_links + left_ns)
            raise LabError(f"lab {layout.id}: still present after {timeout:.0f}s: {left}")
        # veths first: deleting one end removes its peer inside the namespace at once.
        veths = [n for n in left_links if n != layout.bridge]
        lines = [f"link del {n}" for n in veths] + [f"netns del {n}" for n in left_ns]
        lines += [f"link del {layout.bridge}"] if layout.bridge in left_links else []
        _batch(lines, force=True)
        time.sleep(0.05)
