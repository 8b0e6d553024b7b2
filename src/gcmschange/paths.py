"""Where gcmschange keeps its own state inside a GitOps repository.

`.gcmschange/` (git-ignored) holds the audit log, journals, plans, run artifacts and the
outbox; approvals are the exception: they live under `approvals/` and are committed.
"""

from __future__ import annotations

from pathlib import Path

STATE_DIR = ".gcmschange"


def state_dir(root: Path) -> Path:
    path = root / STATE_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def audit_log(root: Path) -> Path:
    return state_dir(root) / "audit.jsonl"


def change_dir(root: Path, change_id: str) -> Path:
    """Per-change working state: plan, journal, runner artifacts, verification reports."""
    path = state_dir(root) / "changes" / change_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def outbox(root: Path) -> Path:
    path = state_dir(root) / "outbox"
    path.mkdir(parents=True, exist_ok=True)
    return path
