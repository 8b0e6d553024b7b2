"""Case 3, apply overhead: what gcmschange adds around Ansible, and nothing else.

Both sides run the same playbook (playbooks/configure.yml) on the same lab hosts with the
same ansible.cfg (the one gcmschange generated: the same tuning on both sides, so the ratio
is gcmschange's own contribution, not Ansible's settings), the same rendered files and the
same extra vars, and each run really changes every host (see fleet.py). gcmschange goes
through `deploy.push` (ansible-runner, its event stream, masking, the result) - the single
playbook run every apply wave is made of - as a process of its own (`push_once`); the peer
is `ansible-playbook` on the command line. Both are timed from outside the same way, with no
memory sampler on either side. Target: ratio <= 1.10.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import Row, median, rotate, run_process, with_cpu
from benchmarks.fleet import BenchError, Fleet

MAX_RATIO = 1.10


def ansible_env(config: Path) -> dict[str, str]:
    """The environment of a plain `ansible-playbook`: this venv's Ansible, the given config."""
    here = Path(sys.executable).parent
    return {
        **os.environ,
        "PATH": f"{here}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(config),
    }


def ansible_playbook(
    fleet: Fleet, playbook: Path, config: Path, label: str, extra: tuple[str, ...] = ()
) -> float:
    """Run plain ansible-playbook on the fleet with the next set; its wall time."""
    folder = fleet.fresh_dir(label)
    extravars = fleet.extravars_file(fleet.flip(), folder)
    args = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(fleet.inventory.path)]
    args += [str(playbook), "-e", f"@{extravars}", "--limit", ",".join(fleet.hosts), *extra]
    done = run_process(args, cwd=folder, env=ansible_env(config), sample=False)
    (folder / "output.log").write_text(done.output, encoding="utf-8")
    if done.returncode != 0:
        tail = " | ".join(done.output.strip().splitlines()[-3:])
        raise BenchError(f"{label}: ansible-playbook failed (exit {done.returncode}): {tail}")
    return done.wall_s


def generated_config(fleet: Fleet) -> Path:
    """A copy of the ansible.cfg gcmschange generated for its latest push."""
    found = sorted(fleet.work.glob("*/runner/ansible.cfg"))
    if not found:
        raise BenchError("no gcmschange run yet: nothing to copy the ansible.cfg from")
    kept = fleet.work / "gcmschange-ansible.cfg"
    shutil.copyfile(found[-1], kept)
    return kept


def run(repeats: int, fleet: Fleet) -> list[dict[str, Any]]:
    config = generated_config(fleet)
    playbook = fleet.root / "playbooks" / "configure.yml"
    cpu: dict[str, list[float]] = {"gcmschange": [], "peer": []}
    times = rotate(
        {
            "gcmschange": with_cpu(
                lambda: fleet.push_process("apply-gcmschange"), cpu["gcmschange"]
            ),
            "peer": with_cpu(
                lambda: ansible_playbook(fleet, playbook, config, "apply-peer"), cpu["peer"]
            ),
        },
        repeats,
        before=fleet.cold,
    )
    row = Row(
        case=f"3. apply overhead, {len(fleet.hosts)} hosts",
        gcmschange_s=median(times["gcmschange"]),
        peer="ansible-playbook, same ansible.cfg",
        peer_s=median(times["peer"]),
        target=f"ratio <= {MAX_RATIO:.2f}",
        max_ratio=MAX_RATIO,
        runs=times,
        extra={
            "hosts": len(fleet.hosts),
            "controller_cpu_s": {k: [round(v, 2) for v in vs] for k, vs in cpu.items()},
            "cpu_ratio": round(median(cpu["gcmschange"]) / median(cpu["peer"]), 3),
        },
    )
    return [row.as_dict()]
