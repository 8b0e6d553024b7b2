"""What every benchmark shares: alternating runs, medians, ratios, peak memory, the table.

The machine is small and shared, so absolute seconds drift with whatever else runs. Each
case therefore runs its sides in turn, rotating who goes first every round (so neither side
always meets a warm or a cold machine), and reports medians and their ratio, never a mean.
Ratio is always gcmschange / peer: below 1 gcmschange is faster.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import resource
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gcmschange import proc

Action = Callable[[], object]
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Row:
    """One line of the table; `as_dict` is what the JSON holds."""

    case: str
    gcmschange_s: float
    peer: str
    peer_s: float | None
    target: str = ""  # e.g. "ratio <= 1.10"
    max_ratio: float | None = None  # the target as a bound on the ratio; None: no target
    runs: Mapping[str, Sequence[float]] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return ratio(self.gcmschange_s, self.peer_s)

    @property
    def met(self) -> bool | None:
        if self.max_ratio is None or self.ratio is None:
            return None
        return self.ratio <= self.max_ratio

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "gcmschange_s": round(self.gcmschange_s, 3),
            "peer": self.peer,
            "peer_s": None if self.peer_s is None else round(self.peer_s, 3),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": self.target,
            "max_ratio": self.max_ratio,
            "met": self.met,
            "runs": {k: [round(v, 3) for v in vs] for k, vs in self.runs.items()},
            "spread": {k: spread(vs) for k, vs in self.runs.items() if vs},
            **dict(self.extra),
        }


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> dict[str, float]:
    """min / median / max of one side's runs, as the JSON and the README quote them."""
    return {
        "min": round(min(values), 3),
        "median": round(median(values), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }


def ratio(ours: float, peer: float | None) -> float | None:
    """gcmschange / peer; None when there is no peer or the peer took no time at all."""
    if peer is None or peer <= 0:
        return None
    return ours / peer


def speedup_target(times: float) -> tuple[str, float]:
    """A target written as "N times faster than the peer", as a bound on the ratio."""
    return f"speed-up >= {times:g}x (ratio <= {1 / times:.3f})", 1 / times


def timed(action: Action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def rotate(
    sides: Mapping[str, Action], repeats: int, before: Action | None = None
) -> dict[str, list[float]]:
    """Run every side `repeats` times, round by round, each round starting one side later.

    `before` runs (untimed) before every timed run, e.g. to close ssh masters so that no side
    inherits the previous one's warm connections.
    """
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(repeats):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            if before is not None:
                before()
            times[name].append(timed(sides[name]))
    return times


def alternate(ours: Action, peer: Action, repeats: int) -> tuple[list[float], list[float]]:
    times = rotate({"gcmschange": ours, "peer": peer}, repeats)
    return times["gcmschange"], times["peer"]


# --- processes: wall time and peak memory without psutil ---


@dataclass(frozen=True)
class ProcRun:
    returncode: int
    wall_s: float
    # Both sampled from /proc every 50 ms. Not the kernel's ru_maxrss: a child forked from a
    # large benchmark process counts the parent's pages until it execs, so ru_maxrss would
    # report the benchmark's own size (seen: 928 MB after the 100,000-host rendering case).
    max_rss_mb: float  # the largest single process of the tree
    tree_peak_mb: float  # the largest sum of RSS over the whole tree
    output: str


def tree_rss_bytes(pid: int) -> tuple[int, int]:
    """Resident memory of `pid` and all its descendants, read from /proc: (the sum over the
    tree, the largest single process)."""
    tree = proc.children()
    total, largest, todo = 0, 0, [pid]
    while todo:
        current = todo.pop()
        try:
            pages = int(Path(f"/proc/{current}/statm").read_text(encoding="ascii").split()[1])
        except (OSError, IndexError, ValueError):
            continue
        total += pages * _PAGE
        largest = max(largest, pages * _PAGE)
        todo.extend(tree.get(current, ()))
    return total, largest


class _Sampler(threading.Thread):
    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.peak = 0
        self.largest = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            total, largest = tree_rss_bytes(self.pid)
            self.peak = max(self.peak, total)
            self.largest = max(self.largest, largest)


def run_process(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    sample: bool = True,
) -> ProcRun:
    """Run a command to its end; its wall time, peak memory and (merged) output.

    `sample=False`: no memory sampler (peaks read 0). The sampler walks /proc 20 times a
    second, about 11 ms of CPU a pass with 250 processes: a timed comparison runs both sides
    without it, or both with it, never one side only.
    """
    started = time.perf_counter()
    child = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    sampler = _Sampler(child.pid)
    if sample:
        sampler.start()
    output = ""
    if child.stdout is not None:
        with child.stdout:
            output = child.stdout.read()
    child.wait()
    wall = time.perf_counter() - started
    sampler.stop.set()
    if sample:
        sampler.join()
    return ProcRun(child.returncode, wall, sampler.largest / 2**20, sampler.peak / 2**20, output)


def cpu_seconds() -> float:
    """CPU time of this process and of every child it has reaped (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def with_cpu(action: Action, into: list[float]) -> Action:
    """`action`, also appending the controller CPU seconds it took to `into`.

    Under load, wall time measures the neighbours as much as us; CPU seconds spent on this
    machine's side (Python, ansible-playbook and its workers, ssh clients) barely move.
    """

    def measured() -> None:
        before = cpu_seconds()
        action()
        into.append(cpu_seconds() - before)

    return measured


def own_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the report ---


def machine() -> dict[str, Any]:
    load1, load5, load15 = os.getloadavg()
    model = ""
    for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * _PAGE / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "versions": versions(),
    }


# The packages either side of a case runs: gcmschange and every peer.
_MEASURED = (
    "gcmschange",
    "ansible-core",
    "ansible-runner",
    "mitogen",
    "pytest",
    "pytest-testinfra",
    "pytest-xdist",
    "check-jsonschema",
    "jsonschema",
    "jsonschema-rs",
    "Jinja2",
    "MarkupSafe",
    "PyYAML",
    "ruamel.yaml",
)


def versions() -> dict[str, Any]:
    """Each measured package's version (None: not installed), and which C extensions are in
    use: libyaml under PyYAML, MarkupSafe's speedups, ruamel's C loader."""
    from importlib import metadata

    found: dict[str, Any] = {}
    for name in _MEASURED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["c_extensions"] = _c_extensions()
    found["openssh"] = _openssh()
    return found


def _c_extensions() -> dict[str, bool]:
    out: dict[str, bool] = {}
    try:
        import yaml

        out["pyyaml_libyaml"] = bool(getattr(yaml, "__with_libyaml__", False))
    except ImportError:
        out["pyyaml_libyaml"] = False
    out["markupsafe_speedups"] = importlib.util.find_spec("markupsafe._speedups") is not None
    return out


def _openssh() -> str:
    try:
        done = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return done.stderr.strip()


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _ratio_cell(row: Row) -> str:
    value = row.ratio
    if value is None:
        return "-"
    text = f"{value:.2f}"
    if value < 1:
        text += f" ({1 / value:.1f}x faster)"
    if row.met is not None:
        text += " ok" if row.met else " MISSED"
    return text


def format_table(rows: Sequence[Row]) -> str:
    """A plain-text (and Markdown) table: case | gcmschange | peer | ratio | target."""
    head = ["case", "gcmschange", "peer", "ratio", "target"]
    body = [
        [
            r.case,
            _seconds(r.gcmschange_s),
            f"{r.peer}: {_seconds(r.peer_s)}" if r.peer else "-",
            _ratio_cell(r),
            r.target or "-",
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), rule, *(line(cells) for cells in body)])


def row_from(result: Mapping[str, Any]) -> Row:
    """A row from the dict another benchmark module returned (keys as in `Row.as_dict`)."""
    return Row(
        case=str(result["case"]),
        gcmschange_s=float(result["gcmschange_s"]),
        peer=str(result.get("peer") or ""),
        peer_s=None if result.get("peer_s") is None else float(result["peer_s"]),
        target=str(result.get("target") or ""),
        max_ratio=None if result.get("max_ratio") is None else float(result["max_ratio"]),
        runs=dict(result.get("runs") or {}),
        extra={k: v for k, v in result.items() if k not in _ROW_KEYS},
    )


_ROW_KEYS = {
    "spread",
    "case",
    "gcmschange_s",
    "peer",
    "peer_s",
    "ratio",
    "target",
    "met",
    "runs",
    "max_ratio",
}
