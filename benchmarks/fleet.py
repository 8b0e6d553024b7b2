"""The lab the lab benchmarks share: a temporary estate repository, its fleet, two configs.

Every timed apply must do the same real work, so the fleet keeps two rendered sets of the
whole estate (log level `info`, the lab's baseline, and `debug`, which changes nginx.conf
and the application file on every host) and each push takes the one the hosts do not have:
every run copies files and reloads nginx on every host, whichever side runs it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import run_process
from gcmschange import lab
from gcmschange.apply import push as deploy
from gcmschange.execution.runner import RunResult
from gcmschange.lab import workspace
from gcmschange.lab.layout import Layout
from gcmschange.render.configs import RenderedSet, render_hosts
from gcmschange.rules.estate import Inventory, load_estate, load_inventory

PROJECT = Path(__file__).resolve().parent.parent
CONTROL_DIRS = (Path("/tmp/gcmschange-cp"),)
LEVELS = ("info", "debug")


class BenchError(RuntimeError):
    """A benchmark could not measure what it set out to (a side failed, the lab broke)."""


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def copy_estate(dest: Path) -> Path:
    """A fresh git repository holding the reference estate, with a bare origin for locks."""
    return workspace.create(dest).root


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
    held: dict[str, str] = field(default_factory=dict)  # host -> the level it holds now
    runs: int = 0

    @property
    def ssh_config(self) -> Path:
        return lab.ssh_config_path(self.root)

    def cold(self, *own_dirs: Path) -> None:
        """No ssh master of ours alive: the next run pays for its connections like any other.

        `own_dirs` are control folders that only this benchmark uses (e.g. its HOME's).
        """
        close_shared_masters(self)
        close_masters((Layout.of(self.root).control_dir, *own_dirs))

    def fresh_dir(self, label: str) -> Path:
        self.runs += 1
        path = self.work / f"{self.runs:03d}-{label}"
        path.mkdir(parents=True)
        return path

    def flip(self, hosts: Sequence[str] | None = None) -> RenderedSet:
        """For each host, the set it does not hold yet; from now on it is taken to hold it."""
        chosen = tuple(hosts) if hosts is not None else self.hosts
        for host in chosen:
            self.held[host] = "debug" if self.held.get(host, "debug") == "info" else "info"
        files = tuple(
            f
            for level in LEVELS
            for f in self.sets[level].files
            if f.host in chosen and self.held[f.host] == level
        )
        return RenderedSet(self.inventory.environment, files)

    def extravars_file(self, rendered: RenderedSet, folder: Path) -> Path:
        """The rendered tree and extra vars exactly as `deploy.push` hands them to Ansible."""
        tree = rendered.write(folder / "rendered")
        path = folder / "extravars.json"
        payload = {
            "gcms_rendered_dir": str(tree.resolve()),
            "gcms_manifest": rendered.manifest(),
            "gcms_secret_files": {},
        }
        path.write_text(json.dumps(payload), encoding="utf-8")
        return path

    def push(
        self,
        label: str,
        *,
        accelerate: bool = False,
        playbook: str = "",
        hosts: Sequence[str] | None = None,
    ) -> RunResult:
        folder = self.fresh_dir(label)
        targets = tuple(hosts) if hosts is not None else self.hosts
        result = deploy.push(
            self.root,
            self.inventory.path,
            self.flip(targets),
            folder,
            hosts=targets,
            playbook=playbook or deploy.STANDARD_PLAYBOOK,
            accelerate=accelerate,
        )
        require_clean(result, label)
        return result

    def push_process(self, label: str, *, accelerate: bool = False, nodes: int = 0) -> float:
        """The same push as `push`, in a process of its own (`benchmarks.push_once`) timed
        from outside like the peer's `ansible-playbook`; its wall time."""
        folder = self.fresh_dir(label)
        tree = self.flip().write(folder / "input")
        args = [sys.executable, "-m", "benchmarks.push_once", str(self.root)]
        args += [str(self.inventory.path), str(folder), str(tree)]
        args += ["--accelerate"] if accelerate else []
        args += ["--nodes", str(nodes)] if nodes else []
        done = run_process(args, cwd=PROJECT, sample=False)
        (folder / "output.log").write_text(done.output, encoding="utf-8")
        lines = done.output.strip().splitlines()
        summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
        if summary.get("status") == "canceled":
            raise KeyboardInterrupt  # SIGINT/SIGTERM during the run: stop, bring the lab down
        if done.returncode != 0 or set(summary.get("changed", ())) != set(self.hosts):
            tail = " | ".join(lines[-3:])
            raise BenchError(f"{label}: the push did not apply cleanly: {tail}")
        return done.wall_s


def require_clean(result: RunResult, label: str) -> None:
    if result.status == "canceled":
        raise KeyboardInterrupt  # SIGINT/SIGTERM during the run: stop, bring the lab down
    if result.rc != 0 or result.failures or not result.changed_hosts:
        bad = "; ".join(f"{h}: {why}" for h, why in list(result.failures.items())[:3])
        raise BenchError(f"{label}: the push did not apply cleanly (rc {result.rc}) {bad}")


def _exit_master(args: Sequence[str]) -> None:
    subprocess.run(["ssh", *args, "-O", "exit"], capture_output=True, check=False, timeout=10)


def close_masters(dirs: Sequence[Path]) -> None:
    """End every ssh ControlMaster under `dirs`: folders that belong to this benchmark only."""
    for folder in dirs:
        if folder.is_dir():
            for sock in folder.iterdir():
                if sock.is_socket():
                    _exit_master(["-o", f"ControlPath={sock}", "lab"])


def close_shared_masters(fleet: Fleet) -> None:
    """End gcmschange's masters to this fleet's hosts only.

    /tmp/gcmschange-cp is shared by every gcmschange run on the machine (other engineers'
    tests included), so only the sockets of our own hosts may be closed. Ansible names them
    sha1("HOST-PORT-USER")[:10] (ansible/plugins/connection/ssh.py, _create_control_path),
    with PORT and USER "None" when the inventory leaves them to ssh_config.
    """
    for host in fleet.inventory.hosts.values():
        address = str(host.vars.get("ansible_host", host.name))
        for port, user in itertools.product(("None", "22"), ("None", "root")):
            name = hashlib.sha1(
                f"{address}-{port}-{user}".encode(), usedforsecurity=False
            ).hexdigest()[:10]
            for folder in CONTROL_DIRS:
                if (folder / name).is_socket():
                    _exit_master(["-o", f"ControlPath={folder / name}", address])


def render_both(root: Path, inventory: Inventory) -> dict[str, RenderedSet]:
    estate = load_estate(root)
    hosts = tuple(inventory.hosts.values())
    return {
        level: render_hosts(estate, inventory, hosts, {"gcms_log_level": level}) for level in LEVELS
    }


@contextmanager
def lab_fleet(
    systems: Sequence[str], per_system: int, keep: bool = False, exec_nodes: int = 0
) -> Iterator[Fleet]:
    """A fleet brought to the baseline (`info`) first; always brought down afterwards."""
    base = Path(tempfile.mkdtemp(prefix="gcms-bench-"))
    isolate(base / "home")
    root = copy_estate(base / "estate")
    fleet: Fleet | None = None
    try:
        lab.up(root, systems, per_system, exec_nodes=exec_nodes)
        inventory = load_inventory(root, "lab")
        sets = render_both(root, inventory)
        fleet = Fleet(root, base / "runs", inventory, tuple(inventory.hosts), sets)
        fleet.held = dict.fromkeys(fleet.hosts, "debug")  # so the baseline push takes "info"
        fleet.push("baseline")
        yield fleet
    finally:
        if fleet is not None:
            close_shared_masters(fleet)
        lab.down(root)
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
