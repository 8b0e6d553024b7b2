"""Ctrl-C or SIGTERM during a verb: the CLI prints what the core said (which change, resume or
roll back), not just "interrupted", though click turns every KeyboardInterrupt into Abort."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import pytest

from gcmschange.cli import change_calendar as calendar_verb
from gcmschange.cli import main
from gcmschange.errors import CancelledError

HINT = (
    "CHG-LAB-0002: SIGTERM received: the playbook was stopped after 3 s; the lock is kept: run "
    "`gcmschange resume CHG-LAB-0002` or `gcmschange rollback CHG-LAB-0002`"
)


def _cancelled(*args: object, **kwargs: object) -> NoReturn:
    raise CancelledError(HINT)


def _ctrl_c(*args: object, **kwargs: object) -> NoReturn:
    raise KeyboardInterrupt


def test_the_resume_or_rollback_hint_reaches_the_user(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calendar_verb, "build_calendar", _cancelled)
    code = main(["--repo", str(estate_repo), "calendar"])
    err = capsys.readouterr().err
    assert code == 130
    assert f"gcmschange: interrupted: {HINT}" in err


def test_the_hint_is_in_the_json_error_too(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calendar_verb, "build_calendar", _cancelled)
    code = main(["--repo", str(estate_repo), "--output", "json", "calendar"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 130
    assert payload == {"ok": False, "error": HINT, "exit_code": 130, "problems": []}


def test_a_bare_ctrl_c_still_says_interrupted(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calendar_verb, "build_calendar", _ctrl_c)
    code = main(["--repo", str(estate_repo), "calendar"])
    err = capsys.readouterr().err
    assert code == 130
    assert err.strip().endswith("gcmschange: interrupted")
