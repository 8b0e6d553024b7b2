"""What `lab up` checks before it makes anything, so a refusal never leaves a half-made lab."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence

from gcmschange.errors import LabError
from gcmschange.lab import netns, registry
from gcmschange.lab.hostproc import SSHD
from gcmschange.lab.layout import LOOPBACK, MAX_EXEC_NODES, MODES, NETNS
from gcmschange.render.configs import template_files
from gcmschange.rules.estate import Estate

DEFAULT_SYSTEMS = ("portal", "case_api", "partner_gateway")
MAX_HOSTS = 240  # addresses .11 to .250 of the lab's /24
# The tool, and the package a Debian machine gets it from.
TOOLS = {
    "sshd": "openssh-server",
    "nginx": "nginx",
    "unshare": "util-linux",
    "ssh-keygen": "openssh-client",
    "ssh": "openssh-client",
}


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, bind mounts, links): run as root")


def require_tools(search_path: str | None = None, *, need_ip: bool = True) -> None:
    path = search_path or f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
    tools = {**TOOLS, "ip": "iproute2"} if need_ip else TOOLS
    for tool, package in tools.items():
        if shutil.which(tool, path=path) is None:
            raise LabError(f"{tool} is not installed (apt-get install {package})")
    if search_path is None and not os.access(SSHD, os.X_OK):
        raise LabError(f"{SSHD} is not installed (apt-get install openssh-server)")


def systems_of(estate: Estate, requested: Sequence[str] | None) -> tuple[str, ...]:
    if not requested:
        return DEFAULT_SYSTEMS
    if list(requested) == ["all"]:
        return tuple(estate.systems)
    unknown = [s for s in requested if s not in estate.systems]
    if unknown:
        known = ", ".join(estate.systems)
        raise LabError(f"unknown system '{unknown[0]}' (estate.yml has: {known}, or 'all')")
    return tuple(dict.fromkeys(requested))


# `groups['case_api']` or `groups.case_api` in a template: the hosts of another system.
_GROUP_READ = re.compile(r"""groups\s*(?:\[\s*['"]([A-Za-z0-9_]+)['"]\s*\]|\.([A-Za-z0-9_]+))""")


def with_groups_read(estate: Estate, systems: tuple[str, ...]) -> tuple[str, ...]:
    """`systems` and every system whose group their templates read, transitively: a portal
    whose nginx.conf lists `groups['case_api']` cannot converge in a lab without case_api."""
    wanted = list(systems)
    for system in wanted:  # grows while it is walked: what is added is read in turn
        if system not in estate.systems:
            continue  # systems_of names it
        names = [c.template for c in estate.systems[system].configs]
        for path in template_files(estate.root / "templates", names):
            text = path.read_text(encoding="utf-8", errors="replace")
            for match in _GROUP_READ.finditer(text):
                other = match.group(1) or match.group(2)
                if other in estate.systems and other not in wanted:
                    wanted.append(other)
    return tuple(wanted)


def check_size(systems: Sequence[str], hosts_per_system: int, exec_nodes: int = 0) -> None:
    if hosts_per_system < 1:
        raise LabError(f"--hosts-per-system must be at least 1, got {hosts_per_system}")
    if not 0 <= exec_nodes <= MAX_EXEC_NODES:
        raise LabError(f"--exec-nodes must be between 0 and {MAX_EXEC_NODES}, got {exec_nodes}")
    total = len(systems) * hosts_per_system + exec_nodes
    if total > MAX_HOSTS:
        raise LabError(f"a lab holds at most {MAX_HOSTS} hosts, asked for {total}")


def resolve_mode(mode: str) -> str:
    if mode not in MODES:
        raise LabError(f"unknown lab mode '{mode}' (use one of: {', '.join(MODES)})")
    if mode == LOOPBACK:
        return LOOPBACK
    if netns.available():
        return NETNS
    if mode == NETNS:
        raise LabError("network namespaces are not available here (`ip netns add` failed)")
    return LOOPBACK


def require_port_22_free_on_loopback() -> None:
    """In loopback mode every host listens on 127.x.y.z:22; a wildcard listener blocks that."""
    if "0.0.0.0/24" in registry.loopback_listeners():
        raise LabError(
            "an sshd already listens on 0.0.0.0:22, which blocks loopback mode "
            "(use network-namespace mode, or stop that sshd)"
        )
