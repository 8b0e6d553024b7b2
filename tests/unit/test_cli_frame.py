"""The CLI frame: exit codes, JSON errors, and verbs that are not available yet."""

from __future__ import annotations

import json

import pytest

from gcmschange.cli import main


def test_help_lists_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("validate", "plan", "approve", "apply", "lab", "evidence"):
        assert verb in out


def test_unknown_verb_is_a_usage_error() -> None:
    assert main(["frobnicate"]) == 2


def test_estate_missing_is_exit_1_with_reason(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--repo", "/nonexistent-gcms", "--output", "json", "validate", "x.yaml"])
    payload = capsys.readouterr().out
    if code == 2:  # validate not registered yet in this build
        assert "not yet available" in payload
    else:
        assert code == 1
        assert json.loads(payload)["ok"] is False
