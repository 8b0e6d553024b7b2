"""The lab fleet: real SSH hosts on this machine, each in its own namespaces.

Public API, for the CLI and for tests of other stages (all take the repository root):
`up`, `down`, `status`, `crash`, `start`, `partition`, `heal`, `ssh_config_path`.
"""

from __future__ import annotations

from gcmschange.lab.control import crash, heal, partition, start
from gcmschange.lab.fleet import LabHost, LabState, down, ssh_config_path, status, up

__all__ = [
    "LabHost",
    "LabState",
    "crash",
    "down",
    "heal",
    "partition",
    "ssh_config_path",
    "start",
    "status",
    "up",
]
