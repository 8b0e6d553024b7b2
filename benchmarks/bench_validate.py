"""Validating 10,000 change requests: `gcmschange validate` beside `check-jsonschema`.

Both sides are the real command lines, on the same files, with the same schema
(schemas/change-request.schema.json). check-jsonschema checks the schema only;
gcmschange also checks references, variables, catalogue, policy and the calendar across
all changes, and writes its audit events. Three cases:

- cold: no result cache (`--no-cache`); the audit already holds these verdicts.
- first run: a fresh copy of the repository, so every change is also recorded in the
  audit log (one append = two fsyncs, owned by audit.py).
- one file changed: the cache answers for the other 9,999 (target: well under a second).

    python -m benchmarks.bench_validate [--repeats 3] [--changes 10000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import Row, format_table, median, rotate, row_from, speedup_target
from tests.conftest import copy_estate

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
    copy_estate(root)
    for old in (root / "changes").glob("*.yaml"):
        old.unlink()
    first = datetime(2031, 1, 6, 1, 0)
    paths = []
    for i in range(count):
        path = root / "changes" / f"CHG-BENCH-{i:05d}.yaml"
        path.write_text(_change(i, first + timedelta(hours=3 * i)), encoding="utf-8")
        paths.append(path)
    return paths


def _run(args: list[str], cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {done.returncode}: {done.stdout[-2000:]}")


def _ours(root: Path, *extra: str) -> None:
    _run([str(BIN / "gcmschange"), "validate", "--output", "json", *extra], root)


def _peer(root: Path) -> None:
    files = sorted(str(p.relative_to(root)) for p in (root / "changes").glob("*.yaml"))
    schema = str(root / "schemas" / "change-request.schema.json")
    _run([str(BIN / "check-jsonschema"), "--schemafile", schema, *files], root)


def _row(case: str, ours: list[float], peer: list[float], target: tuple[str, float | None]) -> Row:
    return Row(
        case=case,
        gcmschange_s=median(ours),
        peer=PEER,
        peer_s=median(peer),
        target=target[0],
        max_ratio=target[1],
        runs={"gcmschange": ours, "peer": peer},
    )


def run(repeats: int = 3, changes: int = CHANGES) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="gcms-bench-validate-") as tmp:
        root = Path(tmp) / "estate"
        paths = make_repo(root, changes)

        def first_run() -> None:
            shutil.rmtree(root / ".gcmschange", ignore_errors=True)
            _ours(root)

        # The peer does the same work in every case, so it runs once per round.
        times = rotate(
            {
                "first": first_run,
                "cold": lambda: _ours(root, "--no-cache"),
                "peer": lambda: _peer(root),
            },
            repeats,
        )
        _ours(root)  # the cache now holds every change
        edits = iter(range(10**6))

        def one_changed() -> None:
            paths[0].write_text(_change(0, datetime(2031, 1, 6, 1, 0)) + f"# {next(edits)}\n")
            _ours(root)

        warm = rotate({"warm": one_changed}, repeats)["warm"]
        peer = times["peer"]
        rows = [
            _row(f"validate {changes} changes, cold", times["cold"], peer, speedup_target(SPEEDUP)),
            _row(
                f"validate {changes} changes, first run (+audit)", times["first"], peer, ("", None)
            ),
            _row(f"re-validate {changes}, one changed", warm, peer, (f"< {WARM_MAX_S:g} s", None)),
        ]
        out = [r.as_dict() for r in rows]
        out[2]["met"] = rows[2].gcmschange_s < WARM_MAX_S
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
