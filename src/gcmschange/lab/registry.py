"""What the labs on this machine share, and who holds what.

Labs from different repository copies run at the same time. They share the mount points on
the real root (/etc/gcms, ...) and the address space of their networks, so each lab claims
its network under one machine-wide lock, and the mount points a lab created are removed
only when the last lab goes: rmdir on a directory that another lab's host has mounted over
would detach that host's mount.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from gcmschange import proc
from gcmschange.errors import LabError
from gcmschange.lab.layout import MACHINE_DIR, NETNS, Layout

REGISTRY = MACHINE_DIR
_CLAIMS = REGISTRY / "labs"
_CREATED = REGISTRY / "created-mountpoints"


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """An exclusive flock, released on exit even when the body raises."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def machine_lock() -> AbstractContextManager[None]:
    return locked(REGISTRY / "lock")


def _claims() -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for path in sorted(_CLAIMS.glob("*.json")) if _CLAIMS.is_dir() else ():
        try:
            found[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            path.unlink(missing_ok=True)
    return found


def _is_stale(lab: str, claim: dict[str, str]) -> bool:
    """A claim whose repository no longer has this lab's record: that lab is gone."""
    record = Path(claim.get("root", "/nonexistent")) / ".gcmschange" / "lab" / "lab.json"
    try:
        recorded: object = json.loads(record.read_text(encoding="utf-8")).get("id")
    except (ValueError, OSError, AttributeError):
        return True
    return recorded != lab


def prune_stale() -> None:
    """Call under `machine_lock`."""
    for lab, claim in _claims().items():
        if _is_stale(lab, claim):
            release(lab)


def claim(layout: Layout, network: str) -> None:
    """Call under `machine_lock`, and write the lab record before releasing it."""
    _CLAIMS.mkdir(parents=True, exist_ok=True)
    payload = {"root": str(layout.root), "network": network}
    (_CLAIMS / f"{layout.id}.json").write_text(json.dumps(payload), encoding="utf-8")


def release(lab: str) -> None:
    (_CLAIMS / f"{lab}.json").unlink(missing_ok=True)


def _interface_networks() -> set[str]:
    out = proc.run(["ip", "-o", "-4", "addr", "show"]).stdout
    nets = set()
    for match in re.finditer(r"inet (\d+)\.(\d+)\.(\d+)\.\d+/", out):
        nets.add(f"{match[1]}.{match[2]}.{match[3]}.0/24")
    return nets


def loopback_listeners() -> set[str]:
    """/24 networks (as strings) of addresses listening on TCP port 22 on this machine."""
    nets = set()
    for line in Path("/proc/net/tcp").read_text(encoding="ascii").splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        hex_addr, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == 22:
            octets = bytes.fromhex(hex_addr)[::-1]  # little-endian on x86 and arm
            nets.add(f"{octets[0]}.{octets[1]}.{octets[2]}.0/24")
    return nets


def _candidates(layout: Layout, mode: str) -> list[str]:
    """Every /24 a lab may use, starting at one derived from its id so labs rarely collide."""
    seed = int(layout.id, 16)
    if mode == NETNS:
        nets = [f"10.77.{n}.0/24" for n in range(256)]
    else:
        nets = [f"127.{a}.{b}.0/24" for a in range(100, 110) for b in range(256)]
    start = seed % len(nets)
    return nets[start:] + nets[:start]


def choose_network(layout: Layout, mode: str) -> str:
    """A /24 no interface, listener or other lab uses. Call under `machine_lock`."""
    used = {c.get("network", "") for c in _claims().values()}
    used |= _interface_networks() if mode == NETNS else loopback_listeners()
    for net in _candidates(layout, mode):
        if net not in used:
            return net
    raise LabError(f"no free /24 network left for a {mode} lab on this machine")


def create_mountpoints(targets: Iterable[str]) -> None:
    """Create missing mount points and remember them. Call under `machine_lock`."""
    created = _created()
    for target in targets:
        path = Path(target)
        if not path.exists():
            path.mkdir(parents=True)
            created.append(target)
    REGISTRY.mkdir(parents=True, exist_ok=True)
    _CREATED.write_text("".join(f"{c}\n" for c in dict.fromkeys(created)), encoding="utf-8")


def _created() -> list[str]:
    try:
        return _CREATED.read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return []


def remove_mountpoints_if_last() -> None:
    """Remove the mount points labs created once no lab claims remain. Under `machine_lock`."""
    if _claims():
        return
    kept = []
    for target in reversed(_created()):
        path = Path(target)
        try:
            if path.is_dir() and not path.is_mount():
                path.rmdir()
        except OSError:
            kept.append(target)  # someone put files there; leave it and remember it
    _CREATED.write_text("".join(f"{k}\n" for k in reversed(kept)), encoding="utf-8")
