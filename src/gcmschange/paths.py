"""Where gcmschange keeps its own state inside a GitOps repository.

`.gcmschange/` (git-ignored) holds the audit log, journals, plans, run artifacts and the
outbox; approvals are the exception: they live under `approvals/` and are committed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STATE_DIR = ".gcmschange"
MEMORY = Path("/dev/shm")


@contextmanager
def memory_folder(prefix: str) -> Iterator[Path]:
    """A folder only this user can use, in memory-backed storage where the machine has some,
    removed with all it holds when the block ends: for what must never reach a disk (a vault
    password, a file holding a decrypted value, a run package that carries either)."""
    base = str(MEMORY) if MEMORY.is_dir() and os.access(MEMORY, os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))  # mode 0700
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
