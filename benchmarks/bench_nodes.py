"""Case 9, execution nodes: one push of the whole fleet from the controller, and through one,
two and three execution nodes (ansible-runner transmit -> worker -> process over ssh).

Run on a lab brought up with nodes (`python -m benchmarks --only nodes --hosts 40
--exec-nodes 3`). Every side is `benchmarks.push_once`, timed from outside, no sampler; the
peer is the controller-only push, so each ratio is what sending the work to K nodes costs or
saves. On one machine the nodes share the controller's cores: the ratio measures the
protocol's overhead and how the work spreads, not the extra CPU a real node would bring.
"""

from __future__ import annotations

from typing import Any

from benchmarks.common import Action, Row, median, rotate
from benchmarks.fleet import BenchError, Fleet
from gcmschange import lab


def through(fleet: Fleet, k: int) -> Action:
    return lambda: fleet.push_process(f"nodes-{k}", nodes=k)


def run(repeats: int, fleet: Fleet) -> list[dict[str, Any]]:
    count = len(lab.exec_nodes(fleet.root))
    if count == 0:
        raise BenchError("the lab has no execution nodes: run with --exec-nodes 3")
    sides: dict[str, Action] = {"controller": through(fleet, 0)}
    for k in range(1, count + 1):
        sides[f"{k} node(s)"] = through(fleet, k)
    times = rotate(sides, repeats, before=fleet.cold)
    peer = median(times["controller"])
    hosts = len(fleet.hosts)
    return [
        Row(
            case=f"9. push through {name}, {hosts} hosts",
            gcmschange_s=median(times[name]),
            peer="the same push from the controller",
            peer_s=peer,
            runs={name: times[name], "controller": times["controller"]},
            extra={"hosts": hosts, "nodes": k},
        ).as_dict()
        for k, name in enumerate(list(sides)[1:], start=1)
    ]
