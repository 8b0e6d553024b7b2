"""`python -m benchmarks`: every case, side by side, as one table and one JSON file.

    python -m benchmarks [--only CASE]... [--repeats N] [--hosts 20] [--json out.json]

Cases 1-2 come from the modules that own validation and rendering (`bench_validate`,
`bench_render`, each `run(repeats) -> list[dict]`); they are listed as missing until those
modules exist. Cases 3-6 share one lab, brought up once in a temporary estate repository
(hosts split between the portal and the case API, so the portal's upstream is real), taken
to the baseline first and always brought down at the end.
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import Row, format_table, machine, own_peak_rss_mb, row_from
from benchmarks.fleet import Fleet, lab_fleet

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
LAB_SYSTEMS = ("portal", "case_api")
# case name -> (module, needs the lab)
CASES: dict[str, tuple[str, bool]] = {
    "validate": ("benchmarks.bench_validate", False),
    "render": ("benchmarks.bench_render", False),
    "growth": ("benchmarks.bench_growth", False),
    "analysis": ("benchmarks.bench_analysis", False),
    # lab cases in the order they run: the quick ones and the end to end first, so that a
    # run cut short under load still has them
    "verify": ("benchmarks.bench_verify", True),
    "e2e": ("benchmarks.bench_e2e", True),
    "apply": ("benchmarks.bench_apply", True),
    "fanout": ("benchmarks.bench_fanout", True),
    "scaling": ("benchmarks.bench_scaling", True),
    # not in the default run: it needs a lab with nodes (--exec-nodes)
    "nodes": ("benchmarks.bench_nodes", True),
}
DEFAULT = [name for name in CASES if name != "nodes"]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--only", action="append", choices=sorted(CASES), help="repeatable")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (default 3)")
    parser.add_argument(
        "--lab-repeats", type=int, help="runs per side on the lab (default: --repeats)"
    )
    parser.add_argument("--e2e-repeats", type=int, default=1, help="end-to-end runs (default 1)")
    parser.add_argument("--hosts", type=int, default=20, help="lab hosts, even (default 20)")
    parser.add_argument(
        "--exec-nodes",
        type=int,
        default=0,
        help="execution nodes in the lab (the nodes case needs them; default 0)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument("--keep", action="store_true", help="keep the lab's run folders")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.hosts < len(LAB_SYSTEMS) or args.hosts % len(LAB_SYSTEMS):
        parser.error("--repeats must be >= 1 and --hosts a positive even number")
    return args


def _runner(module: str) -> Callable[..., list[dict[str, Any]]] | None:
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise
    found: Callable[..., list[dict[str, Any]]] = loaded.run
    return found


class Report:
    """What the run found so far; written to the JSON file after every case, so a run cut
    short (or a case that breaks) still leaves everything measured before it."""

    def __init__(self, args: argparse.Namespace, argv: Sequence[str]) -> None:
        self.args = args
        self.started = time.monotonic()
        self.payload: dict[str, Any] = {
            "machine": machine(),
            "command": " ".join(["python -m benchmarks", *argv]),
            "repeats": args.repeats,
            "lab_repeats": args.lab_repeats or args.repeats,
            "e2e_repeats": args.e2e_repeats,
            "lab_hosts": args.hosts,
            "exec_nodes": args.exec_nodes,
        }
        self.results: list[dict[str, Any]] = []
        self.errors: dict[str, str] = {}
        self.loads: dict[str, list[float]] = {}

    @property
    def rows(self) -> list[Row]:
        return [row_from(r) for r in self.results if "gcmschange_s" in r]

    def collect(self, name: str, run: Callable[[], list[dict[str, Any]]]) -> None:
        began = time.monotonic()
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", file=sys.stderr, flush=True)
        try:
            self.results.extend(run())
        except Exception as exc:  # a broken case must not cost the others their numbers
            self.errors[name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        self.loads[name] = machine()["loadavg"]
        print(f"  {name}: {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
        self.write()

    def write(self) -> None:
        payload = {
            **self.payload,
            "loadavg_after_case": self.loads,
            "wall_s": round(time.monotonic() - self.started, 1),
            "bench_peak_rss_mb": round(own_peak_rss_mb(), 1),
            "results": [r.as_dict() for r in self.rows]
            + [r for r in self.results if "gcmschange_s" not in r],
            "errors": self.errors,
        }
        self.args.json.parent.mkdir(parents=True, exist_ok=True)
        self.args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def run_all(args: argparse.Namespace, report: Report) -> None:
    chosen = args.only or DEFAULT
    runners = {name: _runner(CASES[name][0]) for name in chosen}
    for name, run in runners.items():
        if run is None:
            report.errors[name] = f"{CASES[name][0]} does not exist yet"
        elif not CASES[name][1]:
            report.collect(name, _bound(run, args.repeats))
    on_lab = [(n, r) for n, r in runners.items() if r is not None and CASES[n][1]]
    if not on_lab:
        return
    repeats = args.lab_repeats or args.repeats
    per_system = args.hosts // len(LAB_SYSTEMS)
    with lab_fleet(LAB_SYSTEMS, per_system, keep=args.keep, exec_nodes=args.exec_nodes) as fleet:
        for name, run in on_lab:
            report.collect(name, _bound(run, args.e2e_repeats if name == "e2e" else repeats, fleet))


def _bound(
    run: Callable[..., list[dict[str, Any]]], repeats: int, fleet: Fleet | None = None
) -> Callable[[], list[dict[str, Any]]]:
    return lambda: run(repeats) if fleet is None else run(repeats, fleet)


def _stop(signum: int, frame: object) -> None:
    # SIGTERM would otherwise end Python without running `finally`: the lab would stay up.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    given = list(argv if argv is not None else sys.argv[1:])
    args = parse(given)
    signal.signal(signal.SIGTERM, _stop)
    report = Report(args, given)
    try:
        run_all(args, report)
    finally:
        report.write()
    print(format_table(report.rows))
    for name, why in report.errors.items():
        print(f"{name}: not measured: {why}")
    print(f"load average after each case: {report.loads}; JSON: {args.json}")
    # A case that could not run because its module is not written yet is not a failure.
    return 1 if any("does not exist yet" not in why for why in report.errors.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
