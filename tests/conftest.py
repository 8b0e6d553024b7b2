"""Shared fixtures: every test runs in its own copy of the reference estate, as a real git repo."""

from __future__ import annotations

import functools
import gc
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from gcmschange import resources
from gcmschange.lab import workspace
from gcmschange.yamlsafe import VaultText

PROJECT = Path(__file__).resolve().parent.parent  # the checkout: docs, scripts
ESTATE = resources.reference_estate()  # the shipped reference estate
KEYS = ESTATE / "lab" / "keys"
# The tests' vault password, given to every test as an operator would: GCMS_VAULT_PASSWORD
# (set here, not in a fixture, so module- and session-scoped fixtures have it too).
VAULT_PASSWORD = "gcms-tests-vault-password"
os.environ["GCMS_VAULT_PASSWORD"] = VAULT_PASSWORD
for _name in ("GCMS_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE"):
    os.environ.pop(_name, None)


# A lab inventory of one portal and one case API host, for tests that need hosts to render
# for, not to reach.
PORTAL_AND_CASE_API = """\
all:
  children:
    portal:
      hosts:
        portal-1: {ansible_host: 10.0.0.1}
    case_api:
      hosts:
        case-api-1: {ansible_host: 10.0.0.2}
"""


@functools.cache
def vault_text(plain: str) -> str:
    """`plain` encrypted by the real `ansible-vault encrypt_string` with the tests' password:
    the ciphertext alone, as it follows `!vault |`."""
    with tempfile.TemporaryDirectory() as tmp:
        password, config = Path(tmp) / "password", Path(tmp) / "ansible.cfg"
        password.write_text(VAULT_PASSWORD, encoding="utf-8")
        config.write_text("", encoding="utf-8")
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-vault"),
                "encrypt_string",
                "--vault-password-file",
                str(password),
                "--",
                plain,
            ],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin", "HOME": tmp, "ANSIBLE_CONFIG": str(config)},
        )
    return "\n".join(line.strip() for line in done.stdout.splitlines()[1:]) + "\n"


def vaulted(plain: str) -> VaultText:
    """`plain` encrypted, as a value tests can put in data that `yaml.safe_dump` writes."""
    return VaultText(vault_text(plain))


def _vault_representer(dumper: yaml.SafeDumper, data: VaultText) -> yaml.Node:
    return dumper.represent_scalar("!vault", str(data), style="|")


yaml.SafeDumper.add_representer(VaultText, _vault_representer)


def vault_yaml(name: str, plain: str, indent: int = 2) -> str:
    """A YAML mapping entry `name: !vault |` holding `plain` encrypted, at `indent` spaces."""
    body = "".join(f"{' ' * (indent + 2)}{line}\n" for line in vault_text(plain).splitlines())
    return f"{' ' * indent}{name}: !vault |\n{body}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--extended",
        action="store_true",
        help="also run the extended lab scenarios (every kill -9 step, partition mid-wave)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # CI must finish in 30 minutes on 2 cores, and Ansible on the lab is CPU-bound: the
    # extended scenarios run with `scripts/test.sh --extended`, and are skipped with that reason.
    if config.getoption("--extended"):
        return
    skip = pytest.mark.skip(reason="extended lab scenario: run with scripts/test.sh --extended")
    for item in items:
        if item.get_closest_marker("extended") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="module", autouse=True)
def _garbage_collected_per_module() -> Iterator[None]:
    """Each module's garbage is collected as it ends, so a resource it leaked (an object in a
    reference cycle holding a running process or an open file) is reported against it, in its
    last test's teardown, not against whichever later test the collector happens to run in.
    Per module rather than per test: a collection costs ~0.1 s with this many objects."""
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A test must never read or write the real home (ssh config, git config, caches).
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@gcms.example")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Author")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "author@gcms.example")


def copy_estate(dest: Path) -> Path:
    """A fresh git repository holding the reference estate, committed once (no origin)."""
    return workspace.create(dest, ESTATE, origin=False).root


@pytest.fixture
def estate_repo(tmp_path: Path) -> Iterator[Path]:
    yield copy_estate(tmp_path / "estate")
