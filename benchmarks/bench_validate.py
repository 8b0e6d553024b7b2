"""Validating 10,000 change requests: `gcmschange validate` beside `check-jsonschema`.

Both sides are the real command lines, on the same files, with the same schema
(gcmschange/schemas/change-request.schema.json). check-jsonschema checks the schema only;
gcmschange also checks references, variables, catalogue, policy and the calendar across
all changes, and writes its audit events. Three cases:

- cold: no result cache (`--no-cache`); the audit already holds these verdicts.
- first run: a fresh copy of the repository, so every change is also recorded in the
  audit log (all of a run's events in one batch: one write, one fsync).
- one file changed: the cache answers for the other 9,999 (target: well under a second),
  reporting all 10,000 (`validate`) or only the changed file (`validate FILE`, as the
  pre-commit hook and a merge request do; the calendar still sees every change).

Each side is a child process; its CPU time (user + system, the children's rusage) is the measure,
because the machine is shared: wall time is reported beside it. Both sides run from
compiled bytecode (PYTHONDONTWRITEBYTECODE is dropped for the children), as installed
tools do, and each runs once untimed first.

    python -m benchmarks.bench_validate [--repeats 3] [--changes 10000]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import Row, format_table, median, row_from, speedup_target
from gcmschange import resources
from gcmschange.lab import workspace

CHANGES = 10_000
SPEEDUP = 10.0
WARM_MAX_S = 1.0
BIN = Path(sys.executable).parent
ENVIRONMENTS = ("prod", "staging", "dev")
SYSTEMS = ("portal", "case_api", "partner_gateway", "eta", "db_proxy", "batch", "log_shipper")
PEER = "check-jsonschema (schema only)"


def _change(i: int, start: datetime) -> str:
    """A realistic normal or standard change; windows never overlap, so all are valid."""
    env, system = ENVIRONMENTS[i % 3], SYSTEMS[i % len(SYSTEMS)]
    end = start + timedelta(hours=2)
    body = (
        "type: standard\ntemplate: raise-log-level\nparameters:\n  level: debug\n"
        if i % 4 == 0
        else "type: normal\nplaybook: configure\nvariables:\n"
        f"  nginx_worker_connections: {512 + i % 1024}\n  gcms_log_level: info\n"
    )
    return (
        f"id: CHG-BENCH-{i:05d}\ntitle: Benchmark change number {i} on {system}\n{body}"
        f"requester: rm-bench\nenvironment: {env}\nsystems: [{system}]\n"
        f'window:\n  start: "{start:%Y-%m-%dT%H:%M}"\n  end: "{end:%Y-%m-%dT%H:%M}"\n'
        "  timezone: America/Toronto\n"
        'rollout:\n  canary: 1\n  waves: ["50%", "100%"]\n  failure_threshold: 0\n'
        "rollback:\n  strategy: restore\nverification: [verify/test_common.py]\n"
        + (
            "impact:\n  level: none\n"
            if i % 4 == 0
            else "impact:\n  level: degraded\n  description_en: Brief slowdown.\n"
            "  description_fr: Bref ralentissement.\n"
        )
    )


def make_repo(root: Path, count: int) -> list[Path]:
    workspace.create(root, origin=False)
    for old in (root / "changes").glob("*.yaml"):
        old.unlink()
    first = datetime(2031, 1, 6, 1, 0)
    paths = []
    for i in range(count):
        path = root / "changes" / f"CHG-BENCH-{i:05d}.yaml"
        path.write_text(_change(i, first + timedelta(hours=3 * i)), encoding="utf-8")
        paths.append(path)
    return paths


Times = dict[str, list[float]]  # "cpu" and "wall" seconds, one per run
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _run(args: list[str], cwd: Path, into: Times) -> None:
    started = time.perf_counter()
    child = subprocess.Popen(
        args, cwd=cwd, env=_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _, errors = child.communicate()
    into["wall"].append(time.perf_counter() - started)
    if child.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {child.returncode}: {errors[-2000:]}")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measured(action: Callable[[Times], None]) -> Callable[[Times], None]:
    def run(into: Times) -> None:
        before = _children_cpu()
        action(into)
        into["cpu"].append(_children_cpu() - before)

    return run


def _ours(root: Path, *extra: str) -> Callable[[Times], None]:
    args = [str(BIN / "gcmschange"), "validate", "--output", "json", *extra]
    return _measured(lambda into: _run(args, root, into))


def _peer(root: Path) -> Callable[[Times], None]:
    files = sorted(str(p.relative_to(root)) for p in (root / "changes").glob("*.yaml"))
    schema = str(resources.schema("change-request"))
    args = [str(BIN / "check-jsonschema"), "--schemafile", schema, *files]
    return _measured(lambda into: _run(args, root, into))


def _rotate(sides: dict[str, Callable[[Times], None]], repeats: int) -> dict[str, Times]:
    """Every side `repeats` times, round by round, each round starting one side later."""
    names = list(sides)
    times: dict[str, Times] = {n: {"cpu": [], "wall": []} for n in names}
    for round_no in range(repeats):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            sides[name](times[name])
    return times


def _row(case: str, ours: Times, peer: Times, target: tuple[str, float | None]) -> Row:
    return Row(
        case=case,
        gcmschange_s=median(ours["cpu"]),
        peer=PEER,
        peer_s=median(peer["cpu"]),
        target=target[0],
        max_ratio=target[1],
        runs={"gcmschange": ours["cpu"], "peer": peer["cpu"]},
        extra={
            "measure": "cpu",
            "gcmschange_wall_s": round(median(ours["wall"]), 3),
            "peer_wall_s": round(median(peer["wall"]), 3),
            "wall_runs": {
                "gcmschange": [round(v, 3) for v in ours["wall"]],
                "peer": [round(v, 3) for v in peer["wall"]],
            },
        },
    )


def run(repeats: int = 3, changes: int = CHANGES) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="gcms-bench-validate-") as tmp:
        root = Path(tmp) / "estate"
        paths = make_repo(root, changes)
        scratch: Times = {"cpu": [], "wall": []}
        ours_cold, peer = _ours(root, "--no-cache"), _peer(root)
        ours_cold(scratch)  # untimed: bytecode written, files in the page cache, for both
        peer(scratch)

        def first_run(into: Times) -> None:
            shutil.rmtree(root / ".gcmschange", ignore_errors=True)
            _ours(root)(into)

        # The peer does the same work in every case, so it runs once per round.
        times = _rotate({"first": first_run, "cold": ours_cold, "peer": peer}, repeats)
        _ours(root)(scratch)  # the cache now holds every change
        edits = iter(range(10**6))
        changed = str(paths[0].relative_to(root))

        def edit() -> None:
            start = datetime(2031, 1, 6, 1, 0)
            paths[0].write_text(_change(0, start) + f"# {next(edits)}\n", encoding="utf-8")

        def warm(*extra: str) -> Callable[[Times], None]:
            ours = _ours(root, *extra)

            def run(into: Times) -> None:
                edit()
                ours(into)

            return run

        warm_times = _rotate({"all": warm(), "one": warm(changed)}, repeats)
        peer_times = times["peer"]
        warm_target = (f"< {WARM_MAX_S:g} s (CPU)", None)
        rows = [
            _row(
                f"validate {changes} changes, cold",
                times["cold"],
                peer_times,
                speedup_target(SPEEDUP),
            ),
            _row(
                f"validate {changes} changes, first run (+audit)",
                times["first"],
                peer_times,
                ("", None),
            ),
            _row(
                f"re-validate {changes}, one changed, report all",
                warm_times["all"],
                peer_times,
                warm_target,
            ),
            _row(
                f"re-validate {changes}, one changed, report it",
                warm_times["one"],
                peer_times,
                warm_target,
            ),
        ]
        out = [r.as_dict() for r in rows]
        for row in out[2:]:
            row["met"] = row["gcmschange_s"] < WARM_MAX_S
        return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_validate")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--changes", type=int, default=CHANGES)
    args = parser.parse_args(argv)
    rows = run(args.repeats, args.changes)
    print(format_table([row_from(r) for r in rows]))
    return 0 if all(r["met"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
