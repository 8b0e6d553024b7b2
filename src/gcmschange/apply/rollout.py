"""One run of a change through its waves, and back: what `apply`, `resume` and `rollback`
share once the gate has passed.

A `Run` starts (journal), takes the lock of every target system or none, goes `forward`
wave by wave (push, verify, count against the threshold), checks idempotence, or goes
`back` (restore or the change's rollback playbook, then verify), and finishes: notices,
the lock released (kept when the rollback failed), the outcome journaled and audited.
Anything that escapes a run is journaled as an interruption with the lock kept (`guarded`).
"""

from __future__ import annotations

import os
import secrets as random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gcmschange import gitrepo
from gcmschange.analysis.judge import Judge
from gcmschange.analysis.measure import AnalysisResult, Verdict
from gcmschange.apply import journal, locks, road
from gcmschange.apply import waves as wv
from gcmschange.apply.journal import Stage, Step
from gcmschange.apply.push import placement_of as push_placement
from gcmschange.apply.push import push as deploy_push
from gcmschange.audit import anchor, trail
from gcmschange.errors import CancelledError, ExitCode, GcmsError, InvalidInputError
from gcmschange.execution import verifier
from gcmschange.masking import secret_values
from gcmschange.model import ChangeRequest, Host
from gcmschange.notify import notices
from gcmschange.paths import change_dir
from gcmschange.plan import earlier
from gcmschange.plan.seal import seal
from gcmschange.render.configs import RenderedFile, RenderedSet, render_hosts
from gcmschange.rules.estate import (
    Estate,
    Inventory,
    inventory_sources,
    load_estate,
    load_inventory,
)

APPLIED, ROLLED_BACK, ROLLBACK_FAILED = "applied", "rolled_back", "rollback_failed"


@dataclass(frozen=True)
class Finding:
    host: str
    task: str


@dataclass(frozen=True)
class Outcome:
    change: str
    digest: str
    run: str
    kind: str  # apply, resume, rollback
    outcome: str  # applied, rolled_back, rollback_failed
    steps: tuple[wv.WaveResult, ...]
    rollback: wv.WaveResult | None = None
    findings: tuple[Finding, ...] = ()  # idempotence: what a second run would still change
    emergency: bool = False
    locks_kept: tuple[str, ...] = ()
    reason: str = ""  # why it was rolled back
    analysis: tuple[dict[str, Any], ...] = ()  # each pass's analysis: step, verdict, measurements

    @property
    def exit_code(self) -> ExitCode:
        if self.outcome == ROLLBACK_FAILED:
            return ExitCode.ROLLBACK_FAILED
        if self.outcome == ROLLED_BACK and self.kind != "rollback":
            return ExitCode.ROLLED_BACK
        return ExitCode.OK

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self)
        # Steps by the names the journal gives them ("wave-2"), not as their typed parts.
        for raw, step in zip(body["steps"], self.steps, strict=True):
            raw["name"] = str(step.name)
        if self.rollback is not None:
            body["rollback"]["name"] = str(self.rollback.name)
        return {**body, "exit_code": int(self.exit_code), "ok": self.outcome == APPLIED}


def run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{random.token_hex(2)}"


def default_base(root: Path, loaded: road.Loaded) -> str:
    """Where a restore goes back to when nobody says: the commit before the change file came
    onto this line (its merge's first parent), so the base has none of the merge request's
    playbook or role edits; HEAD when the change is not committed."""
    path = loaded.change.path
    arrived = gitrepo.arrival(root, "HEAD", path) if path else None
    return f"{arrived}^1" if arrived and gitrepo.resolve_commit(root, f"{arrived}^1") else "HEAD"


def restore_set(root: Path, loaded: road.Loaded, base: str | None) -> wv.Restore:
    """What a restore goes back to: the content at `base` (default: `default_base`), sealed,
    and the targets' configuration it renders, without the change."""
    base = base or default_base(root, loaded)
    sha = gitrepo.resolve_commit(root, base)
    if sha is None:
        raise InvalidInputError(f"base revision {base!r}: no such commit in {root}")
    change = loaded.change
    sealed = seal(root, change.id, change.environment, sha)
    estate = load_estate(sealed.root)
    if inventory_sources(sealed.root / "inventories" / change.environment):
        inventory = load_inventory(sealed.root, change.environment)
    else:  # generated inventories (the lab's) are not committed: the hosts are today's
        inventory = loaded.inventory
    hosts = [inventory.hosts[h.name] for h in loaded.targets if h.name in inventory.hosts]
    applied = earlier.applied_before(root, change)
    rendered = _as_before(applied, estate, inventory, hosts)
    there = change.playbook and (sealed.root / "playbooks" / f"{change.playbook}.yml").is_file()
    then = change.playbook if there else ""
    # The change's own playbook runs with the variables of the change that last ran it on
    # these systems, when one did; several different ones cannot share one run: none then.
    ran = [earlier.last_on(applied, s, change.playbook) for s in {h.system for h in hosts}]
    previous = ran[0] if ran and all(r is ran[0] for r in ran) else None
    return wv.Restore(
        rendered,
        sha,
        sealed.root,
        inventory.path,
        then,
        dict(previous.variables) if previous is not None and then else {},
    )


def _as_before(
    applied: list[ChangeRequest], estate: Estate, inventory: Inventory, hosts: list[Host]
) -> RenderedSet:
    """The base's configuration of each host as the change that last configured its system
    left it (its variables), or with none when no change did: change variables last one run,
    so this is the state the host is in, and a rolled-back canary then matches the hosts the
    wave never reached."""
    groups: dict[str, tuple[ChangeRequest | None, list[Host]]] = {}
    for host in hosts:
        previous = earlier.last_on(applied, host.system)
        groups.setdefault(previous.id if previous else "", (previous, []))[1].append(host)
    files: list[RenderedFile] = []
    for previous, members in groups.values():
        try:
            given = dict(previous.variables) if previous is not None else {}
            part = render_hosts(estate, inventory, members, given)
        except GcmsError:
            if previous is None:
                raise
            # Its variables no longer fit the base's templates: the base's own defaults.
            part = render_hosts(estate, inventory, members, {})
        files += part.files
    order = {h.name: i for i, h in enumerate(hosts)}
    files.sort(key=lambda f: order.get(f.host, len(order)))
    return RenderedSet(inventory.environment, tuple(files))


def new_job(
    prepared: road.Prepared,
    restore: wv.Restore,
    reporter: wv.Reporter | None,
    accelerate: bool,
    *,
    judge: Judge | None = None,
    idempotence: wv.Idempotence = wv.Idempotence.SAMPLE,
) -> wv.Job:
    loaded = prepared.loaded
    change = loaded.change
    run = run_id()
    secret = secret_values(loaded.content, change)
    return wv.Job(
        prepared=prepared,
        run_dir=change_dir(loaded.root, change.id) / f"run-{run}",
        journal=journal.Journal(journal.path_of(loaded.root, change.id), run, secret),
        secrets=secret,
        restore=restore,
        ssh_config=verifier.ssh_config_of(loaded.inventory),
        reporter=reporter or wv.Silent(),
        accelerate=accelerate,
        judge=judge,
        idempotence=idempotence,
    )


def take_lock(job: wv.Job, store: locks.Store, *, adopt: bool) -> dict[str, str]:
    change = job.prepared.loaded.change
    refs = locks.refs_for(change.environment, change.systems)
    job.journal.begin(Step(Stage.LOCK), refs=list(refs))
    try:
        holder = locks.new_holder(change.id)
        held = store.adopt(refs, holder) if adopt else store.acquire(refs, holder)
    except GcmsError as exc:
        job.journal.failed(Step(Stage.LOCK), reason=exc.message)
        if not adopt:
            job.journal.done(Step(Stage.END), outcome="refused")
        trail.record(
            job.root,
            "lock.refused",
            outcome="refused",
            change=change.id,
            details={"locks": [locks.name_of(r) for r in refs], "reason": exc.message},
        )
        raise
    job.journal.done(Step(Stage.LOCK), refs=held)
    trail.record(
        job.root,
        "lock.taken",
        change=change.id,
        digest=job.prepared.digest,
        details={"locks": [locks.name_of(r) for r in held], "run": job.journal.run},
    )
    return held


@dataclass
class Run:
    """The mutable part of one run: what it has done so far."""

    job: wv.Job
    store: locks.Store
    held: dict[str, str]
    kind: str
    threshold: int
    total_waves: int
    emergency: bool = False
    touched: list[str] = field(default_factory=list)
    steps: list[wv.WaveResult] = field(default_factory=list)
    notified: set[Step] = field(default_factory=set)
    analyses: list[dict[str, Any]] = field(default_factory=list)


def judged(run: Run, step: Step, hosts: Sequence[str]) -> AnalysisResult | None:
    """The pass's analysis, kept for the outcome."""
    result = wv.analyse(run.job, step, hosts)
    if result is not None:
        run.analyses.append({"step": step.folder, **result.as_dict()})
    return result


def guarded(run: Run, body: Callable[[Run], Outcome]) -> Outcome:
    """Run `body`; if anything escapes, journal the interruption and keep the lock."""
    try:
        return body(run)
    except BaseException as exc:
        why = exc.message if isinstance(exc, GcmsError) else f"{type(exc).__name__}: {exc}"
        run.job.journal.failed(Step(Stage.INTERRUPTED), reason=why)
        trail.record(
            run.job.root,
            "apply.interrupted",
            outcome="failed",
            change=run.job.change_id,
            details={"reason": why, "locks_kept": sorted(run.held)},
        )
        if isinstance(exc, CancelledError):
            change = run.job.change_id
            raise CancelledError(
                f"{change}: {exc.message}; the lock is kept: run `gcmschange resume {change}` "
                f"or `gcmschange rollback {change}`"
            ) from exc
        raise


def _notify(run: Run, phase: str) -> None:
    step = Step(Stage.NOTIFY, phase=phase)
    if step in run.notified:
        return
    run.job.journal.begin(step)
    try:
        sent = notices.issue_notices(run.job.root, run.job.prepared.loaded.change, phase)
    except GcmsError as exc:  # a notice that cannot be written must not stop a rollback
        run.job.journal.failed(step, reason=exc.message)
        run.job.reporter.stage(f"notices ({phase}) failed: {exc.message}")
        return
    run.job.journal.done(step, notices=len(sent))
    run.notified.add(step)


def record_step(run: Run, step: wv.WaveResult) -> None:
    run.steps.append(step)
    trail.record(
        run.job.root,
        "wave.finished",
        outcome="failed" if step.bad else "ok",
        change=run.job.change_id,
        digest=run.job.prepared.digest,
        details={
            "step": str(step.name),
            "hosts": list(step.hosts),
            "failed": step.failed,
            "unreachable": list(step.unreachable),
            "verified": list(step.verified),
        },
    )


def forward(run: Run, plan: Sequence[wv.Wave]) -> Outcome:
    _notify(run, "started")
    rendered = run.job.prepared.rendered
    total = run.total_waves
    for wave in plan:
        label = " (canary)" if wave.canary else ""
        run.job.reporter.stage(f"wave {wave.number}/{total}{label}: {', '.join(wave.hosts)}")
        run.touched.extend(h for h in wave.hosts if h not in run.touched)
        step = wv.push_and_verify(
            run.job, Step.wave_pass(wave.number), rendered, wave.hosts, threshold=run.threshold
        )
        record_step(run, step)
        if wv.exceeded(step.bad, run.threshold):
            why = f"wave {wave.number}: {len(step.bad)} host(s) failed " + (
                f"(threshold {run.threshold}): "
                + "; ".join(f"{h}: {step.failed.get(h, 'unreachable')}" for h in step.bad)
            )
            return back(run, why)
        # Checks passed: now how the wave's hosts serve under traffic. A failed analysis
        # (or an inconclusive one, where the policy fails closed) goes back like a failed check.
        verdict = judged(run, Step.wave_pass(wave.number), step.verified)
        judge = run.job.judge
        if verdict is not None and judge is not None and judge.blocks(verdict.verdict):
            policy = (
                f" (policy: inconclusive {judge.inconclusive.value})"
                if verdict.verdict is Verdict.INCONCLUSIVE
                else ""
            )
            return back(run, f"wave {wave.number}: {verdict.summary()}{policy}")
    findings = _idempotence(run)
    return _finish(run, APPLIED, findings=findings)


def _idempotence(run: Run) -> tuple[Finding, ...]:
    """A check-mode run of what was applied must change nothing; anything else is a finding."""
    job = run.job
    hosts = wv.idempotence_hosts(job, run.touched)
    of = (
        f" ({len(hosts)} of {len(run.touched)}: one per system)"
        if job.idempotence is wv.Idempotence.SAMPLE
        else ""
    )
    job.reporter.stage(f"idempotence check{of}: {', '.join(hosts)}")
    job.journal.begin(Step(Stage.IDEMPOTENCE), hosts=hosts, mode=job.idempotence.value)
    folder = job.run_dir / "idempotence"
    loaded = job.prepared.loaded
    result = deploy_push(
        job.prepared.loaded.content,
        job.prepared.loaded.inventory.path,
        job.prepared.rendered,
        folder,
        hosts=hosts,
        check=True,
        secrets=job.secrets,
        accelerate=job.accelerate,
        then=job.prepared.loaded.change.playbook,
        variables=job.prepared.loaded.change.variables,
        placement=push_placement(loaded.estate, loaded.inventory, hosts),
    )
    wv.scrub(folder, job.secrets)
    found = [Finding(c.host, c.task) for c in result.changes]
    found += [Finding(h, f"not checked: {why}") for h, why in result.failures.items()]
    findings = tuple(dict.fromkeys(found))
    job.journal.done(Step(Stage.IDEMPOTENCE), findings=[asdict(f) for f in findings])
    trail.record(
        job.root,
        "idempotence.checked",
        outcome="findings" if findings else "ok",
        change=job.change_id,
        digest=job.prepared.digest,
        details={
            "hosts": hosts,
            "mode": job.idempotence.value,
            "touched": len(run.touched),
            "findings": [asdict(f) for f in findings],
        },
    )
    return findings


def back(run: Run, reason: str) -> Outcome:
    """Roll back every host touched so far, verify them, and finish."""
    job = run.job
    hosts = list(run.touched)
    job.journal.done(Step(Stage.DECISION), rollback=True, reason=reason, hosts=hosts)
    job.reporter.stage(f"rolling back {', '.join(hosts) or 'nothing'}: {reason}")
    strategy = job.prepared.loaded.change.rollback
    playbook = strategy.playbook if strategy.strategy == "playbook" and strategy.playbook else ""
    if hosts:
        step = wv.push_and_verify(
            job,
            Step(Stage.ROLLBACK),
            job.restore.rendered,
            hosts,
            threshold=len(hosts),
            playbook=playbook,
            restoring=not playbook,
        )
    else:
        step = wv.WaveResult(Step(Stage.ROLLBACK), (), {}, (), (), ())
    ok = not step.bad and set(step.verified) == set(hosts)
    # The rollback is judged by the same analysis: a service still failing after it is a
    # failed rollback. Inconclusive is not: going back was already the safe direction.
    verdict = judged(run, Step(Stage.ROLLBACK), step.verified) if ok else None
    if verdict is not None and verdict.verdict is Verdict.FAILED:
        ok = False
        reason = f"{reason}; after the rollback, {verdict.summary()}"
    trail.record(
        job.root,
        "rollback.finished",
        outcome="ok" if ok else "failed",
        change=job.change_id,
        digest=job.prepared.digest,
        details={
            "strategy": strategy.strategy,
            "hosts": hosts,
            "failed": step.failed,
            "unreachable": list(step.unreachable),
            "verified": list(step.verified),
            "reason": reason,
        },
    )
    return _finish(run, ROLLED_BACK if ok else ROLLBACK_FAILED, rollback=step, reason=reason)


def _finish(
    run: Run,
    outcome: str,
    *,
    rollback: wv.WaveResult | None = None,
    findings: tuple[Finding, ...] = (),
    reason: str = "",
) -> Outcome:
    job = run.job
    if outcome != ROLLBACK_FAILED:
        _notify(run, "completed" if outcome == APPLIED else "rolled_back")
    kept = _release(run) if outcome != ROLLBACK_FAILED else tuple(sorted(run.held))
    job.journal.done(Step(Stage.END), outcome=outcome, locks_kept=list(kept))
    result = Outcome(
        change=job.change_id,
        digest=job.prepared.digest,
        run=job.journal.run,
        kind=run.kind,
        outcome=outcome,
        steps=tuple(run.steps),
        rollback=rollback,
        findings=findings,
        emergency=run.emergency,
        locks_kept=tuple(locks.name_of(r) for r in kept),
        reason=reason,
        analysis=tuple(run.analyses),
    )
    trail.record(
        job.root,
        f"{run.kind}.finished",
        outcome=outcome,
        change=job.change_id,
        digest=job.prepared.digest,
        details={
            "run": job.journal.run,
            "hosts": list(run.touched),
            "reason": reason,
            "findings": len(findings),
            "locks_kept": list(result.locks_kept),
        },
    )
    _anchor(run)
    return result


def _anchor(run: Run) -> None:
    """Anchor the audit log on the lock remote, so the run's record outlives this machine's
    copy of it. Best effort: the change is done either way; `audit anchor` can be re-run."""
    try:
        anchored = anchor.anchor(run.job.root, run.store.remote)
    except GcmsError as exc:
        run.job.reporter.stage(f"warning: audit log not anchored: {exc.message}")
        return
    run.job.reporter.stage(
        f"audit log anchored on {run.store.remote} up to entry {anchored.anchored_seq}"
    )


def _release(run: Run) -> tuple[str, ...]:
    run.job.journal.begin(Step(Stage.UNLOCK), refs=run.held)
    try:
        lost = run.store.release(run.held)
    except GcmsError as exc:
        run.job.journal.failed(Step(Stage.UNLOCK), reason=exc.message)
        trail.record(
            run.job.root,
            "lock.release_failed",
            outcome="failed",
            change=run.job.change_id,
            details={"reason": exc.message},
        )
        return tuple(sorted(run.held))
    run.job.journal.done(Step(Stage.UNLOCK), lost=list(lost))
    return ()


def _analysis_plan(job: wv.Job) -> dict[str, Any]:
    judge = job.judge
    if judge is None or not judge.active:
        return {"active": False, "reason": judge.off_reason if judge else "not asked"}
    return {
        "active": True,
        "prometheus": judge.endpoint.url if judge.endpoint else "",
        "bake": judge.spec.bake,
        "checks": [c.name for c in judge.spec.checks],
        "inconclusive": judge.inconclusive.value,
    }


def start(run: Run, kind: str, plan: Sequence[wv.Wave], **data: Any) -> None:
    job = run.job
    change = job.prepared.loaded.change
    job.journal.begin(
        Step(Stage.RUN),
        kind=kind,
        digest=job.prepared.digest,
        base=job.restore.base,
        waves=[list(w.hosts) for w in plan],
        canary=bool(plan and plan[0].canary),
        threshold=run.threshold,
        strategy=change.rollback.strategy,
        pid=os.getpid(),
        analysis=_analysis_plan(job),
        **data,
    )
    trail.record(
        job.root,
        f"{kind}.started",
        change=change.id,
        digest=job.prepared.digest,
        details={"run": job.journal.run, "waves": [list(w.hosts) for w in plan], **data},
    )
