"""Apply a change: from an approved plan to verified hosts, or back to where they were.

    validate -> prepare (render + digest) -> gate -> window/freeze -> lock (every system or
    none) -> journal -> notices "started" -> waves (push, verify, count) -> idempotence
    -> notices "completed" | rollback + verify + notices "rolled_back" -> release the lock

This module holds the entry points (`apply`, `resume`, `rollback`, `verify_change`,
`status`) and what decides between them; `rollout` holds the run itself. Every refusal
happens before the lock, so before any host is touched. The journal is written before each
step; `resume` reads it after a crash and either continues (when the change was healthy) or
rolls back what was touched. A failed rollback keeps the lock: the systems stay closed to
other changes until a person has looked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gcmschange.analysis.judge import Judge, judge_for, require_monitoring
from gcmschange.analysis.judge import health as judge_health
from gcmschange.analysis.measure import Verdict
from gcmschange.apply import journal, locks, road, rollout
from gcmschange.apply import waves as wv
from gcmschange.apply import window as windows
from gcmschange.apply.journal import Stage, Step
from gcmschange.apply.push import reached_through
from gcmschange.approvals import gate
from gcmschange.audit import trail
from gcmschange.errors import (
    GateRefusedError,
    GcmsError,
    InvalidInputError,
    LockHeldError,
    ValidationError,
)
from gcmschange.execution import runner, verifier
from gcmschange.masking import secret_values
from gcmschange.model import ChangeRequest
from gcmschange.notify.incidents import open_on
from gcmschange.paths import change_dir
from gcmschange.rules.policy import Policy, load_policy
from gcmschange.validate import run as validation
from gcmschange.validate.load import load_change


class InterruptedRunError(GcmsError):
    """The change has an unfinished run: resume it or roll it back first."""


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


def validated(root: Path, ref: str, now: datetime | None = None) -> road.Prepared:
    report = validation.validate(root, [ref], now=now, clock=False)
    validation.record_audit(root, report)
    if not report.ok:
        errors = tuple(p for p in report.all_problems() if p.severity == "error")
        raise ValidationError(f"{ref}: validation failed ({len(errors)} problem(s))", errors)
    return road.prepare(root, ref)


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


@dataclass(frozen=True)
class Options:
    reporter: wv.Reporter | None = None
    remote: str = locks.DEFAULT_REMOTE  # the lock store
    base: str | None = None  # the revision whose estate is the previous config (HEAD)
    accelerate: bool = False
    now: datetime | None = None  # the clock, for the gate and the window
    trust_ref: str | None = None  # where the rules come from (default: rules.trusted.resolve)
    idempotence: wv.Idempotence = wv.Idempotence.SAMPLE


def apply(root: Path, ref: str, options: Options | None = None) -> rollout.Outcome:
    """Apply an approved change in waves, or refuse before touching any host."""
    opts = options or Options()
    prepared = validated(root, ref, opts.now)
    change = prepared.loaded.change
    passed = gate.require_gate(
        root, change, prepared.digest, now=opts.now, trust_ref=opts.trust_ref
    )
    # The policy in force, as the gate read it: a freeze or an analysis setting is a rule,
    # and an uncommitted edit of policy.yml must not lift it.
    policy = passed.policy or load_policy(root)
    checked = windows.require(root, change, prepared.digest, opts.now, policy)
    judge = judge_for(root, prepared.loaded.content, change, policy)
    require_monitoring(judge, policy, change)
    healthy(root, change, prepared.digest, judge, opts.now)
    plan = wv.plan(prepared.loaded.targets, change.rollout)
    restore = rollout.restore_set(root, prepared.loaded, opts.base)
    with exclusive(root, change.id):
        _refuse_if_interrupted(root, change.id)
        job = _job(prepared, restore, opts, judge)
        threshold = change.rollout.failure_threshold
        run = rollout.Run(job, locks.Store(root, opts.remote), {}, "apply", threshold, len(plan))
        run.emergency = checked.emergency_override
        rollout.start(run, "apply", plan, emergency=checked.emergency_override)
        run.held = rollout.take_lock(job, run.store, adopt=False)
        return rollout.guarded(run, lambda r: rollout.forward(r, plan))


def healthy(
    root: Path, change: ChangeRequest, digest: str, judge: Judge, now: datetime | None = None
) -> None:
    """The pre-change health gate: no start while an alert fires or an incident is open on
    the change's systems.

    An emergency change may go on (it is often the cure), recorded. A Prometheus that cannot
    be asked is inconclusive, and the policy decides, as for a wave's analysis."""
    found = judge_health(judge, change.systems)
    alerts = found.alerts if found is not None and found.verdict is Verdict.FAILED else ()
    unknown = found is not None and found.verdict is Verdict.INCONCLUSIVE
    moment = gate.now_utc(now)
    incidents = open_on(root, change.systems, moment)
    if not alerts and not incidents and not unknown:
        return
    reasons = []
    if alerts:
        reasons.append(f"alerts firing on its systems: {', '.join(alerts)}")
    if incidents:
        listed = ", ".join(f"{i.id} ({', '.join(i.systems)})" for i in incidents)
        reasons.append(f"incident open on its systems: {listed}")
    if unknown and found is not None:
        reasons.append(f"system health unknown ({found.message})")
    why = "; ".join(reasons)
    firing = bool(alerts or incidents)
    details = {
        "alerts": list(alerts),
        "incidents": [i.id for i in incidents],
        "verdict": found.verdict.value if found is not None else "not measured",
        "reason": why,
    }
    if change.type == "emergency" and firing:
        trail.record(
            root, "health.emergency_override", change=change.id, digest=digest, details=details
        )
        return
    if not firing and not judge.blocks(Verdict.INCONCLUSIVE):
        trail.record(root, "health.proceeded", change=change.id, digest=digest, details=details)
        return
    trail.record(
        root, "health.refused", outcome="refused", change=change.id, digest=digest, details=details
    )
    hint = " (an emergency change may override)" if firing else ""
    raise GateRefusedError(f"{change.id}: refused: {why}{hint}")


def _plan_of(begun: dict[str, Any]) -> tuple[wv.Wave, ...]:
    hosts = [tuple(w) for w in begun.get("waves", [])]
    canary = bool(begun.get("canary"))
    return tuple(wv.Wave(i + 1, hs, canary=canary and i == 0) for i, hs in enumerate(hosts))


def _policy_in_force(root: Path, change: ChangeRequest, opts: Options) -> Policy:
    """The policy the gate would judge with; the working tree's only when no trust ref can be
    found, because going back (a rollback, a resumed rollback) must never be blocked by it."""
    try:
        moment = gate.now_utc(opts.now)
        return gate.rules_in_force(root, change.path or None, moment, opts.trust_ref).rules.policy
    except GcmsError:
        return load_policy(root)


def _job(prepared: road.Prepared, restore: wv.Restore, opts: Options, judge: Judge) -> wv.Job:
    return rollout.new_job(
        prepared,
        restore,
        opts.reporter,
        opts.accelerate,
        judge=judge,
        idempotence=opts.idempotence,
    )


def _reopen(root: Path, ref: str, kind: str, opts: Options) -> tuple[rollout.Run, journal.Episode]:
    """A run that carries on the journal's last episode, with the lock it held."""
    prepared = road.prepare(root, ref)
    change = prepared.loaded.change
    ep = _open_episode(root, change.id)
    # The base the run started from, so a resumed run goes back to where it set out.
    revision = opts.base or str(ep.start.get("base") or "") or None
    restore = rollout.restore_set(root, prepared.loaded, revision)
    judge = judge_for(root, prepared.loaded.content, change, _policy_in_force(root, change, opts))
    job = _job(prepared, restore, opts, judge)
    threshold = int(ep.start.get("threshold", change.rollout.failure_threshold))
    plan = _plan_of(ep.start) or wv.plan(prepared.loaded.targets, change.rollout)
    run = rollout.Run(job, locks.Store(root, opts.remote), {}, kind, threshold, len(plan))
    run.emergency = bool(ep.start.get("emergency"))
    run.touched = list(ep.touched)
    if kind == "rollback" and not run.touched:
        run.touched = [h.name for h in prepared.loaded.targets]
    run.notified = {
        e.step for e in ep.entries if e.step.stage is Stage.NOTIFY and e.status == journal.DONE
    }
    resumes = sorted({e.run for e in ep.entries})
    stopped = runner.stop_leftovers(change_dir(root, change.id))
    if stopped:
        job.reporter.stage(f"stopped the playbook(s) the interrupted run left: pid {stopped}")
    rollout.start(run, kind, plan, resumes=resumes, hosts=list(run.touched), stopped=list(stopped))
    run.held = rollout.take_lock(job, run.store, adopt=True)
    return run, ep


def resume(root: Path, ref: str, options: Options | None = None) -> rollout.Outcome:
    """Finish an interrupted run: verify what was touched, then continue or roll back."""
    opts = options or Options()
    change_id = load_change(root, ref).id
    with exclusive(root, change_id):
        ep = _open_episode(root, change_id)
        if not ep.entries or ep.finished is not None:
            ended = ep.finished.data.get("outcome") if ep.finished else "never started"
            raise InvalidInputError(f"{change_id}: nothing to resume (last run: {ended})")
        run, ep = _reopen(root, ref, "resume", opts)
        if ep.rollback_began or ep.failed_wave or ep.start.get("kind") == "rollback":
            return rollout.guarded(
                run, lambda r: rollout.back(r, "resuming an interrupted rollback")
            )
        if str(ep.start.get("digest", "")) != run.job.prepared.digest:
            why = "the change was edited since it was interrupted (digest differs)"
            return rollout.guarded(run, lambda r: rollout.back(r, why))
        # Going forward needs the gate as much as the first apply did: approvals may have
        # expired, or the rules changed, since the run was cut short. Going back never does.
        try:
            gate.require_gate(
                root,
                run.job.prepared.loaded.change,
                run.job.prepared.digest,
                now=opts.now,
                trust_ref=opts.trust_ref,
            )
        except GateRefusedError as exc:
            raise GateRefusedError(
                f"{exc.message}; resume goes no further (the lock is kept): "
                f"`gcmschange rollback {change_id}` undoes what the run applied"
            ) from exc
        return rollout.guarded(run, lambda r: _continue(r, ep))


def _recheck(run: rollout.Run, cut: Sequence[wv.Wave]) -> wv.WaveResult:
    """Finish the push a crash cut short, and verify every host touched before it."""
    hosts = [h for w in cut for h in w.hosts]
    run.job.reporter.stage(f"resume: checking {', '.join(run.touched)}")
    if hosts:
        return wv.push_and_verify(
            run.job,
            Step(Stage.RESUME),
            run.job.prepared.rendered,
            hosts,
            threshold=run.threshold,
            also_verify=run.touched,
        )
    checked = wv.check(run.job, Step(Stage.RESUME), run.touched, run.job.prepared.rendered)
    failed = {h: "verification failed: " + ", ".join(t) for h, t in checked.failed.items()}
    verified = tuple(h for h in run.touched if h not in checked.failed)
    return wv.WaveResult(Step(Stage.RESUME), tuple(run.touched), failed, (), (), verified)


def _continue(run: rollout.Run, ep: journal.Episode) -> rollout.Outcome:
    plan = _plan_of(ep.start)
    started = [w for w in plan if ep.began(Step.wave_pass(w.number).push)]
    if run.touched:
        cut = [w for w in started if ep.closed(Step.wave_pass(w.number).push) is None]
        step = _recheck(run, cut)
        rollout.record_step(run, step)
        if wv.exceeded(step.bad, run.threshold):
            return rollout.back(
                run, f"resume: {', '.join(step.bad)} failed the check after the crash"
            )
        why = _rejudge(run, unjudged(ep, started), step.verified)
        if why:
            return rollout.back(run, why)
    return rollout.forward(run, [w for w in plan if w not in started])


def unjudged(ep: journal.Episode, started: Sequence[wv.Wave]) -> list[wv.Wave]:
    """The started waves whose analysis never reached a verdict: the crash came before it
    or during it (a wave analysis never ran, where analysis is off, costs nothing to redo)."""
    return [w for w in started if ep.closed(Step.wave_pass(w.number).analysis) is None]


def _rejudge(run: rollout.Run, waves: Sequence[wv.Wave], verified: Sequence[str]) -> str:
    """Judge the hosts of `waves` the recheck verified by their metrics, as `forward` would
    have after their checks (issue 17): files right is not service right. Why to go back,
    or "" to go on."""
    hosts = [h for w in waves for h in w.hosts if h in verified]
    result = rollout.judged(run, Step(Stage.RESUME), hosts) if hosts else None
    judge = run.job.judge
    if result is None or judge is None or not judge.blocks(result.verdict):
        return ""
    policy = (
        f" (policy: inconclusive {judge.inconclusive.value})"
        if result.verdict is Verdict.INCONCLUSIVE
        else ""
    )
    return f"resume: {result.summary()}{policy}"


def rollback(root: Path, ref: str, options: Options | None = None) -> rollout.Outcome:
    """Roll the change back on the hosts its last run touched (every target if none recorded)."""
    opts = options or Options()
    change_id = load_change(root, ref).id
    with exclusive(root, change_id):
        run, _ep = _reopen(root, ref, "rollback", opts)
        return rollout.guarded(run, lambda r: rollout.back(r, "rollback requested"))


def verify_change(root: Path, ref: str) -> verifier.VerifyResult:
    """The change's verification tests against every target host, recorded."""
    loaded = road.load(root, ref)
    hosts = [h.name for h in loaded.targets]
    by_test = verifier.scope(loaded.estate, loaded.inventory, loaded.change.verification, hosts)
    out = change_dir(root, loaded.change.id) / f"verify-{rollout.run_id()}"
    result = verifier.run(
        loaded.content,
        by_test,
        verifier.ssh_config_of(loaded.inventory),
        out,
        via=reached_through(loaded.estate, loaded.inventory, hosts),
    )
    wv.scrub(out, secret_values(loaded.content, loaded.change))
    trail.record(
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
    locks: dict[str, str]  # held on the remote by this change (ref -> commit)
    locks_known: bool = True  # False: the remote could not be asked
    analysis: tuple[dict[str, Any], ...] = ()  # each pass's analysis: running or its verdict


def _analyses(ep: journal.Episode) -> tuple[dict[str, Any], ...]:
    """Each analysis of the last run, from the journal: running (begun, not closed) or done."""
    found: dict[str, dict[str, Any]] = {}
    for e in ep.entries:
        if e.step.action is not journal.Action.ANALYSIS:
            continue
        name = e.step.folder
        if e.status == journal.BEGIN:
            found[name] = {"step": name, "state": "running", "checks": e.data.get("checks", [])}
        else:
            measured = e.data.get("measurements") or []
            found[name] = {
                **found.get(name, {"step": name}),
                "state": str(e.data.get("verdict", e.status.value)),
                "measurements": len(measured),
                "last": measured[-1] if measured else None,
            }
    return tuple(found.values())


def held_by(root: Path, remote: str, change: str) -> dict[str, str] | None:
    """The locks the remote holds for `change` (None when it cannot be reached): the lock's
    truth is the remote, never the journal, which a crash or an edit may have left behind."""
    try:
        held = locks.Store(root, remote).list()
    except GcmsError:
        return None
    return {lk.ref: lk.sha for lk in held if lk.holder and lk.holder.change == change}


def status(root: Path, change: str, remote: str = locks.DEFAULT_REMOTE) -> Status:
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
    kept = ep.finished is None or state == "rollback_failed"
    held = held_by(root, remote, change) if kept else {}
    return Status(
        change,
        state,
        step,
        journal.host_states(ep),
        runs,
        held or {},
        held is not None,
        _analyses(ep),
    )
