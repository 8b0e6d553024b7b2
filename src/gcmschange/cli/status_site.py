"""`gcmschange site -o DIR`: build the bilingual status site and its feeds."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from gcmschange.cli import app
from gcmschange.errors import UsageError
from gcmschange.notify.change_calendar import instant_problem
from gcmschange.textsafe import terminal


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--now {value!r}: not an ISO 8601 time ({exc})") from exc
    if moment.tzinfo is None:
        raise UsageError(f"--now {value!r}: give a time zone (for example 2026-12-01T12:00Z)")
    why = instant_problem(moment)
    if why:
        raise UsageError(f"--now {value!r}: {why}")
    return moment


@app.root.command("site", help=app.VERBS["site"])
@app.out_option(
    "Folder to write the site into (created if missing; our files are replaced).", dir_okay=True
)
@click.option("--now", "now", default=None, help="Build as of this time (ISO 8601, with zone).")
@click.option(
    "--base-url",
    "base_url",
    default="",
    help="Absolute URL the site is published at, for the Atom feeds' links (default: relative).",
)
@click.option(
    "--remote",
    default=None,
    help="Also read every audit log anchored on this git remote (other pipelines' changes).",
)
@click.option(
    "--health-from",
    "health_from",
    default=None,
    metavar="ENV",
    help="Also read each system's health and past outages from the Prometheus policy.yml "
    "names for ENV (analysis.prometheus); if it cannot be asked, health is shown as unknown.",
)
@app.output_option
def site(
    *,
    out: Path,
    now: str | None,
    base_url: str,
    remote: str | None,
    health_from: str | None,
    verb_output: str | None,
) -> None:
    """Write index.html (EN), fr/index.html (FR), history, partner pages, feeds, calendars."""
    from gcmschange.statussite import monitored
    from gcmschange.statussite.build import build_site

    ctx = app.get_context(verb_output)
    source = monitored.source_for(ctx.repo, health_from) if health_from else None
    result = build_site(ctx.repo, out, _moment(now), base_url, remote=remote, monitoring=source)
    if result.data.monitoring.problem:
        why = terminal(result.data.monitoring.problem)
        click.echo(f"warning: monitoring: {why}", err=True)
    # Warnings quote records (audit logs, change files): one plain line each on the terminal.
    for problem in result.data.left_out:
        click.echo(f"warning: left out of the history: {terminal(problem)}", err=True)
    for problem in result.data.skipped:
        click.echo(f"warning: left out of the site: {terminal(problem)}", err=True)
    states = {s.id: s.state for s in result.data.systems}
    payload = {
        "ok": True,
        "out": str(result.out),
        "files": list(result.files),
        "systems": states,
        "planned": [e.ref for e in result.data.planned],
        "current": [e.ref for e in result.data.current],
        "history": [e.ref for e in result.data.history],
        "left_out": list(result.data.left_out),
        "skipped": list(result.data.skipped),
        "monitoring": {
            "asked": result.data.monitoring.asked,
            "health_known": result.data.monitoring.known,
            "outages_included": result.data.monitoring.history,
            "problem": result.data.monitoring.problem,
        },
    }
    summary = terminal(", ".join(f"{sid} {state}" for sid, state in states.items()))
    text = (
        f"site written to {result.out} ({len(result.files)} files): "
        f"{len(result.data.planned)} planned, {len(result.data.current)} in progress, "
        f"{len(result.data.history)} in history\n{summary}"
    )
    app.emit(ctx, payload, text)
