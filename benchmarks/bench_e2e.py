"""Case 6, end to end: `gcmschange run` of a standard change on the lab fleet.

The change is an instance of `catalogue/raise-log-level.yml` on every system of the fleet,
with a window open now: validate, render, plan (check + diff), the approval gate (standard
changes in the lab need none), lock, canary and waves each verified, the idempotence check,
the final verification, release. Each run is a new change that flips the log level, so every
run changes every host. Measured as a separate process: wall time and peak memory (the
largest single process, and the sum over the whole process tree, sampled). There is no peer
that walks the same road, so the row has no ratio; with Mitogen available the accelerated
run (`--accelerate`) is a second row.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from benchmarks.bench_verify import by_system
from benchmarks.common import Row, median, run_process
from benchmarks.fleet import BenchError, Fleet, git

ZONE = "America/Toronto"


def new_change(fleet: Fleet, number: int) -> str:
    """Write and commit the next standard change (the level the hosts do not have)."""
    level = "debug" if fleet.held[fleet.hosts[0]] == "info" else "info"
    if len(set(fleet.held.values())) != 1:
        raise BenchError("the fleet's hosts hold different levels; a change would not flip all")
    change_id = f"CHG-LAB-{900 + number:04d}"
    suites = by_system(fleet)
    now = datetime.now(ZoneInfo(ZONE)).replace(microsecond=0, tzinfo=None)
    document = {
        "id": change_id,
        "title": f"Benchmark: log level {level}",
        "type": "standard",
        "template": "raise-log-level",
        "parameters": {"level": level},
        "requester": "rm-alice",
        "environment": "lab",
        "systems": sorted(suites),
        "window": {
            "start": (now - timedelta(hours=1)).isoformat(),
            "end": (now + timedelta(hours=6)).isoformat(),
            "timezone": ZONE,
        },
        "rollout": {"canary": 1, "waves": ["100%"], "failure_threshold": 0},
        "rollback": {"strategy": "restore"},
        "verification": sorted({test for files, _ in suites.values() for test in files}),
        "impact": {"level": "none"},
    }
    changes = fleet.root / "changes"
    for old in changes.glob("CHG-*.yaml"):
        old.unlink()  # other open changes would only add calendar warnings
    (changes / f"{change_id}.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    git(fleet.root, "add", "-A", "changes")
    git(fleet.root, "commit", "-qm", f"{change_id}")
    fleet.held = dict.fromkeys(fleet.hosts, level)
    return change_id


def breakdown(journal: Path, started: float, ended: float) -> dict[str, float]:
    """Seconds per stage of one run, from its journal: before the run's first entry (validate,
    render, seal, plan: check + diff on every target), each journaled step begin -> done (the
    waves' pushes and verifications, the idempotence check, notices, locks), and after its
    last entry (the final verification of every target)."""
    entries = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    times = [
        (e["step"], e["status"], datetime.fromisoformat(e["time"]).timestamp()) for e in entries
    ]
    out: dict[str, float] = {"validate, render, seal, plan": round(times[0][2] - started, 2)}
    opened: dict[str, float] = {}
    for step, status, at in times:
        if status == "begin":
            opened[step] = at
        elif step in opened:
            out[step] = round(out.get(step, 0.0) + at - opened.pop(step), 2)
    out["final verification, exit"] = round(ended - times[-1][2], 2)
    return out


def run_change(fleet: Fleet, number: int, accelerate: bool) -> dict[str, Any]:
    change_id = new_change(fleet, number)
    args = [sys.executable, "-m", "gcmschange", "--repo", str(fleet.root)]
    args += ["run", change_id, *(["--accelerate"] if accelerate else [])]
    started = time.time()
    done = run_process(args, cwd=fleet.root)
    ended = time.time()
    log = fleet.fresh_dir(f"e2e-{change_id}") / "output.log"
    log.write_text(done.output, encoding="utf-8")
    if done.returncode != 0:
        tail = " | ".join(done.output.strip().splitlines()[-3:])
        raise BenchError(f"gcmschange run {change_id} failed (exit {done.returncode}): {tail}")
    journal = fleet.root / ".gcmschange" / "changes" / change_id / "journal.jsonl"
    return {
        "wall_s": done.wall_s,
        "max_rss_mb": done.max_rss_mb,
        "tree_mb": done.tree_peak_mb,
        "stages_s": breakdown(journal, started, ended),
        "ansible_runs": len(list(journal.parent.glob("**/artifacts/*/status"))),
    }


def run(
    repeats: int, fleet: Fleet, accelerate: tuple[bool, ...] = (False, True)
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for accelerated in accelerate:
        samples = [run_change(fleet, fleet.runs + 1, accelerated) for _ in range(repeats)]
        label = " (--accelerate)" if accelerated else ""
        row = Row(
            case=f"6. end to end{label}, {len(fleet.hosts)} hosts",
            gcmschange_s=median([s["wall_s"] for s in samples]),
            peer="",
            peer_s=None,
            runs={"gcmschange": [s["wall_s"] for s in samples]},
            extra={
                "hosts": len(fleet.hosts),
                "peak_rss_mb_largest_process": round(max(s["max_rss_mb"] for s in samples), 1),
                "peak_rss_mb_process_tree": round(max(s["tree_mb"] for s in samples), 1),
                "stages_s": [s["stages_s"] for s in samples],
                "ansible_runs": [s["ansible_runs"] for s in samples],
            },
        )
        rows.append(row.as_dict())
    return rows
