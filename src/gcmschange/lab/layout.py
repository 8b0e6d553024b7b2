"""Names and paths of one lab, and its record on disk.

Several labs run on one machine at once (one per repository copy), so every name a lab
gives to a shared kernel object (bridge, veth, network namespace, socket directory) carries
an id derived from the repository path. Interface names are limited to 15 bytes (IFNAMSIZ).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from gcmschange import paths
from gcmschange.errors import LabError

LOOPBACK = "loopback"
NETNS = "netns"
MODES = ("auto", NETNS, LOOPBACK)
MACHINE_DIR = Path("/run/gcmschange-lab")  # shared by every lab on this machine
FIRST_HOST_OCTET = 11  # .1 is the bridge (the controller's address in netns mode)


def lab_id(root: Path) -> str:
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]


def host_name(system: str, number: int) -> str:
    return f"{system.replace('_', '-')}-{number}"


EXEC_NODE_PREFIX = "exec-node"
MAX_EXEC_NODES = 8
MAX_LATENCY_MS = 1000


@dataclass(frozen=True)
class Layout:
    """Where one lab keeps its files and what it calls its kernel objects."""

    root: Path
    id: str

    @classmethod
    def of(cls, root: Path) -> Layout:
        return cls(root.resolve(), lab_id(root))

    @property
    def base(self) -> Path:
        return paths.state_dir(self.root) / "lab"

    @property
    def lock_file(self) -> Path:
        # Outside `base`, which `down` removes while holding the lock; beside the registry so
        # the repository keeps no trace of a lab once it is down.
        return MACHINE_DIR / f"{self.id}.lock"

    @property
    def record_file(self) -> Path:
        return self.base / "lab.json"

    @property
    def hosts_dir(self) -> Path:
        return self.base / "hosts"

    def host_dir(self, name: str) -> Path:
        return self.hosts_dir / name

    @property
    def key(self) -> Path:
        return self.base / "ssh" / "id_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self.base / "ssh" / "authorized_keys"

    @property
    def ssh_config(self) -> Path:
        return self.base / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.base / "known_hosts"

    @property
    def control_dir(self) -> Path:
        # ssh ControlPath sockets: a Unix socket path must fit in 108 bytes.
        return Path(f"/tmp/gcl-{self.id}")

    @property
    def inventory(self) -> Path:
        return self.root / "inventories" / "lab" / "hosts.yml"

    @property
    def bridge(self) -> str:
        return f"gcb{self.id[:6]}"

    @property
    def veth_prefix(self) -> str:
        return f"gcv{self.id[:6]}"

    def veth(self, index: int) -> str:
        return f"{self.veth_prefix}h{index}"

    @property
    def netns_prefix(self) -> str:
        return f"gcl-{self.id}-"

    def netns(self, name: str) -> str:
        return f"{self.netns_prefix}{name}"


@dataclass(frozen=True)
class HostRecord:
    name: str
    system: str
    index: int
    address: str
    unshare_pid: int = 0
    sshd_pid: int = 0
    sshd_start: int = 0  # start time of sshd in clock ticks: guards against PID reuse
    partitioned: bool = False
    exec_node: bool = False  # an execution node: runs playbooks for the others, in no system


@dataclass(frozen=True)
class LabRecord:
    id: str
    root: str
    mode: str
    network: str  # e.g. "10.77.3.0/24"
    hosts: tuple[HostRecord, ...] = ()
    latency_ms: int = 0  # round trip added between any two lab machines (tc netem)

    def host(self, name: str) -> HostRecord:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts) or "none"
        raise LabError(f"unknown lab host '{name}' (lab hosts: {known})")

    def with_host(self, new: HostRecord) -> LabRecord:
        hosts = tuple(new if h.name == new.name else h for h in self.hosts)
        return replace(self, hosts=hosts)


def save_record(layout: Layout, record: LabRecord) -> None:
    layout.base.mkdir(parents=True, exist_ok=True)
    tmp = layout.record_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=1), encoding="utf-8")
    tmp.replace(layout.record_file)


def load_record(layout: Layout) -> LabRecord | None:
    try:
        data: dict[str, Any] = json.loads(layout.record_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as exc:
        raise LabError(f"{layout.record_file}: unreadable lab record ({exc})") from exc
    hosts = tuple(HostRecord(**h) for h in data.pop("hosts", ()))
    return LabRecord(**data, hosts=hosts)
