"""`gcmschange lab workspace`: a throw-away GitOps repository with the reference estate."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gcmschange.cli import main
from tests.conftest import ESTATE


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_workspace_is_a_committed_estate_with_a_bare_origin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "ws"
    assert main(["lab", "workspace", str(dest), "--output", "json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["root"] == str(dest) and made["origin"] == str(tmp_path / "ws-origin.git")
    assert git(dest, "status", "--porcelain") == ""
    assert git(dest, "rev-parse", "HEAD") == made["commit"] == git(dest, "rev-parse", "origin/main")
    tracked = set(git(dest, "ls-files").splitlines())
    assert {"estate.yml", "policy.yml", "approvers", ".gitignore"} <= tracked
    assert "changes/CHG-LAB-0001.yaml" in tracked
    assert not any(p.startswith("inventories/lab/hosts.yml") for p in tracked)  # generated
    key = dest / "lab" / "keys" / "owner-portal"
    assert key.stat().st_mode & 0o077 == 0  # ssh-keygen signs only with a private key file
    # the state gcmschange writes is ignored, so verbs leave the work tree clean
    assert main(["--repo", str(dest), "validate", "CHG-LAB-0001"]) == 0
    assert git(dest, "status", "--porcelain") == ""


def test_workspace_without_origin_or_keys(tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    args = ["lab", "workspace", str(dest), "--no-origin", "--no-lab-keys", "--from", str(ESTATE)]
    assert main(args) == 0
    assert git(dest, "remote") == ""
    assert not (dest / "lab").exists()
    assert not (tmp_path / "ws-origin.git").exists()


@pytest.mark.parametrize("case", ["not-empty", "not-an-estate", "origin-exists"])
def test_bad_destinations_and_sources_are_refused_with_nothing_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    dest, source = tmp_path / "ws", ESTATE
    if case == "not-empty":
        dest.mkdir()
        (dest / "mine.txt").write_text("keep me\n", encoding="utf-8")
        expected = f"{dest}: exists and is not an empty directory"
    elif case == "not-an-estate":
        source = tmp_path / "elsewhere"
        source.mkdir()
        expected = f"{source}: no estate.yml here: not an estate repository"
    else:
        (tmp_path / "ws-origin.git").mkdir()
        expected = f"{tmp_path / 'ws-origin.git'}: exists; choose another workspace name"
    assert main(["lab", "workspace", str(dest), "--from", str(source)]) == 1
    assert expected in capsys.readouterr().err
    if case == "not-empty":
        assert [p.name for p in dest.iterdir()] == ["mine.txt"]
    else:
        assert not dest.exists()


def test_a_copy_that_breaks_half_way_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "estate"
    source.mkdir()
    (source / "estate.yml").write_text((ESTATE / "estate.yml").read_text(), encoding="utf-8")
    (source / "templates").mkdir()
    (source / "templates" / "gone.j2").symlink_to(tmp_path / "nowhere")
    dest = tmp_path / "ws"
    assert main(["lab", "workspace", str(dest), "--from", str(source)]) == 1
    err = capsys.readouterr().err
    assert f"{source}: cannot copy the estate: " in err and "gone.j2" in err
    assert not dest.exists() and not (tmp_path / "ws-origin.git").exists()


def test_a_relative_destination_gets_a_working_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["lab", "workspace", "ws"]) == 0
    assert git(tmp_path / "ws", "ls-remote", "origin", "main")
