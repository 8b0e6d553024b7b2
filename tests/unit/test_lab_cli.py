"""The lab verbs where no lab is needed: status and down of no lab, refusals before work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gcmschange.cli import main


def test_status_without_a_lab(estate_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repo", str(estate_repo), "lab", "status"]) == 0
    assert "no lab is up" in capsys.readouterr().out
    assert main(["--repo", str(estate_repo), "lab", "status", "--output", "json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["up"] is False
    assert payload["hosts"] == []


def test_up_without_root_is_one_line_exit_1(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["--repo", str(estate_repo), "lab", "up"]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err == "gcmschange: error: the lab needs root (namespaces, bind mounts, links): run as root"
    )


def test_crash_without_a_lab(estate_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--repo", str(estate_repo), "lab", "crash", "portal-1"]) == 1
    assert "no lab is up" in capsys.readouterr().err
