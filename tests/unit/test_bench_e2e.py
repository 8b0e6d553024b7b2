"""The end-to-end case's stage breakdown, read from a run's journal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.bench_e2e import breakdown


def _at(seconds: float) -> str:
    return datetime.fromtimestamp(1_800_000_000 + seconds, UTC).isoformat()


def test_each_step_begin_to_done_and_the_time_before_and_after(tmp_path: Path) -> None:
    steps = [
        ("run", "begin", 10),
        ("wave-1-push", "begin", 11),
        ("wave-1-push", "done", 15),
        ("wave-1-verify", "begin", 15),
        ("wave-1-verify", "done", 17.5),
        ("end", "done", 18),
    ]
    journal = tmp_path / "journal.jsonl"
    journal.write_text(
        "".join(json.dumps({"step": s, "status": st, "time": _at(t)}) + "\n" for s, st, t in steps)
    )
    got = breakdown(journal, 1_800_000_000 + 2, 1_800_000_000 + 25)
    assert got == {
        "validate, render, seal, plan": 8.0,
        "wave-1-push": 4.0,
        "wave-1-verify": 2.5,
        "final verification, exit": 7.0,
    }
