"""Bring hosts to the estate's standard configuration, as committed, with no change applied.

The lab starts with bare hosts; `gcmschange lab converge` (and tests) use this to give
them the baseline every change is then planned and applied against.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from gcmschange.apply import push, road
from gcmschange.errors import GcmsError, UnreachableError
from gcmschange.execution.runner import Progress, RunResult
from gcmschange.paths import state_dir
from gcmschange.rules.estate import load_estate, load_inventory


def converge(
    root: Path,
    environment: str,
    *,
    hosts: Sequence[str] | None = None,
    progress: Progress | None = None,
    accelerate: bool = False,
) -> RunResult:
    """Push the baseline to `hosts` (default: all hosts of the environment)."""
    rendered = road.baseline(root, environment)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    work = state_dir(root) / "converge" / f"{environment}-{stamp}"
    inventory = load_inventory(root, environment)
    targets = list(hosts) if hosts is not None else rendered.hosts()
    result = push.push(
        root,
        inventory.path,
        rendered,
        work,
        hosts=hosts,
        progress=progress,
        accelerate=accelerate,
        placement=push.placement_of(load_estate(root), inventory, targets),
    )
    if result.unreachable:
        raise UnreachableError(
            f"converge {environment}: unreachable: {', '.join(result.unreachable)}"
        )
    if result.failures:
        detail = "; ".join(f"{h}: {m}" for h, m in sorted(result.failures.items()))
        raise GcmsError(f"converge {environment} failed: {detail}")
    return result
