"""Every example through the real CLI: valid ones pass, each invalid one gives exactly its
expected messages and locations (the `.expected` file beside it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gcmschange.cli import main
from gcmschange.errors import Location, Problem
from tests.conftest import copy_estate

EXAMPLES = Path(__file__).parent / "examples"
NOW = "2027-01-15T00:00:00-05:00"  # the clock the examples' notice is measured from
INVALID = sorted(p.stem for p in (EXAMPLES / "invalid").glob("*.yaml"))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_estate(tmp_path_factory.mktemp("examples") / "estate")
    shutil.copytree(EXAMPLES / "invalid", root / "proposed")
    for example in (EXAMPLES / "valid").glob("*.yaml"):
        shutil.copy2(example, root / "changes" / example.name)
    return root


def _run(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["--repo", str(root), "validate", "--output", "json", "--now", NOW, *args])
    return code, json.loads(capsys.readouterr().out)


def _lines(payload: dict[str, Any]) -> list[str]:
    return [
        f"{p['severity']}: "
        + str(Problem(p["message"], Location(p["file"], p["line"], p["column"], p["path"])))
        for change in payload["changes"]
        for p in change["problems"]
    ]


def test_every_valid_example_and_the_lab_changes_pass(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, payload = _run(repo, capsys)
    assert code == 0, _lines(payload)
    ids = {c["id"] for c in payload["changes"]}
    assert {"CHG-LAB-0001", "CHG-LAB-0002", "CHG-LAB-0003", "CHG-PROD-0102"} <= ids
    assert all(line.startswith("warning: ") for line in _lines(payload))


@pytest.mark.parametrize("name", INVALID)
def test_invalid_example_gives_exactly_its_expected_messages(
    name: str, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = (EXAMPLES / "invalid" / f"{name}.expected").read_text(encoding="utf-8").splitlines()
    code, payload = _run(repo, capsys, f"proposed/{name}.yaml")
    assert code == 1
    assert _lines(payload) == expected


def test_there_is_an_example_of_every_refusal_class() -> None:
    assert len(INVALID) >= 40
    for name in INVALID:
        assert (EXAMPLES / "invalid" / f"{name}.expected").is_file(), name
