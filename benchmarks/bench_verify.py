"""Case 5, verification: the estate's testinfra suite on the lab, as gcmschange runs it.

gcmschange (`verify.run`): one pytest with testinfra's ssh backend through the lab's
ssh_config (ControlMaster: one connection per host, reused by every check), pytest-xdist
across hosts, each test file on the hosts of the systems that list it.
The peer: what a competent testinfra user runs - `pytest -n 2` (pytest-xdist, one worker a
core) once per system with that system's files and hosts, testinfra's ssh backend with the
same ssh_config, ControlMaster included. Both start with no ssh master alive, both are
processes timed from outside, neither runs the memory sampler.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from benchmarks.common import Row, median, rotate, run_process
from benchmarks.fleet import BenchError, Fleet
from gcmschange.execution import verifier
from gcmschange.rules.estate import load_estate


def by_system(fleet: Fleet) -> dict[str, tuple[list[str], list[str]]]:
    """system -> (its verify files, its hosts)."""
    estate = load_estate(fleet.root)
    out: dict[str, tuple[list[str], list[str]]] = {}
    for name, members in fleet.inventory.groups.items():
        system = estate.systems.get(name)
        if system is not None and members:
            out[name] = (list(system.verify), list(members))
    return out


def ours(fleet: Fleet, suites: dict[str, tuple[list[str], list[str]]]) -> int:
    scope: dict[str, list[str]] = {}
    for files, hosts in suites.values():
        for test in files:
            scope.setdefault(test, []).extend(hosts)
    result = verifier.run(fleet.root, scope, fleet.ssh_config, fleet.fresh_dir("verify-ours"))
    if not result.ok:
        raise BenchError(f"verify (gcmschange) failed on {', '.join(result.failed_hosts)}")
    return result.passed


def peer(fleet: Fleet, suites: dict[str, tuple[list[str], list[str]]], config: Path) -> None:
    folder = fleet.fresh_dir("verify-peer")
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    for system, (files, hosts) in suites.items():
        args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2"]
        args += [
            "--rootdir",
            str(folder),
            "-c",
            str(folder / "pytest.ini"),
            "--ssh-config",
            str(config),
        ]
        args += ["--hosts", ",".join(f"ssh://{h}" for h in hosts), *files]
        done = run_process(args, cwd=fleet.root, sample=False)
        (folder / f"{system}.log").write_text(done.output, encoding="utf-8")
        if done.returncode != 0:
            tail = " | ".join(done.output.strip().splitlines()[-2:])
            raise BenchError(f"verify (peer, {system}) failed (exit {done.returncode}): {tail}")


def run(repeats: int, fleet: Fleet) -> list[dict[str, Any]]:
    suites = by_system(fleet)
    config = fleet.ssh_config
    checks: list[int] = []
    times = rotate(
        {
            "gcmschange": lambda: checks.append(ours(fleet, suites)),
            "peer": lambda: peer(fleet, suites, config),
        },
        repeats,
        before=fleet.cold,
    )
    row = Row(
        case=f"5. verification, {len(fleet.hosts)} hosts",
        gcmschange_s=median(times["gcmschange"]),
        peer="pytest -n 2 per system, same ssh_config (ControlMaster)",
        peer_s=median(times["peer"]),
        runs=times,
        extra={"hosts": len(fleet.hosts), "checks": checks[0] if checks else 0},
    )
    return [row.as_dict()]
