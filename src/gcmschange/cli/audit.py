"""`gcmschange audit verify|show`: check the hash chain, and read it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from gcmschange.audit import anchor as audit_anchor
from gcmschange.audit import trail
from gcmschange.cli import app
from gcmschange.errors import GcmsError
from gcmschange.paths import audit_log


class AuditBrokenError(GcmsError):
    """The chain failed verification; the message names the first bad entry."""


@app.root.group("audit", help=app.VERBS["audit"])
def audit_group() -> None:
    """Verify and show the hash-chained audit log."""


@audit_group.command("verify")
@click.option(
    "--remote",
    default=None,
    help="Also check the log against its anchors on this git remote (see `audit anchor`).",
)
@click.option(
    "--require-anchor", is_flag=True, help="With --remote: fail when the log was never anchored."
)
@app.output_option
def verify(remote: str | None, require_anchor: bool, verb_output: str | None) -> None:
    """Check every entry's hash, sequence and link, and the recorded head (exit 1 if bad)."""
    ctx = app.get_context(verb_output)
    report = trail.verify_chain(ctx.repo)
    if not report.ok:
        raise AuditBrokenError(f"audit log {audit_log(ctx.repo)}: {report}")
    payload: dict[str, Any] = {"ok": True, **asdict(report)}
    text = str(report)
    if remote is not None:
        anchored = audit_anchor.verify(ctx.repo, remote)
        if not anchored.ok:
            raise AuditBrokenError(f"audit log {audit_log(ctx.repo)} vs {remote}: {anchored}")
        if require_anchor and not anchored.anchors:
            raise AuditBrokenError(f"audit log {audit_log(ctx.repo)}: {anchored}")
        payload["anchor"] = asdict(anchored)
        text += f"\n{anchored}"
    app.emit(ctx, payload, text)


@audit_group.command("anchor")
@app.remote_option
@app.output_option
def anchor(remote: str, verb_output: str | None) -> None:
    """Anchor the log, head and content, on a git remote.

    The ref is refs/gcmschange/audit/<log id>. Each anchor commit names (seq, hash) of the
    last entry, holds the log, and sits on top of the previous anchor of the same log; the
    push is leased. `audit verify --remote` then catches a log
    rewritten together with its head file. Protect the refs on the remote (no force push).
    """
    ctx = app.get_context(verb_output)
    report = audit_anchor.anchor(ctx.repo, remote)
    text = (
        f"anchored entry {report.anchored_seq} of log {report.log_id} on {remote} ({report.ref})"
        if report.log_id
        else "the audit log is empty: nothing to anchor"
    )
    app.emit(ctx, {"ok": True, **asdict(report)}, text)


@audit_group.command("show")
@click.option("--change", "change", default=None, help="Only the events of this change.")
@click.option("--event", "event", default=None, help="Only events whose name starts with this.")
@app.output_option
def show(change: str | None, event: str | None, verb_output: str | None) -> None:
    """List the events of the log, oldest first."""
    ctx = app.get_context(verb_output)
    events = trail.select(trail.read_events(ctx.repo), change=change, event=event)
    lines = [
        f"{e.seq:>5}  {e.time}  {e.actor:<12} {e.event:<24} {e.outcome:<9} {e.change or '-'}"
        for e in events
    ]
    payload = {"ok": True, "events": [trail.as_dict(e) for e in events]}
    app.emit(ctx, payload, "\n".join(lines) or "no events")
