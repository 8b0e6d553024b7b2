"""Shared fixtures: every test runs in its own copy of the reference estate, as a real git repo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gcmschange import resources
from gcmschange.lab import workspace

PROJECT = Path(__file__).resolve().parent.parent  # the checkout: docs, scripts
ESTATE = resources.reference_estate()  # the shipped reference estate
KEYS = ESTATE / "lab" / "keys"


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
