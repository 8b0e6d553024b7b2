"""What a killed process left in memory-backed storage (a vault password, decrypted files)
is removed by the next gcmschange process; what a living one holds is not."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gcmschange import paths, proc


def test_a_dead_processs_folder_is_swept_and_a_living_ones_kept(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()  # gone: its PID names no process, or another one with another start
    dead = tmp_path / f"gcms-vault-{child.pid}.12345-abcd"
    dead.mkdir()
    (dead / "password").write_text("left by a kill -9")
    mine = tmp_path / f"gcms-vault-{os.getpid()}.{proc.live_start(os.getpid())}-efgh"
    mine.mkdir()
    reused = tmp_path / f"gcms-vault-{os.getpid()}.1-ijkl"  # our PID, another start: gone
    reused.mkdir()
    other = tmp_path / "somebody-else"
    other.mkdir()
    assert set(paths.sweep_memory(tmp_path)) == {dead, reused}
    assert mine.is_dir() and other.is_dir() and not dead.exists()


def test_a_memory_folder_is_named_after_its_process_and_removed_after(tmp_path: Path) -> None:
    with paths.memory_folder("gcms-vault-") as folder:
        assert folder.name.startswith(f"gcms-vault-{os.getpid()}.")
        assert folder.stat().st_mode & 0o777 == 0o700
    assert not folder.exists()
