"""CLI conventions: examples and exit codes in every verb's help, one option set, env vars."""

from __future__ import annotations

from pathlib import Path

import pytest

from gcmschange.cli import app, helptext, main


def test_every_main_verb_shows_examples_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    for verb in helptext.EPILOGS:
        assert main([verb, "--help"]) == 0
        out = capsys.readouterr().out
        assert "Examples:" in out and "Exit codes:" in out, verb
        assert f"gcmschange {verb}" in out or verb == "resume", verb


def test_the_apply_family_shares_one_option_set(capsys: pytest.CaptureFixture[str]) -> None:
    seen = []
    for verb in ("apply", "run", "rollback", "resume"):
        main([verb, "--help"])
        out = capsys.readouterr().out
        seen.append([o for o in ("--remote", "--accelerate", "--output", "--base") if o in out])
        assert "GCMS_REMOTE" in out and "GCMS_ACCELERATE" in out
    assert seen[:3] == [["--remote", "--accelerate", "--output", "--base"]] * 3
    assert seen[3] == ["--remote", "--accelerate", "--output"]  # resume keeps the run's base


def test_files_are_written_with_dash_o_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    for verb in (["render"], ["calendar"], ["site"], ["evidence", "build"]):
        main([*verb, "--help"])
        assert "-o, --out" in capsys.readouterr().out, verb


def test_gcms_repo_points_every_verb_at_the_repository(
    estate_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GCMS_REPO", str(estate_repo))
    assert main(["validate", "changes/CHG-LAB-0002.yaml"]) == 0
    monkeypatch.setenv("GCMS_REPO", str(tmp_path))
    assert main(["validate"]) == 1  # no estate.yml there: a clear refusal, not a traceback


def test_root_help_documents_completion_and_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["--help"])
    out = capsys.readouterr().out
    assert "_GCMSCHANGE_COMPLETE=bash_source" in out
    assert "GCMS_REPO" in out and "GCMS_REMOTE" in out
    assert app.root.params  # the group itself keeps --repo and --output
