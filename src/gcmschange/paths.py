"""Where gcmschange keeps its own state inside a GitOps repository.

`.gcmschange/` (git-ignored) holds the audit log, journals, plans, run artifacts and the
outbox; approvals are the exception: they live under `approvals/` and are committed.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gcmschange import proc

STATE_DIR = ".gcmschange"
MEMORY = Path("/dev/shm")


# gcms-vault-<pid>.<start>-xxxxxxxx: the process that made it, by PID and start time.
_OWNED = re.compile(r"^gcms-[a-z]+-(\d+)\.(\d+)-")


@contextmanager
def memory_folder(prefix: str) -> Iterator[Path]:
    """A folder only this user can use, in memory-backed storage where the machine has some,
    removed with all it holds when the block ends: for what must never reach a disk (a vault
    password, a file holding a decrypted value, a run package that carries either).

    A process killed -9 cannot remove its folder, and memory-backed storage keeps it until
    the machine restarts: each folder is named after its process, and the next one made
    removes those of this user's gcmschange processes that are gone."""
    base = MEMORY if MEMORY.is_dir() and os.access(MEMORY, os.W_OK) else None
    if base is not None:
        sweep_memory(base)
    me = f"{os.getpid()}.{proc.live_start(os.getpid()) or 0}-"
    folder = Path(tempfile.mkdtemp(prefix=prefix + me, dir=base))  # mode 0700
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sweep_memory(base: Path) -> tuple[Path, ...]:
    """Remove what gcmschange processes of this user left in `base` when they died."""
    removed = []
    for entry in base.iterdir() if base.is_dir() else ():
        owner = _OWNED.match(entry.name)
        if owner is None:
            continue
        try:
            if entry.is_symlink() or entry.lstat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        if proc.live_start(int(owner.group(1))) != int(owner.group(2)):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return tuple(removed)


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
