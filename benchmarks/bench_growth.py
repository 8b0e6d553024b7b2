"""Case 7 (data part): how validation and rendering grow, at 1,000, 10,000 and 100,000.

- validation: `gcmschange validate --no-cache` (every check, not only the schema) over N
  generated change requests, as a child process; CPU seconds (its rusage) with wall beside.
  No peer at every size: check-jsonschema needs about 11 minutes for 100,000 (case 1 gives
  the ratio at 10,000).
- rendering: N hosts x the 100-line template of case 2, gcmschange beside the plain Jinja2
  loop (the practical limit), CPU seconds of this process, so the ratio is given at each size.

Linear growth shows as a constant cost per item (the `per_item_us` column of the JSON).
Sizes above 10,000 run once per side (a run of 100,000 is the measurement, not noise).

    python -m benchmarks.bench_growth [--repeats 3] [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import bench_render, bench_validate
from benchmarks.common import Row, format_table, median, row_from, run_process
from gcmschange.render.configs import Renderer, render_hosts
from gcmschange.rules.estate import load_estate, load_inventory

SIZES = (1_000, 10_000, 100_000)
BIG = 10_000  # above this, one run per side


def _repeats_for(size: int, repeats: int) -> int:
    return 1 if size > BIG else repeats


def validate_rows(size: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gcms-bench-growth-") as tmp:
        root = Path(tmp) / "estate"
        bench_validate.make_repo(root, size)
        times: bench_validate.Times = {"cpu": [], "wall": []}
        run = bench_validate._ours(root, "--no-cache")
        if size <= BIG:
            run({"cpu": [], "wall": []})  # untimed: bytecode and page cache, as in case 1
        for _ in range(_repeats_for(size, repeats)):
            run(times)
        # Memory from a run of its own, sampled: the timed runs carry no sampler.
        args = [str(bench_validate.BIN / "gcmschange"), "validate", "--output", "json"]
        peak = run_process([*args, "--no-cache"], cwd=root).tree_peak_mb
    cpu = median(times["cpu"])
    return Row(
        case=f"7. validate {size} changes (cold)",
        gcmschange_s=cpu,
        peer="",
        peer_s=None,
        runs={"gcmschange": times["cpu"]},
        extra={
            "measure": "cpu",
            "items": size,
            "per_item_us": round(cpu / size * 1e6, 1),
            "gcmschange_wall_s": round(median(times["wall"]), 3),
            "peak_rss_mb": round(peak, 1),
        },
    ).as_dict()


def render_rows(size: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gcms-bench-growth-") as tmp:
        root = Path(tmp)
        bench_render.make_estate(root, size)
        estate, inventory = load_estate(root), load_inventory(root, "lab")
        targets = tuple(inventory.hosts.values())
        variables = {"nginx_worker_connections": 1024}

        def ours() -> object:
            return render_hosts(estate, inventory, targets, variables, Renderer(root / "templates"))

        def peer() -> object:
            return bench_render.plain_loop(estate, inventory, variables)

        times = bench_render._alternate(
            {"gcmschange": ours, "peer": peer}, _repeats_for(size, repeats)
        )
        peak = _render_peak_mb(root)
    row = bench_render._row(f"7. render {size} hosts", times, bench_render.MAX_RATIO)
    row["peak_rss_mb"] = round(peak, 1)
    row["items"] = size
    row["per_item_us"] = round(row["gcmschange_s"] / size * 1e6, 1)
    return row


_RENDER_ONCE = """
import sys
from pathlib import Path
from gcmschange.render.configs import render_hosts
from gcmschange.rules.estate import load_estate, load_inventory
root = Path(sys.argv[1])
inventory = load_inventory(root, "lab")
render_hosts(load_estate(root), inventory, tuple(inventory.hosts.values()),
             {"nginx_worker_connections": 1024})
status = Path("/proc/self/status").read_text().splitlines()
print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")))
"""


def _render_peak_mb(root: Path) -> float:
    """Peak memory of one rendering of the estate at `root`, in a fresh process of its own:
    its VmHWM, the high-water mark of its own address space. Not `ru_maxrss`, which Linux
    keeps across exec: the child would start at this (large) benchmark process's size."""
    done = run_process([sys.executable, "-c", _RENDER_ONCE, str(root)], sample=False)
    if done.returncode != 0:
        raise RuntimeError(f"rendering in a child failed: {done.output[-500:]}")
    return int(done.output.strip().splitlines()[-1]) / 1024


def run(repeats: int = 3, sizes: Sequence[int] = SIZES) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        began = time.monotonic()
        rows.append(validate_rows(size, repeats))
        rows.append(render_rows(size, repeats))
        print(f"  growth {size}: {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_growth")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(format_table([row_from(r) for r in run(args.repeats, sizes)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
