"""Case 4, tuned fan-out: gcmschange as shipped against Ansible as installed.

Both sides run the same standard playbook, which does the same work (no facts gathered on
either side: `gather_facts: false` is the playbook's, not a tuning). The peer is
`ansible-playbook` with Ansible's defaults (an empty ansible.cfg: 5 forks, no pipelining,
interpreter discovery); gcmschange runs it with its generated configuration (pipelining,
forks matched to the fleet, the interpreter named) and with the opt-in Mitogen accelerator,
each as a process of its own timed from outside like the peer, no memory sampler on any side.
The one-archive-per-host experiment (4c: 2.5x over per-file copies, first session, 10 hosts)
is gone with its playbook: it compared an in-process side with a process, and the road now
spends its time elsewhere (the README's end-to-end breakdown).
Targets: >= 1.5x natively, >= 4x with the accelerator.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmarks.bench_apply import ansible_playbook
from benchmarks.common import Row, median, rotate, speedup_target
from benchmarks.fleet import Fleet
from gcmschange.execution import accel

NATIVE, ACCELERATED = 1.5, 4.0


def run(repeats: int, fleet: Fleet) -> list[dict[str, Any]]:
    empty_cfg = fleet.work / "ansible-defaults.cfg"
    empty_cfg.write_text("[defaults]\n", encoding="utf-8")
    playbook = fleet.root / "playbooks" / "configure.yml"
    sides = {
        "ansible defaults": lambda: ansible_playbook(fleet, playbook, empty_cfg, "fanout-defaults"),
        "gcmschange": lambda: fleet.push_process("fanout-native"),
        "gcmschange accelerated": lambda: fleet.push_process("fanout-mitogen", accelerate=True),
    }
    if not accel.available():
        del sides["gcmschange accelerated"]
    # Ansible's default ControlPath lives under ~/.ansible/cp (the benchmark's own home).
    default_cp = Path(os.environ["HOME"]) / ".ansible" / "cp"
    times = rotate(sides, repeats, before=lambda: fleet.cold(default_cp))
    peer = median(times["ansible defaults"])
    hosts = len(fleet.hosts)
    rows = [_row(f"4a. fan-out native, {hosts} hosts", times, "gcmschange", peer, NATIVE)]
    if "gcmschange accelerated" in times:
        label = f"4b. fan-out + Mitogen, {hosts} hosts"
        rows.append(_row(label, times, "gcmschange accelerated", peer, ACCELERATED))
    else:
        rows.append({"case": "4b. fan-out + Mitogen", "skipped": accel.MISSING})
    return rows


def _row(
    case: str, times: dict[str, list[float]], side: str, peer: float, x: float
) -> dict[str, Any]:
    target, bound = speedup_target(x)
    return Row(
        case=case,
        gcmschange_s=median(times[side]),
        peer="ansible-playbook, Ansible defaults",
        peer_s=peer,
        target=target,
        max_ratio=bound,
        runs={side: times[side], "ansible defaults": times["ansible defaults"]},
    ).as_dict()
