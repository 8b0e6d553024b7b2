"""`apply`, `run`, `rollback`, `resume`, `status`, `locks`, `unlock`, `verify`.

Progress goes to stderr (text mode); the result goes to stdout, as JSON with `--output json`.
The exit code says what happened: 0 applied, 4 rolled back and verified, 5 rollback failed
(with a red banner naming the hosts), 1 refused before any host was touched.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from gcmschange.apply import locks, rollout
from gcmschange.apply import verbs as engine
from gcmschange.apply.waves import Idempotence
from gcmschange.cli import app
from gcmschange.errors import ExitCode, GcmsError, UnreachableError
from gcmschange.execution.nodes import NodeHealth
from gcmschange.textsafe import terminal


class VerificationFailedError(GcmsError):
    """The change's verification tests failed on at least one host."""


class TextProgress:
    """Live progress on stderr: the wave and its hosts, then each host's tasks."""

    def __init__(self) -> None:
        self.console = Console(stderr=True, highlight=False)

    def stage(self, text: str) -> None:
        self.console.print(f"[bold cyan]==>[/] {text}")

    # A task starting, and the diff event beside its result, are not results: ansible-playbook
    # shows neither, and on 20 hosts they tripled the lines a release manager scrolls through.
    QUIET = frozenset({"start", "file_diff"})

    def task(self, host: str, task: str, status: str) -> None:
        if status in self.QUIET:
            return
        colour = {
            "ok": "green",
            "changed": "yellow",
            "failed": "red",
            "unreachable": "red",
            "skipped": "dim",
        }
        # One line per result however long the task's name: `grep HOST` must find all of it.
        self.console.print(
            f"    {escape(terminal(host)):<16} [{colour.get(status, 'white')}]{status:<11}[/] "
            f"{escape(terminal(task))}",
            soft_wrap=True,
        )


def _options(ctx: app.Context, flags: app.ApplyFlags) -> engine.Options:
    reporter = TextProgress() if ctx.output == "text" else None
    return engine.Options(
        reporter=reporter,
        remote=flags.remote,
        base=flags.base,
        accelerate=flags.accelerate,
        trust_ref=flags.trust_ref,
        idempotence=Idempotence(flags.idempotence),
    )


def _describe(result: rollout.Outcome) -> str:
    lines = [f"{result.change}: {result.outcome} ({result.kind}, run {result.run})"]
    for step in result.steps:
        bad = ", ".join(f"{h} ({step.failed.get(h, 'unreachable')})" for h in step.bad)
        lines.append(f"  {step.name}: {', '.join(step.hosts)}" + (f"; FAILED {bad}" if bad else ""))
    if result.rollback is not None:
        lines.append(f"  rollback: {', '.join(result.rollback.hosts) or 'nothing to roll back'}")
        lines.append(f"    verified: {', '.join(result.rollback.verified) or 'none'}")
    for finding in result.findings:
        lines.append(f"  idempotence finding: {finding.host}: {finding.task}")
    if result.reason:
        lines.append(f"  reason: {result.reason}")
    if result.locks_kept:
        lines.append(f"  locks kept: {', '.join(result.locks_kept)}")
    return "\n".join(lines)


def _banner(result: rollout.Outcome) -> None:
    """ROLLBACK FAILED must not be missed: a red panel on stderr, whatever the output mode."""
    rb = result.rollback
    broken = [f"{h}: {rb.failed.get(h, 'unreachable')}" for h in rb.bad] if rb else []
    unverified = [h for h in (rb.hosts if rb else ()) if h not in (rb.verified if rb else ())]
    body = "\n".join(
        [
            f"{result.change}: ROLLBACK FAILED - the fleet is NOT in a verified state.",
            *(f"  {line}" for line in broken or unverified),
            f"Locks kept: {', '.join(result.locks_kept) or 'none'}.",
            f"Next: fix the hosts, then `gcmschange rollback {result.change}`.",
        ]
    )
    Console(stderr=True).print(Panel(body, title="ROLLBACK FAILED", style="bold white on red"))


def _report(ctx: app.Context, result: rollout.Outcome) -> int:
    if result.exit_code == ExitCode.ROLLBACK_FAILED:
        _banner(result)
    app.emit(ctx, result.as_dict(), _describe(result))
    return int(result.exit_code)


@app.root.command("apply", help=app.VERBS["apply"])
@click.argument("change")
@app.apply_options()
def apply_cmd(change: str, flags: app.ApplyFlags) -> int:
    ctx = app.get_context(flags.output)
    return _report(ctx, engine.apply(ctx.repo, change, _options(ctx, flags)))


@app.root.command("run", help=app.VERBS["run"])
@click.argument("change")
@app.apply_options()
def run_cmd(change: str, flags: app.ApplyFlags) -> int:
    from gcmschange.plan import check

    ctx = app.get_context(flags.output)
    opts = _options(ctx, flags)
    if opts.reporter:
        opts.reporter.stage(f"plan {change} (check + diff)")
    planned = check.run_plan(
        ctx.repo,
        change,
        accelerate=flags.accelerate,
        progress=opts.reporter.task if opts.reporter else None,
        trust_ref=flags.trust_ref,
    )
    if not planned.complete:
        raise UnreachableError(
            f"{change}: the plan is incomplete (some hosts unreachable); nothing was applied"
        )
    result = engine.apply(ctx.repo, change, opts)
    if result.exit_code == ExitCode.OK:
        if opts.reporter:
            opts.reporter.stage(f"verify {change} on every target")
        checked = engine.verify_change(ctx.repo, change)
        if not checked.ok:
            raise VerificationFailedError(
                f"{change}: applied, but the final verification failed on "
                + ", ".join(checked.failed_hosts)
            )
    return _report(ctx, result)


@app.root.command("rollback", help=app.VERBS["rollback"])
@click.argument("change")
@app.apply_options(idempotence=False)
def rollback_cmd(change: str, flags: app.ApplyFlags) -> int:
    ctx = app.get_context(flags.output)
    return _report(ctx, engine.rollback(ctx.repo, change, _options(ctx, flags)))


@app.root.command("resume", help=app.VERBS["resume"])
@click.argument("change")
@app.apply_options(base=False)
def resume_cmd(change: str, flags: app.ApplyFlags) -> int:
    ctx = app.get_context(flags.output)
    return _report(ctx, engine.resume(ctx.repo, change, _options(ctx, flags)))


@app.root.command("status", help=app.VERBS["status"])
@click.argument("change")
@app.remote_option
@app.output_option
def status_cmd(change: str, remote: str, verb_output: str | None) -> None:
    ctx = app.get_context(verb_output)
    found = engine.status(ctx.repo, change, remote)
    lines = [
        f"{found.change}: {found.state}"
        + (f" (last step: {found.last_step})" if found.last_step else "")
    ]
    lines += [f"  {host:<20} {state}" for host, state in sorted(found.hosts.items())]
    for judged in found.analysis:
        last = judged.get("last")
        seen = f", last {last['check']} = {last['value']} {last['verdict']}" if last else ""
        lines.append(f"  analysis {judged['step']}: {judged['state']}{seen}")
    if not found.locks_known:
        lines.append(f"  locks: unknown ({remote} could not be reached)")
    elif found.locks:
        lines.append(f"  locks held: {', '.join(locks.name_of(r) for r in found.locks)}")
    health = _node_health(ctx.repo, change)
    for node in health:
        said = f"ansible-runner {node.version}" if node.reachable else f"UNREACHABLE: {node.detail}"
        lines.append(f"  execution node {node.name}: {said}")
    payload = {"ok": True, **asdict(found), "exec_nodes": [asdict(h) for h in health]}
    app.emit(ctx, payload, "\n".join(lines))


def _node_health(root: Path, change: str) -> tuple[NodeHealth, ...]:
    """The execution nodes of the change's environment, asked now (none when the change
    cannot be read: status still shows what the journal says)."""
    from gcmschange.apply.push import node_health
    from gcmschange.validate.load import load_change

    try:
        environment = load_change(root, change).environment
    except GcmsError:
        return ()
    return node_health(root, environment)


@app.root.command("locks", help=app.VERBS["locks"])
@app.remote_option
@app.output_option
def locks_cmd(remote: str, verb_output: str | None) -> None:
    ctx = app.get_context(verb_output)
    held = locks.Store(ctx.repo, remote).list()
    rows = [f"{lk.name:<28} {lk.holder.describe() if lk.holder else lk.sha[:12]}" for lk in held]
    payload: dict[str, Any] = {"ok": True, "locks": [asdict(lk) for lk in held]}
    app.emit(ctx, payload, "\n".join(rows) or "no locks held")


@app.root.command("unlock", help=app.VERBS["unlock"])
@click.argument("lock")
@click.option("--reason", required=True, help="Why the lock is forced (recorded in the audit).")
@app.remote_option
@app.output_option
def unlock_cmd(lock: str, reason: str, remote: str, verb_output: str | None) -> None:
    ctx = app.get_context(verb_output)
    gone = locks.Store(ctx.repo, remote).force_unlock(lock, reason)
    who = gone.holder.describe() if gone.holder else gone.sha[:12]
    app.emit(ctx, {"ok": True, "released": asdict(gone)}, f"released {gone.name} (was {who})")


@app.root.command("verify", help=app.VERBS["verify"])
@click.argument("change")
@app.output_option
def verify_cmd(change: str, verb_output: str | None) -> int:
    ctx = app.get_context(verb_output)
    result = engine.verify_change(ctx.repo, change)
    if result.ok:
        text = f"{change}: {result.passed} checks passed on {', '.join(result.hosts)}"
    else:
        bad = "; ".join(f"{h}: {', '.join(t)}" for h, t in result.failed.items())
        text = f"{change}: verification FAILED: {bad}"
    app.emit(ctx, {"ok": result.ok, **asdict(result)}, text)
    return int(ExitCode.OK if result.ok else ExitCode.FAILURE)
