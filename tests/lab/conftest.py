"""Lab fixtures: a session lab shared by the lab tests, and fresh labs for tests that break one.

`lab_repo` is the hook for the estate tests: it yields the root of a fresh estate repository
whose lab (portal, case_api, partner_gateway x 2 hosts) is up and whose `lab` inventory is
written; apply the estate playbooks to `estate.load_inventory(root, "lab")` and verify there.
Every lab a fixture starts is brought down in its finalizer, even when the test failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from gcmschange import lab, proc
from tests.conftest import KEYS, copy_estate

SBIN_PATH = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
LAB_SYSTEMS = ("portal", "case_api", "partner_gateway")


def lab_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root (namespaces, bind mounts, links)"
    for tool, package in (("sshd", "openssh-server"), ("nginx", "nginx")):
        if shutil.which(tool, path=SBIN_PATH) is None:
            return f"lab tests need {tool} (apt-get install {package})"
    return None


def require_lab() -> None:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)


def ssh(root: Path, host: str, command: str, timeout: float = 20) -> proc.Completed:
    """Run `command` on a lab host over real ssh, with the lab's generated ssh_config."""
    config = str(lab.ssh_config_path(root))
    return proc.run(["ssh", "-F", config, host, command], check=False, timeout=timeout)


def _isolated_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    # Session fixtures run before the function-scoped home guard of tests/conftest.py.
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Lab Tester")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "lab@gcms.example")


def give_origin_and_keys(root: Path, base: Path) -> None:
    """A bare `origin` beside the estate repository `root` (apply's lock refs live there), and
    the lab approvers' keys in `base/keys` with the mode ssh-keygen wants (git keeps none)."""
    subprocess.run(["git", "init", "-q", "--bare", str(base / "origin.git")], check=True)
    subprocess.run(
        ["git", "-C", str(root), "remote", "add", "origin", str(base / "origin.git")],
        check=True,
        capture_output=True,
    )
    keys = base / "keys"
    shutil.copytree(KEYS, keys)
    for key in keys.iterdir():
        key.chmod(0o600)


@pytest.fixture(scope="session")
def lab_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh estate repository with a lab up: 3 systems x 2 hosts. Do not crash its hosts."""
    require_lab()
    base = tmp_path_factory.mktemp("lab-session")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolated_env(monkeypatch, base / "home")
        root = copy_estate(base / "estate")
    try:
        lab.up(root, LAB_SYSTEMS, hosts_per_system=2)
        yield root
    finally:
        lab.down(root)


LabFactory = Callable[..., Path]


@pytest.fixture
def fresh_lab(tmp_path: Path) -> Iterator[LabFactory]:
    """Make labs of one's own: `fresh_lab(systems=("portal",), hosts_per_system=2, up=True)`."""
    require_lab()
    made: list[Path] = []

    def make(
        systems: Sequence[str] = ("portal",),
        hosts_per_system: int = 2,
        mode: str = "auto",
        up: bool = True,
    ) -> Path:
        root = copy_estate(tmp_path / f"estate-{len(made)}")
        made.append(root)
        if up:
            lab.up(root, systems, hosts_per_system, mode)
        return root

    try:
        yield make
    finally:
        for root in made:
            lab.down(root)


@pytest.fixture
def lab_ssh() -> Callable[[Path, str, str], proc.Completed]:
    return ssh
