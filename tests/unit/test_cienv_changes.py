"""Which change a pipeline is about: CHANGE_ID, or the change files committed since the base."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gcmschange.ci import changes as cichanges
from gcmschange.ci import env
from gcmschange.cli import main
from gcmschange.errors import InvalidInputError


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    return done.stdout.decode().strip()


def _branch_editing(root: Path, *changes: str) -> str:
    """A merge-request branch that edits `changes`; returns the base commit."""
    base = _git(root, "rev-parse", "HEAD")
    _git(root, "checkout", "-qb", "change/x")
    for cid in changes:
        path = root / "changes" / f"{cid}.yaml"
        path.write_text(path.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    _git(root, "commit", "-qam", "edit")
    return base


def test_merge_request_finds_the_edited_change(estate_repo: Path) -> None:
    base = _branch_editing(estate_repo, "CHG-LAB-0003")
    ci = env.from_environ({"CI_MERGE_REQUEST_IID": "3", "CI_MERGE_REQUEST_DIFF_BASE_SHA": base})
    assert cichanges.changes_of(estate_repo, ci) == ("CHG-LAB-0003",)


def test_new_file_counts_deleted_one_does_not(estate_repo: Path) -> None:
    base = _git(estate_repo, "rev-parse", "HEAD")
    changes = estate_repo / "changes"
    (changes / "CHG-LAB-0009.yaml").write_text(
        (changes / "CHG-LAB-0002.yaml").read_text().replace("0002", "0009")
    )
    _git(estate_repo, "rm", "-q", "changes/CHG-LAB-0001.yaml")
    _git(estate_repo, "add", "changes")
    _git(estate_repo, "commit", "-qm", "add and remove")
    assert cichanges.changed_between(estate_repo, base) == ("CHG-LAB-0009",)


def test_uncommitted_edits_do_not_decide(estate_repo: Path) -> None:
    base = _git(estate_repo, "rev-parse", "HEAD")
    (estate_repo / "changes" / "CHG-LAB-0002.yaml").write_text("id: tampered\n")
    assert cichanges.changed_between(estate_repo, base) == ()


def test_change_id_wins_and_must_exist(estate_repo: Path) -> None:
    ci = env.from_environ({"CHANGE_ID": "CHG-LAB-0002"})
    assert cichanges.changes_of(estate_repo, ci) == ("CHG-LAB-0002",)
    with pytest.raises(InvalidInputError, match=r"CHANGE_ID=CHG-LAB-0404: no changes/CHG-LAB-0404"):
        cichanges.changes_of(estate_repo, env.from_environ({"CHANGE_ID": "CHG-LAB-0404"}))


def test_no_base_says_what_to_do(estate_repo: Path) -> None:
    with pytest.raises(InvalidInputError, match="set CHANGE_ID or pass --base"):
        cichanges.changes_of(estate_repo, env.CiContext())


def test_a_base_missing_from_a_shallow_clone_is_named(estate_repo: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"no commit f{40} in this clone \(a shallow"):
        cichanges.changed_between(estate_repo, "f" * 40)


def test_cli_one_refuses_two_changes(
    estate_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _branch_editing(estate_repo, "CHG-LAB-0001", "CHG-LAB-0002")
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "4")
    monkeypatch.setenv("CI_MERGE_REQUEST_DIFF_BASE_SHA", base)
    monkeypatch.delenv("CHANGE_ID", raising=False)
    repo = ["--repo", str(estate_repo)]
    assert main([*repo, "--output", "json", "ci", "changes"]) == 0
    assert json.loads(capsys.readouterr().out)["changes"] == ["CHG-LAB-0001", "CHG-LAB-0002"]
    assert main([*repo, "ci", "changes", "--one"]) == 1
    err = capsys.readouterr().err
    assert "touches 2 change requests (CHG-LAB-0001, CHG-LAB-0002)" in err
    assert "set the CHANGE_ID variable" in err


def test_cli_note_without_token_is_skipped(
    estate_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GCMS_GITLAB_TOKEN", raising=False)
    assert main(["--repo", str(estate_repo), "ci", "note", "CHG-LAB-0001"]) == 0
    assert capsys.readouterr().out.strip() == "note not posted: GCMS_GITLAB_TOKEN is not set"
