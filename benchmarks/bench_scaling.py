"""Case 7 (lab part), scaling: how one gcmschange push grows with the number of hosts.

The same push (`deploy.push`, native tuning, every host really changed) on the first 5, 10,
20 and 40 hosts of the fleet, as far as the fleet reaches (`--hosts 40` for the last). The
sizes run in rotating order so that load drifting over the run does not read as growth.
There is no peer: each row gives the seconds per host beside the total.
"""

from __future__ import annotations

from typing import Any

from benchmarks.common import Action, Row, median, rotate
from benchmarks.fleet import Fleet

SIZES = (5, 10, 20, 40)


def _interleaved(hosts: tuple[str, ...], count: int) -> tuple[str, ...]:
    """`count` hosts taken evenly across systems, so every size has portals and APIs."""
    by_system: dict[str, list[str]] = {}
    for host in hosts:
        by_system.setdefault(host.rsplit("-", 1)[0], []).append(host)
    order = [h for group in zip(*by_system.values(), strict=False) for h in group]
    return tuple(order[:count])


def _push_to(fleet: Fleet, count: int) -> Action:
    return lambda: fleet.push(f"scale-{count}", hosts=_interleaved(fleet.hosts, count))


def run(repeats: int, fleet: Fleet) -> list[dict[str, Any]]:
    sizes = [n for n in SIZES if n <= len(fleet.hosts)]
    times = rotate(
        {str(n): _push_to(fleet, n) for n in sizes},
        repeats,
        before=fleet.cold,
    )
    rows = []
    for n in sizes:
        total = median(times[str(n)])
        row = Row(
            case=f"7. apply scaling, {n} hosts",
            gcmschange_s=total,
            peer="",
            peer_s=None,
            runs={"gcmschange": times[str(n)]},
            extra={"hosts": n, "s_per_host": round(total / n, 3)},
        )
        rows.append(row.as_dict())
    return rows
