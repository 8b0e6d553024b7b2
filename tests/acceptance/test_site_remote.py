"""The status site's history across pipelines: each pipeline keeps its own `.gcmschange/`
(its audit log goes with its artifacts), and apply anchors that log on the remote; the pages
job of a later pipeline reads every anchored log back (`site --remote`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gcmschange.audit import anchor, trail
from gcmschange.cli import main
from gcmschange.paths import STATE_DIR
from tests.acceptance.test_site import _write_changes
from tests.conftest import copy_estate


def _run(root: Path, change: str, outcome: str) -> None:
    """A finished run of `change` as the apply engine records it, then the anchor it pushes."""
    run = {"run": f"r-{change}", "hosts": ["h"]}
    trail.record(root, "apply.started", change=change, digest="d" * 64, details=run)
    time.sleep(1.1)
    trail.record(root, "apply.finished", outcome=outcome, change=change, digest="d" * 64)
    anchor.anchor(root, "origin")


def _site(root: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    now = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    code = main(
        ["--repo", str(root), "site", "-o", str(out), "--now", now, "--output", "json", *extra]
    )
    captured = capsys.readouterr()
    assert code == 0, captured
    result: dict[str, Any] = json.loads(captured.out)
    return result


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], input=stdin, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = copy_estate(tmp_path / "estate")
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    subprocess.run(["git", "-C", str(root), "remote", "add", "origin", str(origin)], check=True)
    _write_changes(root, datetime.now(UTC).replace(microsecond=0))
    return root


def test_history_gathers_every_pipelines_anchored_log(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(repo, "CHG-SITE-0001", "applied")  # pipeline 1
    shutil.rmtree(repo / STATE_DIR)  # pipeline 2 starts without pipeline 1's files
    _run(repo, "CHG-SITE-0002", "rolled_back")

    alone = _site(repo, tmp_path / "alone", capsys)
    assert alone["history"] == ["CHG-SITE-0002"]
    both = _site(repo, tmp_path / "both", capsys, "--remote", "origin")
    assert sorted(both["history"]) == ["CHG-SITE-0001", "CHG-SITE-0002"]
    assert both["left_out"] == []
    history = (tmp_path / "both" / "history.html").read_text(encoding="utf-8")
    assert "CHG-SITE-0001" in history and "CHG-SITE-0002" in history


def test_an_anchored_log_that_fails_its_checks_is_left_out_with_a_warning(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(repo, "CHG-SITE-0001", "applied")
    origin = tmp_path / "origin.git"
    ref = next(iter(anchor.remote_logs(repo, "origin").logs))
    # someone with push access replaces the anchored log by a forged one (same message)
    forged = tmp_path / "forged.jsonl"
    forged.write_text('{"not": "an entry"}\n', encoding="utf-8")
    blob = git(origin, "hash-object", "-w", str(forged))
    tree = git(origin, "mktree", stdin=f"100644 blob {blob}\taudit.jsonl\n")
    tip = f"refs/gcmschange/audit/{ref}"
    message = git(origin, "log", "-1", "--format=%B", tip)
    git(origin, "update-ref", tip, git(origin, "commit-tree", tree, "-m", message))
    shutil.rmtree(repo / STATE_DIR)

    now = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    args = [
        "--repo",
        str(repo),
        "site",
        "-o",
        str(tmp_path / "out"),
        "--now",
        now,
        "--remote",
        "origin",
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"warning: left out of the history: origin {tip}: entry 1: missing field" in err
