"""Push a rendered set to hosts with the standard playbook, through the runner.

Plan (check + diff), apply waves, restore-rollback, drift and the lab baseline all go
through `push`: the rendered files on disk are exactly what the playbook copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gcmschange.execution.runner import Progress, RunResult, RunSpec, run_playbook
from gcmschange.render.configs import RenderedSet

STANDARD_PLAYBOOK = "configure"


def push(
    root: Path,
    inventory: Path,
    rendered: RenderedSet,
    work_dir: Path,
    *,
    hosts: Sequence[str] | None = None,
    playbook: str = STANDARD_PLAYBOOK,
    check: bool = False,
    diff: bool = False,
    secrets: Sequence[str] = (),
    accelerate: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    targets = tuple(hosts) if hosts is not None else rendered.hosts()
    subset = rendered.for_hosts(targets)
    rendered_dir = subset.write(work_dir / "rendered")
    spec = RunSpec(
        playbook=root / "playbooks" / f"{playbook}.yml",
        inventory=inventory,
        work_dir=work_dir / "runner",
        extravars={
            "gcms_rendered_dir": str(rendered_dir.resolve()),
            "gcms_manifest": subset.manifest(),
        },
        limit=targets,
        check=check,
        diff=diff,
        forks=max(5, min(50, len(targets))),
        secrets=tuple(secrets),
        accelerate=accelerate,
    )
    return run_playbook(spec, progress)
