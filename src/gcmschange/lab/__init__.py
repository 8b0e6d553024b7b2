"""The lab fleet: real SSH hosts on this machine, each in its own namespaces.

Public API, for the CLI and for tests of other stages (all take the repository root):
`up`, `down`, `status`, `crash`, `start`, `partition`, `heal`, `ssh_config_path`,
`exec_nodes`, `parse_latency`.
"""

from __future__ import annotations

from gcmschange.lab.control import crash, heal, partition, start
from gcmschange.lab.fleet import (
    LabHost,
    LabState,
    down,
    exec_nodes,
    parse_latency,
    ssh_config_path,
    status,
    up,
)

__all__ = [
    "LabHost",
    "LabState",
    "crash",
    "down",
    "exec_nodes",
    "heal",
    "parse_latency",
    "partition",
    "ssh_config_path",
    "start",
    "status",
    "up",
]
