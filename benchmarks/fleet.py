"""The lab the lab benchmarks share: a temporary estate repository, its fleet, two configs.

Every timed apply must do the same real work, so the fleet keeps two rendered sets of the
whole estate (log level `info`, the lab's baseline, and `debug`, which changes nginx.conf
and the application file on every host) and each push takes the one the hosts do not have:
every run copies files and reloads nginx on every host, whichever side runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gcmschange import deploy, lab
from gcmschange.estate import Inventory, load_estate, load_inventory
from gcmschange.lab.layout import Layout
from gcmschange.render import RenderedSet, render_hosts
from gcmschange.runner import RunResult

PROJECT = Path(__file__).resolve().parent.parent
ESTATE_PARTS = (
    "estate.yml",
    "policy.yml",
    "approvers",
    "inventories",
    "playbooks",
    "templates",
    "verify",
    "changes",
    "catalogue",
    "schemas",
)
CONTROL_DIRS = (Path("/tmp/gcmschange-cp"),)


class BenchError(RuntimeError):
    """A benchmark could not measure what it set out to (a side failed, the lab broke)."""


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def copy_estate(dest: Path) -> Path:
    """A fresh git repository holding the reference estate, with a bare remote for locks."""
    dest.mkdir(parents=True)
    for part in ESTATE_PARTS:
        src = PROJECT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("hosts.yml.lab*"))
        elif src.is_file():
            shutil.copy2(src, dest / part)
    (dest / "inventories" / "lab" / "hosts.yml").unlink(missing_ok=True)
    (dest / ".gitignore").write_text(".gcmschange/\n", encoding="utf-8")
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "estate")
    remote = dest.parent / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(dest, "remote", "add", "origin", str(remote))
    git(dest, "push", "-q", "origin", "main")
    return dest


def isolate(home: Path) -> None:
    """The benchmark's own home and git identity: nothing of the real home is read or written."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ["HOME"] = str(home)
    os.environ["GIT_CONFIG_GLOBAL"] = str(home / ".gitconfig")
    for role in ("AUTHOR", "COMMITTER"):
        os.environ[f"GIT_{role}_NAME"] = "Benchmark"
        os.environ[f"GIT_{role}_EMAIL"] = "bench@gcms.example"


@dataclass
class Fleet:
    root: Path
    work: Path
    inventory: Inventory
    hosts: tuple[str, ...]
    sets: dict[str, RenderedSet]
    state: str = "info"  # which set the hosts hold now
    runs: int = field(default=0)

    @property
    def ssh_config(self) -> Path:
        return lab.ssh_config_path(self.root)

    @property
    def control_dirs(self) -> tuple[Path, ...]:
        """Where Ansible's and the lab ssh_config's ControlMaster sockets live."""
        return (*CONTROL_DIRS, Layout.of(self.root).control_dir)

    def fresh_dir(self, label: str) -> Path:
        self.runs += 1
        path = self.work / f"{self.runs:03d}-{label}"
        path.mkdir(parents=True)
        return path

    def flip(self) -> RenderedSet:
        """The set the hosts do not hold yet; from now on they are taken to hold it."""
        self.state = "debug" if self.state == "info" else "info"
        return self.sets[self.state]

    def extravars_file(self, rendered: RenderedSet, folder: Path) -> Path:
        """The rendered tree and extra vars exactly as `deploy.push` hands them to Ansible."""
        tree = rendered.write(folder / "rendered")
        path = folder / "extravars.json"
        payload = {"gcms_rendered_dir": str(tree.resolve()), "gcms_manifest": rendered.manifest()}
        path.write_text(json.dumps(payload), encoding="utf-8")
        return path

    def push(self, label: str, *, accelerate: bool = False, playbook: str = "") -> RunResult:
        folder = self.fresh_dir(label)
        result = deploy.push(
            self.root,
            self.inventory.path,
            self.flip(),
            folder,
            hosts=self.hosts,
            playbook=playbook or deploy.STANDARD_PLAYBOOK,
            accelerate=accelerate,
        )
        require_clean(result, label)
        return result


def require_clean(result: RunResult, label: str) -> None:
    if result.rc != 0 or result.failures or not result.changed_hosts:
        bad = "; ".join(f"{h}: {why}" for h, why in list(result.failures.items())[:3])
        raise BenchError(f"{label}: the push did not apply cleanly (rc {result.rc}) {bad}")


def close_masters(dirs: Sequence[Path] = CONTROL_DIRS) -> None:
    """End every ssh ControlMaster under `dirs`, so the next run starts with cold connections."""
    for folder in dirs:
        if not folder.is_dir():
            continue
        for sock in folder.iterdir():
            if sock.is_socket():
                subprocess.run(
                    ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "lab"],
                    capture_output=True,
                    check=False,
                    timeout=10,
                )


def render_both(root: Path, inventory: Inventory) -> dict[str, RenderedSet]:
    estate = load_estate(root)
    hosts = tuple(inventory.hosts.values())
    return {
        level: render_hosts(estate, inventory, hosts, {"gcms_log_level": level})
        for level in ("info", "debug")
    }


@contextmanager
def lab_fleet(systems: Sequence[str], per_system: int, keep: bool = False) -> Iterator[Fleet]:
    """A fleet brought to the baseline (`info`) first; always brought down afterwards."""
    base = Path(tempfile.mkdtemp(prefix="gcms-bench-"))
    isolate(base / "home")
    root = copy_estate(base / "estate")
    try:
        lab.up(root, systems, per_system)
        inventory = load_inventory(root, "lab")
        sets = render_both(root, inventory)
        fleet = Fleet(root, base / "runs", inventory, tuple(inventory.hosts), sets)
        fleet.state = "debug"  # so the baseline push below takes "info" to every host
        fleet.push("baseline")
        yield fleet
    finally:
        close_masters(CONTROL_DIRS)
        lab.down(root)
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
