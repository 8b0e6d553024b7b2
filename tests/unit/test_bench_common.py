"""The benchmark arithmetic and table: medians, ratios, rotation, targets. Never speed itself."""

from __future__ import annotations

import os
import sys

import pytest

from benchmarks.common import (
    Row,
    format_table,
    median,
    ratio,
    rotate,
    row_from,
    run_process,
    speedup_target,
    tree_rss_bytes,
)


def test_median_of_odd_and_even_counts() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError, match="no values"):
        median([])


def test_ratio_is_ours_over_peer_and_absent_without_a_peer() -> None:
    assert ratio(10.0, 40.0) == 0.25
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None


def test_speedup_target_bounds_the_ratio() -> None:
    text, bound = speedup_target(4)
    assert bound == 0.25
    assert "4x" in text and "0.250" in text


def test_rotate_alternates_who_goes_first() -> None:
    order: list[str] = []
    sides = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    befores: list[int] = []
    times = rotate(sides, 3, before=lambda: befores.append(1))
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert len(befores) == 6
    assert [len(v) for v in times.values()] == [3, 3]
    assert all(t >= 0 for v in times.values() for t in v)


def test_row_met_against_its_target() -> None:
    within = Row("apply", 1.05, "peer", 1.0, "ratio <= 1.10", 1.10)
    over = Row("apply", 1.2, "peer", 1.0, "ratio <= 1.10", 1.10)
    untargeted = Row("e2e", 30.0, "", None)
    assert within.met is True
    assert over.met is False
    assert untargeted.met is None and untargeted.ratio is None


def test_row_round_trips_through_its_dict() -> None:
    row = Row("fanout", 10.0, "defaults", 60.0, "x", 0.25, {"gcmschange": [10.0]}, {"hosts": 20})
    data = row.as_dict()
    assert data["ratio"] == pytest.approx(0.167, abs=1e-3)
    assert data["met"] is True
    assert data["spread"] == {"gcmschange": {"min": 10.0, "median": 10.0, "max": 10.0, "n": 1}}
    again = row_from(data)
    assert again == row


def test_row_from_a_foreign_module_dict_keeps_its_extra_keys() -> None:
    row = row_from(
        {"case": "1. validate", "gcmschange_s": 2, "peer": "cj", "peer_s": 8, "ratio": 0.25, "n": 3}
    )
    assert row.ratio == 0.25
    assert row.extra == {"n": 3}


def test_table_has_a_line_per_row_and_says_faster_and_missed() -> None:
    rows = [
        Row("3. apply", 46.0, "ansible-playbook", 40.0, "ratio <= 1.10", 1.10),
        Row("4. fan-out", 0.5, "defaults", 2.0),
        Row("6. e2e", 90.0, "", None),
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].split("|")[1].strip() == "case"
    assert len(lines) == 2 + len(rows)
    assert len({len(line) for line in lines}) == 1
    assert "1.15 MISSED" in lines[2]
    assert "0.25 (4.0x faster)" in lines[3]
    assert "500 ms" in lines[3]
    assert "| -" in lines[4]


def test_run_process_reports_exit_wall_time_and_memory() -> None:
    # held long enough for the 50 ms sampler to see it
    code = "import sys, time; b = b'x' * (64 * 2**20); time.sleep(0.5); print('done'); sys.exit(3)"
    done = run_process([sys.executable, "-c", code])
    assert done.returncode == 3
    assert done.output.strip() == "done"
    assert done.wall_s > 0
    assert done.max_rss_mb >= 64


def test_tree_rss_counts_this_process() -> None:
    total, largest = tree_rss_bytes(os.getpid())
    assert total >= largest > 0


def test_a_small_child_of_a_large_benchmark_is_reported_small() -> None:
    # ru_maxrss would say >= 300 MB here: the child counts our pages until it execs.
    ballast = b"x" * (300 * 2**20)
    code = "import time; time.sleep(0.5)"
    done = run_process([sys.executable, "-c", code])
    assert len(ballast) and done.max_rss_mb < 100
