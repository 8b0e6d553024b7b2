"""Which hosts go in which wave, and when a wave has failed.

Canary host(s) first, then the change's waves, each naming how many targets have the change
once it is done ("50%", "100%" or a count): waves are cumulative. Hosts are taken round-robin
across systems, so a wave never takes every host of one system while another system has
hosts to spare: a bad change then leaves each system partly serving.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from gcmschange.analysis.judge import Judge
from gcmschange.analysis.judge import analyse as judge_analyse
from gcmschange.analysis.measure import AnalysisResult, Measurement
from gcmschange.apply import push as deploy
from gcmschange.apply.journal import Journal, Step
from gcmschange.apply.road import Prepared
from gcmschange.audit import trail
from gcmschange.errors import ExternalError, InvalidInputError
from gcmschange.execution import verifier
from gcmschange.execution.runner import RunResult
from gcmschange.masking import mask_bytes
from gcmschange.model import Host, Rollout
from gcmschange.render.configs import RenderedSet

_SPEC = re.compile(r"^\s*(\d+)\s*(%?)\s*$")
# How the journal names the built-in check that hosts hold exactly the pushed rendering.
MANAGED_CHECK = "managed files are the approved rendering"


@dataclass(frozen=True)
class Wave:
    number: int  # 1 is the canary
    hosts: tuple[str, ...]
    canary: bool = False


def spread(hosts: Sequence[Host]) -> tuple[str, ...]:
    """Host names round-robin across systems, each system's hosts in inventory order."""
    by_system: dict[str, list[str]] = {}
    for host in hosts:
        by_system.setdefault(host.system, []).append(host.name)
    queues = list(by_system.values())
    order: list[str] = []
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop(0))
    return tuple(order)


def _target(spec: str, total: int, index: int) -> int:
    match = _SPEC.match(spec)
    where = f"rollout.waves[{index}]"
    if match is None:
        raise InvalidInputError(f'{where}: {spec!r} is neither a count ("2") nor a share ("50%")')
    value, percent = int(match.group(1)), bool(match.group(2))
    if percent:
        if not 0 < value <= 100:
            raise InvalidInputError(f"{where}: {spec!r} must be between 1% and 100%")
        return math.ceil(total * value / 100)
    if value < 1:
        raise InvalidInputError(f"{where}: {spec!r} must name at least one host")
    return min(value, total)


def plan(hosts: Sequence[Host], rollout: Rollout) -> tuple[Wave, ...]:
    """The waves of a change: canary first, then each cumulative wave that adds hosts."""
    order = spread(hosts)
    total = len(order)
    if total == 0:
        raise InvalidInputError("the change targets no host in its environment's inventory")
    if rollout.canary < 0:
        raise InvalidInputError(f"rollout.canary: {rollout.canary} must not be negative")
    waves: list[Wave] = []
    done = min(rollout.canary, total)
    if done:
        waves.append(Wave(1, order[:done], canary=True))
    for index, spec in enumerate(rollout.waves):
        target = _target(spec, total, index)
        if target > done:
            waves.append(Wave(len(waves) + 1, order[done:target]))
            done = target
    if done < total:
        last = rollout.waves[-1] if rollout.waves else "none"
        raise InvalidInputError(
            f"rollout.waves: the last wave ({last}) reaches {done} of {total} hosts; "
            'the last wave must reach every target ("100%")'
        )
    return tuple(waves)


def bad_hosts(*groups: Sequence[str]) -> tuple[str, ...]:
    """Every host named in any group, once, in first-seen order."""
    return tuple(dict.fromkeys(h for group in groups for h in group))


def exceeded(bad: Sequence[str], threshold: int) -> bool:
    """A wave fails when its failed + unreachable + unverified hosts exceed the threshold."""
    return len(set(bad)) > threshold


# --- running a wave: push to its hosts, verify them, count what went wrong ourselves ---


class Reporter(Protocol):
    """Live progress; the CLI prints it, tests may collect it or act on it."""

    def stage(self, text: str) -> None: ...

    def task(self, host: str, task: str, status: str) -> None: ...


class Silent:
    def stage(self, text: str) -> None:
        pass

    def task(self, host: str, task: str, status: str) -> None:
        pass


@dataclass(frozen=True)
class Restore:
    """What a `restore` rollback goes back to: the base commit's content, sealed as the
    change's own was, and the targets' configuration rendered from it. Its playbooks, roles
    and variables run, never the working tree's, so a bad parameter or role edit still in
    the tree is not applied again."""

    rendered: RenderedSet
    base: str  # the commit (sha) it was taken from
    content: Path  # that commit's sealed copy
    inventory: Path  # that commit's inventory, or today's when it has none (the lab's)
    then: str = ""  # the change's own playbook as it was there ("" when it was not there)
    # `then`'s variables: those of the change that last ran it on these systems, if one did
    variables: Mapping[str, Any] = field(default_factory=dict)


class Idempotence(StrEnum):
    """Where the check-mode re-run after the last wave goes.

    Every host already proved at its wave's verification that it holds exactly the approved
    rendering (`MANAGED_CHECK`), which is what a re-run of the standard push would compare.
    What is left to prove is that the playbooks converge, a property of the content, not of
    each host: one host per system shows it, at a 20th of the cost on a 20-host change.
    """

    SAMPLE = "sample"  # the first touched host of each system
    ALL = "all"  # every touched host


@dataclass(frozen=True)
class Job:
    """Everything one run of a change needs, fixed before any host is touched."""

    prepared: Prepared
    run_dir: Path
    journal: Journal
    secrets: tuple[str, ...]
    restore: Restore
    ssh_config: Path | None
    reporter: Reporter = field(default_factory=Silent)
    accelerate: bool = False
    judge: Judge | None = None  # canary analysis (None: the run is not judged by metrics)
    idempotence: Idempotence = Idempotence.SAMPLE

    @property
    def root(self) -> Path:
        return self.prepared.loaded.root

    @property
    def change_id(self) -> str:
        return self.prepared.loaded.change.id


@dataclass(frozen=True)
class WaveResult:
    """What one push + verify did to its hosts."""

    name: Step  # the pass: a wave, the rollback, or resume's re-check
    hosts: tuple[str, ...]
    failed: dict[str, str]  # host -> why (push failure, or the failing tests)
    unreachable: tuple[str, ...]
    changed: tuple[str, ...]
    verified: tuple[str, ...]

    @property
    def bad(self) -> tuple[str, ...]:
        return bad_hosts(tuple(self.failed), self.unreachable)


def idempotence_hosts(job: Job, touched: Sequence[str]) -> list[str]:
    """The touched hosts the idempotence check runs on, in the order they were touched."""
    if job.idempotence is Idempotence.ALL:
        return list(touched)
    systems = job.prepared.loaded.inventory.hosts
    seen: set[str] = set()
    chosen = []
    for host in touched:
        system = systems[host].system if host in systems else host
        if system not in seen:
            seen.add(system)
            chosen.append(host)
    return chosen


def scrub(folder: Path, secrets: Sequence[str]) -> None:
    """Mask secret values in every file kept under `folder` (runner output, JUnit, logs)."""
    if not any(secrets) or not folder.is_dir():
        return
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            masked = mask_bytes(data, secrets)
            if masked != data:
                path.write_bytes(masked)


def push(
    job: Job,
    step: Step,
    rendered: RenderedSet,
    hosts: Sequence[str],
    *,
    playbook: str = "",
    restoring: bool = False,
) -> RunResult:
    """`restoring`: run the base's content (`job.restore`), not the change's."""
    job.journal.begin(step.push, hosts=list(hosts))
    folder = job.run_dir / step.folder
    loaded = job.prepared.loaded
    if restoring:  # the base's content, its own playbook, no variables of the change
        content, inventory = job.restore.content, job.restore.inventory
        then, variables = job.restore.then or None, dict(job.restore.variables)
    else:
        content, inventory = loaded.content, loaded.inventory.path
        then, variables = (None if playbook else loaded.change.playbook), loaded.change.variables
    result = deploy.push(
        content,
        inventory,
        rendered,
        folder,
        hosts=list(hosts),
        playbook=playbook or deploy.STANDARD_PLAYBOOK,
        then=then,
        variables=variables,
        secrets=job.secrets,
        accelerate=job.accelerate,
        progress=job.reporter.task,
        placement=deploy.placement_of(loaded.estate, loaded.inventory, hosts),
    )
    scrub(folder, job.secrets)
    job.journal.done(
        step.push,
        hosts=list(hosts),
        failed=result.failures,
        unreachable=list(result.unreachable),
        changed=list(result.changed_hosts),
    )
    return result


def check(
    job: Job, step: Step, hosts: Sequence[str], holding: RenderedSet | None = None
) -> verifier.VerifyResult:
    """The change's verification tests on `hosts`, each file on its systems' hosts only, and,
    when the standard push put `holding` there, that each host holds exactly its files."""
    loaded = job.prepared.loaded
    by_test = verifier.scope(loaded.estate, loaded.inventory, loaded.change.verification, hosts)
    managed = holding.expected(hosts) if holding is not None else {}
    tests = sorted(by_test) + ([MANAGED_CHECK] if managed else [])
    job.journal.begin(step.verify, hosts=list(hosts), tests=tests)
    folder = job.run_dir / step.folder / "verify"
    try:
        result = verifier.run(
            job.prepared.loaded.content,
            by_test,
            job.ssh_config,
            folder,
            managed=managed,
            via=deploy.reached_through(loaded.estate, loaded.inventory, hosts),
        )
    except ExternalError as exc:
        # Hosts were changed and cannot be verified: that is a failed check, not "nothing
        # touched". The wave fails, and the rollback (verified the same way) decides the code.
        failed: dict[str, tuple[str, ...]] = dict.fromkeys(hosts, (exc.message,))
        result = verifier.VerifyResult(tuple(hosts), failed, 0, folder)
    scrub(folder, job.secrets)
    job.journal.done(
        step.verify,
        hosts=list(hosts),
        failed={h: list(t) for h, t in result.failed.items()},
    )
    return result


def analyse(job: Job, step: Step, hosts: Sequence[str]) -> AnalysisResult | None:
    """After a pass's verification: bake, then judge its hosts by their metrics (journaled,
    every measurement with its query, value, verdict and time, and audited)."""
    judge = job.judge
    if judge is None or not judge.active or not hosts:
        return None
    inventory = job.prepared.loaded.inventory
    targets = [inventory.hosts[h] for h in hosts if h in inventory.hosts]
    checks = [line.split(":", 1)[0] for line in judge.describe(targets)]
    job.reporter.stage(
        f"analysis of {step.folder}: bake {judge.spec.bake:g}s, then {', '.join(checks)}"
    )
    job.journal.begin(step.analysis, hosts=list(hosts), checks=checks, bake=judge.spec.bake)

    def shown(m: Measurement) -> None:
        value = "-" if m.value is None else f"{m.value:.4g}"
        job.reporter.stage(f"  {m.check} = {value}: {m.verdict.value} {m.message}".rstrip())

    result = judge_analyse(judge, targets, str(step.wave or 0), shown)
    if result is None:
        job.journal.done(step.analysis, hosts=list(hosts), verdict="off")
        return None
    blocked = judge.blocks(result.verdict)
    close = job.journal.failed if blocked else job.journal.done
    close(
        step.analysis,
        hosts=list(hosts),
        verdict=result.verdict.value,
        inconclusive=judge.inconclusive.value,
        measurements=[m.as_dict() for m in result.measurements],
    )
    trail.record(
        job.root,
        "analysis.finished",
        outcome=result.verdict.value,
        change=job.change_id,
        digest=job.prepared.digest,
        details={"step": step.folder, "hosts": list(hosts), **result.as_dict()},
    )
    return result


def push_and_verify(
    job: Job,
    step: Step,
    rendered: RenderedSet,
    hosts: Sequence[str],
    *,
    threshold: int,
    also_verify: Sequence[str] = (),
    playbook: str = "",
    restoring: bool = False,
) -> WaveResult:
    """Push to `hosts`, then verify them (and `also_verify`) unless the push already failed."""
    result = push(job, step, rendered, hosts, playbook=playbook, restoring=restoring)
    failed = dict(result.failures)
    pushed_bad = bad_hosts(tuple(failed), result.unreachable)
    verified: tuple[str, ...] = ()
    if not exceeded(pushed_bad, threshold):
        candidates = [h for h in bad_hosts(also_verify, hosts) if h not in pushed_bad]
        # A rollback playbook of the change's own decides what the hosts hold: no rendering
        # to compare them with.
        checked = check(job, step, candidates, None if playbook else rendered)
        for host, tests in checked.failed.items():
            failed.setdefault(host, "verification failed: " + ", ".join(tests))
        verified = tuple(h for h in candidates if h not in checked.failed)
    return WaveResult(
        step, tuple(hosts), failed, result.unreachable, result.changed_hosts, verified
    )
