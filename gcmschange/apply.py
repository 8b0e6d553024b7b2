"""Apply a change: from an approved plan to verified hosts, or back to where they were.

    validate -> prepare (render + digest) -> gate -> window/freeze -> lock (every system or
    none) -> journal -> notices "started" -> waves (push, verify, count) -> idempotence
    -> notices "completed" | rollback + verify + notices "rolled_back" -> release the lock

Every refusal happens before the lock, so before any host is touched. The journal is
written before each step; `resume` reads it after a crash and either continues (when the
change was healthy) or rolls back what was touched. A failed rollback keeps the lock: the
systems stay closed to other changes until a person has looked.
"""

from __future__ import annotations

import fcntl
import os
import secrets as random
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gcmschange import (
    approvals,
    audit,
    gitrepo,
    journal,
    locks,
    notices,
    pipeline,
    runner,
    verify,
)
from gcmschange import validate as validation
from gcmschange import waves as wv
from gcmschange import window as windows
from gcmschange.deploy import push as deploy_push
from gcmschange.errors import (
    CancelledError,
    ExitCode,
    GcmsError,
    InvalidInputError,
    LockHeldError,
    ValidationError,
)
from gcmschange.estate import load_estate, load_inventory
from gcmschange.paths import change_dir
from gcmschange.render import RenderedSet, render_hosts
from gcmschange.secrets import secret_values

# What rendering the previous configuration needs from the base revision (never changes/:
# change files may hold secret values, and nothing here needs them).
RESTORE_PATHS = ("estate.yml", "inventories", "templates")
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
    steps: tuple[wv.Step, ...]
    rollback: wv.Step | None = None
    findings: tuple[Finding, ...] = ()  # idempotence: what a second run would still change
    emergency: bool = False
    locks_kept: tuple[str, ...] = ()
    reason: str = ""  # why it was rolled back

    @property
    def exit_code(self) -> ExitCode:
        if self.outcome == ROLLBACK_FAILED:
            return ExitCode.ROLLBACK_FAILED
        if self.outcome == ROLLED_BACK and self.kind != "rollback":
            return ExitCode.ROLLED_BACK
        return ExitCode.OK

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": int(self.exit_code), "ok": self.outcome == APPLIED}


class InterruptedRunError(GcmsError):
    """The change has an unfinished run: resume it or roll it back first."""


def _run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{random.token_hex(2)}"


@contextmanager
def exclusive(root: Path, change: str) -> Iterator[None]:
    """One process at a time works on a change on this machine (the kernel drops it on kill)."""
    path = change_dir(root, change) / "run.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            raise LockHeldError(
                f"{change} is being worked on by another process (pid {pid})"
            ) from exc
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_running(root: Path, change: str) -> bool:
    try:
        with exclusive(root, change):
            return False
    except LockHeldError:
        return True


def validated(root: Path, ref: str, now: datetime | None = None) -> pipeline.Prepared:
    report = validation.validate(root, [ref], now=now, clock=False)
    validation.record_audit(root, report)
    if not report.ok:
        errors = tuple(p for p in report.all_problems() if p.severity == "error")
        raise ValidationError(f"{ref}: validation failed ({len(errors)} problem(s))", errors)
    return pipeline.prepare(root, ref)


def restore_set(root: Path, loaded: pipeline.Loaded, base: str) -> tuple[RenderedSet, str]:
    """The targets' configuration as the estate at `base` renders it, without the change."""
    sha = gitrepo.resolve_commit(root, base)
    if sha is None:
        raise InvalidInputError(f"base revision {base!r}: no such commit in {root}")
    env = loaded.change.environment
    with tempfile.TemporaryDirectory(prefix="gcms-base-") as tmp:
        tree = Path(tmp)
        gitrepo.export_tree(root, sha, tree, RESTORE_PATHS)
        hosts_file = tree / "inventories" / env / "hosts.yml"
        if not hosts_file.exists():  # generated inventories (the lab's) are not committed
            hosts_file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(loaded.inventory.path, hosts_file)
        estate, inventory = load_estate(tree), load_inventory(tree, env)
        names = [h.name for h in loaded.targets if h.name in inventory.hosts]
        rendered = render_hosts(estate, inventory, [inventory.hosts[n] for n in names], {})
    return RenderedSet(rendered.environment, rendered.files), sha


def _job(
    prepared: pipeline.Prepared,
    restore: RenderedSet,
    base: str,
    reporter: wv.Reporter | None,
    accelerate: bool,
) -> wv.Job:
    loaded = prepared.loaded
    change = loaded.change
    run = _run_id()
    secret = secret_values(loaded.root, change)
    return wv.Job(
        prepared=prepared,
        run_dir=change_dir(loaded.root, change.id) / f"run-{run}",
        journal=journal.Journal(journal.path_of(loaded.root, change.id), run, secret),
        secrets=secret,
        restore=restore,
        base=base,
        ssh_config=verify.ssh_config_of(loaded.inventory),
        reporter=reporter or wv.Silent(),
        accelerate=accelerate,
    )


def _lock(job: wv.Job, store: locks.Store, *, adopt: bool) -> dict[str, str]:
    change = job.prepared.loaded.change
    refs = locks.refs_for(change.environment, change.systems)
    job.journal.begin("lock", refs=list(refs))
    try:
        holder = locks.new_holder(change.id)
        held = store.adopt(refs, holder) if adopt else store.acquire(refs, holder)
    except GcmsError as exc:
        job.journal.failed("lock", reason=exc.message)
        if not adopt:
            job.journal.done("end", outcome="refused")
        audit.record(
            job.root,
            "lock.refused",
            outcome="refused",
            change=change.id,
            details={"locks": [locks.name_of(r) for r in refs], "reason": exc.message},
        )
        raise
    job.journal.done("lock", refs=held)
    audit.record(
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
    steps: list[wv.Step] = field(default_factory=list)
    notified: set[str] = field(default_factory=set)


def _guarded(run: Run, body: Callable[[Run], Outcome]) -> Outcome:
    """Run `body`; if anything escapes, journal the interruption and keep the lock."""
    try:
        return body(run)
    except BaseException as exc:
        why = exc.message if isinstance(exc, GcmsError) else f"{type(exc).__name__}: {exc}"
        run.job.journal.failed("interrupted", reason=why)
        audit.record(
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
    step = f"notify-{phase}"
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


def _record_step(run: Run, step: wv.Step) -> None:
    run.steps.append(step)
    audit.record(
        run.job.root,
        "wave.finished",
        outcome="failed" if step.bad else "ok",
        change=run.job.change_id,
        digest=run.job.prepared.digest,
        details={
            "step": step.name,
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
            run.job, f"wave-{wave.number}", rendered, wave.hosts, threshold=run.threshold
        )
        _record_step(run, step)
        if wv.exceeded(step.bad, run.threshold):
            why = f"wave {wave.number}: {len(step.bad)} host(s) failed " + (
                f"(threshold {run.threshold}): "
                + "; ".join(f"{h}: {step.failed.get(h, 'unreachable')}" for h in step.bad)
            )
            return back(run, why)
    findings = _idempotence(run)
    return _finish(run, APPLIED, findings=findings)


def _idempotence(run: Run) -> tuple[Finding, ...]:
    """A check-mode run of what was applied must change nothing; anything else is a finding."""
    job = run.job
    hosts = list(run.touched)
    job.reporter.stage(f"idempotence check: {', '.join(hosts)}")
    job.journal.begin("idempotence", hosts=hosts)
    folder = job.run_dir / "idempotence"
    result = deploy_push(
        job.root,
        job.prepared.loaded.inventory.path,
        job.prepared.rendered,
        folder,
        hosts=hosts,
        check=True,
        secrets=job.secrets,
        accelerate=job.accelerate,
    )
    wv.scrub(folder, job.secrets)
    found = [Finding(c.host, c.task) for c in result.changes]
    found += [Finding(h, f"not checked: {why}") for h, why in result.failures.items()]
    findings = tuple(dict.fromkeys(found))
    job.journal.done("idempotence", findings=[asdict(f) for f in findings])
    audit.record(
        job.root,
        "idempotence.checked",
        outcome="findings" if findings else "ok",
        change=job.change_id,
        digest=job.prepared.digest,
        details={"hosts": hosts, "findings": [asdict(f) for f in findings]},
    )
    return findings


def back(run: Run, reason: str) -> Outcome:
    """Roll back every host touched so far, verify them, and finish."""
    job = run.job
    hosts = list(run.touched)
    job.journal.done("decision", rollback=True, reason=reason, hosts=hosts)
    job.reporter.stage(f"rolling back {', '.join(hosts) or 'nothing'}: {reason}")
    strategy = job.prepared.loaded.change.rollback
    playbook = strategy.playbook if strategy.strategy == "playbook" and strategy.playbook else ""
    if hosts:
        step = wv.push_and_verify(
            job, "rollback", job.restore, hosts, threshold=len(hosts), playbook=playbook
        )
    else:
        step = wv.Step("rollback", (), {}, (), (), ())
    ok = not step.bad and set(step.verified) == set(hosts)
    audit.record(
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
    rollback: wv.Step | None = None,
    findings: tuple[Finding, ...] = (),
    reason: str = "",
) -> Outcome:
    job = run.job
    if outcome != ROLLBACK_FAILED:
        _notify(run, "completed" if outcome == APPLIED else "rolled_back")
    kept = _release(run) if outcome != ROLLBACK_FAILED else tuple(sorted(run.held))
    job.journal.done("end", outcome=outcome, locks_kept=list(kept))
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
    )
    audit.record(
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
    return result


def _release(run: Run) -> tuple[str, ...]:
    run.job.journal.begin("unlock", refs=run.held)
    try:
        lost = run.store.release(run.held)
    except GcmsError as exc:
        run.job.journal.failed("unlock", reason=exc.message)
        audit.record(
            run.job.root,
            "lock.release_failed",
            outcome="failed",
            change=run.job.change_id,
            details={"reason": exc.message},
        )
        return tuple(sorted(run.held))
    run.job.journal.done("unlock", lost=list(lost))
    return ()


# --- the entry points: apply, resume, rollback, verify, status ---


def _open_episode(root: Path, change: str) -> journal.Episode:
    return journal.episode(journal.read(journal.path_of(root, change)))


def _refuse_if_interrupted(root: Path, change: str) -> None:
    ep = _open_episode(root, change)
    if ep.entries and ep.finished is None:
        last = ep.last.step if ep.last else "?"
        raise InterruptedRunError(
            f"{change}: an earlier run was interrupted (last journal step: {last}); run "
            f"`gcmschange resume {change}` or `gcmschange rollback {change}` first"
        )


def _start(run: Run, kind: str, plan: Sequence[wv.Wave], **data: Any) -> None:
    job = run.job
    change = job.prepared.loaded.change
    job.journal.begin(
        "run",
        kind=kind,
        digest=job.prepared.digest,
        base=job.base,
        waves=[list(w.hosts) for w in plan],
        canary=bool(plan and plan[0].canary),
        threshold=run.threshold,
        strategy=change.rollback.strategy,
        pid=os.getpid(),
        **data,
    )
    audit.record(
        job.root,
        f"{kind}.started",
        change=change.id,
        digest=job.prepared.digest,
        details={"run": job.journal.run, "waves": [list(w.hosts) for w in plan], **data},
    )


@dataclass(frozen=True)
class Options:
    reporter: wv.Reporter | None = None
    remote: str = locks.DEFAULT_REMOTE  # the lock store
    base: str | None = None  # the revision whose estate is the previous config (HEAD)
    accelerate: bool = False
    now: datetime | None = None  # the clock, for the gate and the window


def apply(root: Path, ref: str, options: Options | None = None) -> Outcome:
    """Apply an approved change in waves, or refuse before touching any host."""
    opts = options or Options()
    prepared = validated(root, ref, opts.now)
    change = prepared.loaded.change
    approvals.require_gate(root, change, prepared.digest, opts.now)
    checked = windows.require(root, change, prepared.digest, opts.now)
    plan = wv.plan(prepared.loaded.targets, change.rollout)
    restore, base_sha = restore_set(root, prepared.loaded, opts.base or "HEAD")
    with exclusive(root, change.id):
        _refuse_if_interrupted(root, change.id)
        job = _job(prepared, restore, base_sha, opts.reporter, opts.accelerate)
        threshold = change.rollout.failure_threshold
        run = Run(job, locks.Store(root, opts.remote), {}, "apply", threshold, len(plan))
        run.emergency = checked.emergency_override
        _start(run, "apply", plan, emergency=checked.emergency_override)
        run.held = _lock(job, run.store, adopt=False)
        return _guarded(run, lambda r: forward(r, plan))


def _plan_of(start: dict[str, Any]) -> tuple[wv.Wave, ...]:
    hosts = [tuple(w) for w in start.get("waves", [])]
    canary = bool(start.get("canary"))
    return tuple(wv.Wave(i + 1, hs, canary=canary and i == 0) for i, hs in enumerate(hosts))


def _reopen(root: Path, ref: str, kind: str, opts: Options) -> tuple[Run, journal.Episode]:
    """A run that carries on the journal's last episode, with the lock it held."""
    prepared = pipeline.prepare(root, ref)
    change = prepared.loaded.change
    ep = _open_episode(root, change.id)
    revision = opts.base or str(ep.start.get("base") or "HEAD")
    restore, base_sha = restore_set(root, prepared.loaded, revision)
    job = _job(prepared, restore, base_sha, opts.reporter, opts.accelerate)
    threshold = int(ep.start.get("threshold", change.rollout.failure_threshold))
    plan = _plan_of(ep.start) or wv.plan(prepared.loaded.targets, change.rollout)
    run = Run(job, locks.Store(root, opts.remote), {}, kind, threshold, len(plan))
    run.emergency = bool(ep.start.get("emergency"))
    run.touched = list(ep.touched)
    if kind == "rollback" and not run.touched:
        run.touched = [h.name for h in prepared.loaded.targets]
    run.notified = {
        e.step for e in ep.entries if e.step.startswith("notify-") and e.status == journal.DONE
    }
    resumes = sorted({e.run for e in ep.entries})
    stopped = runner.stop_leftovers(change_dir(root, change.id))
    if stopped:
        job.reporter.stage(f"stopped the playbook(s) the interrupted run left: pid {stopped}")
    _start(run, kind, plan, resumes=resumes, hosts=list(run.touched), stopped=list(stopped))
    run.held = _lock(job, run.store, adopt=True)
    return run, ep


def resume(root: Path, ref: str, options: Options | None = None) -> Outcome:
    """Finish an interrupted run: verify what was touched, then continue or roll back."""
    opts = options or Options()
    change_id = pipeline.load(root, ref).change.id
    with exclusive(root, change_id):
        ep = _open_episode(root, change_id)
        if not ep.entries or ep.finished is not None:
            ended = ep.finished.data.get("outcome") if ep.finished else "never started"
            raise InvalidInputError(f"{change_id}: nothing to resume (last run: {ended})")
        run, ep = _reopen(root, ref, "resume", opts)
        if ep.rollback_began or ep.failed_wave or ep.start.get("kind") == "rollback":
            return _guarded(run, lambda r: back(r, "resuming an interrupted rollback"))
        if str(ep.start.get("digest", "")) != run.job.prepared.digest:
            why = "the change was edited since it was interrupted (digest differs)"
            return _guarded(run, lambda r: back(r, why))
        return _guarded(run, lambda r: _continue(r, ep))


def _recheck(run: Run, cut: Sequence[wv.Wave]) -> wv.Step:
    """Finish the push a crash cut short, and verify every host touched before it."""
    hosts = [h for w in cut for h in w.hosts]
    run.job.reporter.stage(f"resume: checking {', '.join(run.touched)}")
    if hosts:
        return wv.push_and_verify(
            run.job,
            "resume",
            run.job.prepared.rendered,
            hosts,
            threshold=run.threshold,
            also_verify=run.touched,
        )
    checked = wv.check(run.job, "resume", run.touched)
    failed = {h: "verification failed: " + ", ".join(t) for h, t in checked.failed.items()}
    verified = tuple(h for h in run.touched if h not in checked.failed)
    return wv.Step("resume", tuple(run.touched), failed, (), (), verified)


def _continue(run: Run, ep: journal.Episode) -> Outcome:
    plan = _plan_of(ep.start)
    started = [w for w in plan if ep.began(f"wave-{w.number}-push")]
    if run.touched:
        cut = [w for w in started if ep.closed(f"wave-{w.number}-push") is None]
        step = _recheck(run, cut)
        _record_step(run, step)
        if wv.exceeded(step.bad, run.threshold):
            return back(run, f"resume: {', '.join(step.bad)} failed the check after the crash")
    return forward(run, [w for w in plan if w not in started])


def rollback(root: Path, ref: str, options: Options | None = None) -> Outcome:
    """Roll the change back on the hosts its last run touched (every target if none recorded)."""
    opts = options or Options()
    change_id = pipeline.load(root, ref).change.id
    with exclusive(root, change_id):
        run, _ep = _reopen(root, ref, "rollback", opts)
        return _guarded(run, lambda r: back(r, "rollback requested"))


def verify_change(root: Path, ref: str) -> verify.VerifyResult:
    """The change's verification tests against every target host, recorded."""
    loaded = pipeline.load(root, ref)
    hosts = [h.name for h in loaded.targets]
    by_test = verify.scope(loaded.estate, loaded.inventory, loaded.change.verification, hosts)
    out = change_dir(root, loaded.change.id) / f"verify-{_run_id()}"
    result = verify.run(root, by_test, verify.ssh_config_of(loaded.inventory), out)
    wv.scrub(out, secret_values(root, loaded.change))
    audit.record(
        root,
        "verified",
        outcome="ok" if result.ok else "failed",
        change=loaded.change.id,
        details={
            "hosts": hosts,
            "failed": {h: list(t) for h, t in result.failed.items()},
            "junit": str(out / "junit.xml"),
        },
    )
    return result


@dataclass(frozen=True)
class Status:
    change: str
    state: str  # never run, running, interrupted, applied, rolled_back, rollback_failed, refused
    last_step: str
    hosts: dict[str, str]
    runs: tuple[str, ...]
    locks: dict[str, str]


def status(root: Path, change: str) -> Status:
    ep = _open_episode(root, change)
    if not ep.entries:
        return Status(change, "never run", "", {}, (), {})
    last = ep.last
    if ep.finished is not None:
        state = str(ep.finished.data.get("outcome", "finished"))
    else:
        state = "running" if is_running(root, change) else "interrupted"
    step = f"{last.step} ({last.status})" if last else ""
    runs = tuple(dict.fromkeys(e.run for e in ep.entries))
    return Status(change, state, step, journal.host_states(ep), runs, ep.locks)
