"""`--accelerate` without Mitogen installed: the operator is told once, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gcmschange import accel
from gcmschange.cli import main


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
