"""`gcmschange audit verify|show`: check the hash chain, and read it."""

from __future__ import annotations

from dataclasses import asdict

import click

from gcmschange import audit
from gcmschange.cli import app
from gcmschange.errors import GcmsError
from gcmschange.paths import audit_log


class AuditBrokenError(GcmsError):
    """The chain failed verification; the message names the first bad entry."""


@app.root.group("audit", help=app.VERBS["audit"])
def audit_group() -> None:
    """Verify and show the hash-chained audit log."""


@audit_group.command("verify")
@app.output_option
def verify(verb_output: str | None) -> None:
    """Check every entry's hash, sequence and link, and the recorded head (exit 1 if bad)."""
    ctx = app.get_context(verb_output)
    report = audit.verify_chain(ctx.repo)
    if not report.ok:
        raise AuditBrokenError(f"audit log {audit_log(ctx.repo)}: {report}")
    app.emit(ctx, {"ok": True, **asdict(report)}, str(report))


@audit_group.command("show")
@click.option("--change", "change", default=None, help="Only the events of this change.")
@click.option("--event", "event", default=None, help="Only events whose name starts with this.")
@app.output_option
def show(change: str | None, event: str | None, verb_output: str | None) -> None:
    """List the events of the log, oldest first."""
    ctx = app.get_context(verb_output)
    events = audit.select(audit.read_events(ctx.repo), change=change, event=event)
    lines = [
        f"{e.seq:>5}  {e.time}  {e.actor:<12} {e.event:<24} {e.outcome:<9} {e.change or '-'}"
        for e in events
    ]
    payload = {"ok": True, "events": [audit.as_dict(e) for e in events]}
    app.emit(ctx, payload, "\n".join(lines) or "no events")
