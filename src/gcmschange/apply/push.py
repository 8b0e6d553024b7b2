"""Push a rendered set to hosts with the standard playbook, then run the change's own
playbook, through the runner.

Plan (check + diff), apply waves, idempotence, restore-rollback, drift and the lab baseline
all go through `push`: the rendered files on disk are exactly what the standard playbook
copies. A change that names a playbook of its own (`playbook: deploy_app`) has it run right
after, on the hosts the standard one did not fail, with the change's variables as extra vars
that are data (`!unsafe`), never templates; both runs' results count as one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gcmschange.errors import InvalidInputError
from gcmschange.execution import nodes
from gcmschange.execution.nodes import ExecNode
from gcmschange.execution.runner import HostStats, Progress, RunResult, RunSpec
from gcmschange.paths import memory_folder
from gcmschange.render.configs import RenderedSet
from gcmschange.rules.estate import Estate, Inventory, load_estate, load_inventory

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
    then: str | None = None,
    variables: Mapping[str, Any] | None = None,
    placement: Mapping[str, ExecNode | None] | None = None,
) -> RunResult:
    """`then`: the change's own playbook, run after `playbook` unless it is the same one.
    `placement`: the execution node of each host (`placement_of`); none: all from here."""
    targets = tuple(hosts) if hosts is not None else rendered.hosts()
    subset = rendered.for_hosts(targets)
    with _rendered_folder(work_dir, secret=subset.has_secrets) as folder:
        rendered_dir = subset.write(folder)
        extravars = {
            **dict(variables or {}),
            "gcms_manifest": subset.manifest(secret=False),
            "gcms_secret_files": subset.manifest(secret=True),
        }

        def spec(name: str, limit: tuple[str, ...], folder: str) -> RunSpec:
            return RunSpec(
                playbook=root / "playbooks" / f"{name}.yml",
                inventory=inventory,
                work_dir=work_dir / folder,
                extravars=extravars,
                limit=limit,
                check=check,
                diff=diff,
                forks=max(5, min(50, len(limit))),
                secrets=tuple(secrets),
                accelerate=accelerate,
                content=root,
                files=rendered_dir,
            )

        def run(spec: RunSpec) -> RunResult:
            return nodes.run(spec, placement or {}, progress)

        first = run(spec(playbook, targets, "runner"))
        if then is None or then == playbook:
            return first
        rest = tuple(h for h in targets if h not in first.failures and h not in first.unreachable)
        if not rest:
            return first
        return merge(first, run(spec(then, rest, f"runner-{then}")))


def placement_of(
    estate: Estate, inventory: Inventory, hosts: Sequence[str]
) -> dict[str, ExecNode | None]:
    """Which execution node runs each of `hosts` (None: the controller), per the estate's
    nodes for the inventory's environment or the inventory's own `gcms_execution_nodes`."""
    configured = estate.execution_nodes.get(inventory.environment, ())
    found = nodes.of_environment(configured, tuple(inventory.hosts.values()))
    targets = [inventory.hosts[h] for h in hosts if h in inventory.hosts]
    used = {n.name: n for n in nodes.place(found, targets).values() if n is not None}
    # Asked each time (a second, at once for every node): a node lost in one wave is passed
    # over by the next run, so the rollback goes through its zone's other nodes.
    down = frozenset(h.name for h in nodes.health_of(tuple(used.values())) if not h.reachable)
    return nodes.place(found, targets, down)


def reached_through(
    estate: Estate, inventory: Inventory, hosts: Sequence[str]
) -> dict[str, ExecNode]:
    """The hosts of `hosts` that an execution node runs, each with its node: verification
    reaches them through it, as their playbooks did."""
    placed = placement_of(estate, inventory, hosts)
    return {h: node for h, node in placed.items() if node is not None}


@contextmanager
def _rendered_folder(work_dir: Path, *, secret: bool) -> Iterator[Path]:
    """Where the rendered files wait for the playbook: in the run's folder, or, when one holds
    a vault value, in memory-backed storage outside it, removed as soon as the run ends."""
    if not secret:
        yield work_dir / "rendered"
        return
    with memory_folder("gcms-rendered-") as folder:
        yield folder


def merge(first: RunResult, second: RunResult) -> RunResult:
    """Two runs on the same hosts as one: a host failed if it failed in either."""
    hosts = dict(first.hosts)
    for name, stats in second.hosts.items():
        had = hosts.get(name, HostStats())
        hosts[name] = HostStats(
            ok=had.ok + stats.ok,
            changed=had.changed + stats.changed,
            failed=had.failed + stats.failed,
            unreachable=had.unreachable + stats.unreachable,
            skipped=had.skipped + stats.skipped,
        )
    worst = first if first.status != "successful" else second
    return RunResult(
        status=worst.status,
        rc=max(first.rc, second.rc),
        hosts=hosts,
        changes=first.changes + second.changes,
        failures={**second.failures, **first.failures},
        unreachable=tuple(dict.fromkeys(first.unreachable + second.unreachable)),
        artifacts=first.artifacts,
        duration_s=first.duration_s + second.duration_s,
        accelerated=first.accelerated and second.accelerated,
        notice=first.notice or second.notice,
    )


def node_health(root: Path, environment: str) -> tuple[nodes.NodeHealth, ...]:
    """Each execution node of `environment`: reachable, and its ansible-runner (none when
    the environment has no inventory here or names no node)."""
    try:
        inventory = load_inventory(root, environment)
    except InvalidInputError:
        return ()
    configured = load_estate(root).execution_nodes.get(environment, ())
    return nodes.health_of(nodes.of_environment(configured, tuple(inventory.hosts.values())))
