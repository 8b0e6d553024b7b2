"""`--accelerate` without Mitogen installed: the operator is told once, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gcmschange.cli import main
from gcmschange.execution import accel


def test_apply_says_the_accelerator_is_missing_before_it_starts(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accel, "strategy_dir", lambda: None)
    code = main(["--repo", str(estate_repo), "apply", "CHG-LAB-9999", "--accelerate"])
    err = capsys.readouterr().err
    assert code == 1  # the unknown change is still refused, as without the flag
    assert err.count("accelerator asked for") == 1
    assert err.index("accelerator asked for") < err.index("CHG-LAB-9999")


def test_no_warning_when_the_accelerator_is_there_or_not_asked_for(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    main(["--repo", str(estate_repo), "apply", "CHG-LAB-9999"])
    monkeypatch.setattr(accel, "strategy_dir", lambda: estate_repo)
    main(["--repo", str(estate_repo), "apply", "CHG-LAB-9999", "--accelerate"])
    assert "accelerator" not in capsys.readouterr().err


@pytest.mark.parametrize(("value", "asked"), [("true", True), ("1", True), ("false", False)])
def test_gcms_accelerate_in_the_environment_asks_as_the_flag_does(
    estate_repo: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    asked: bool,
) -> None:
    # How a CI pipeline asks for the accelerator (the GCMS_ACCELERATE variable).
    monkeypatch.setattr(accel, "strategy_dir", lambda: None)
    monkeypatch.setenv("GCMS_ACCELERATE", value)
    main(["--repo", str(estate_repo), "apply", "CHG-LAB-9999"])
    assert ("accelerator asked for" in capsys.readouterr().err) is asked
