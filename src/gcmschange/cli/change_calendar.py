"""`gcmschange calendar [--env ENV] [-o FILE.ics]`: the change calendar and its conflicts."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from gcmschange.cli import app
from gcmschange.cli.app import problems_json
from gcmschange.errors import GateRefusedError
from gcmschange.notify.change_calendar import (
    ChangeCalendar,
    Conflict,
    Entry,
    build_calendar,
    to_ical,
)
from gcmschange.textsafe import terminal


def _line(entry: Entry) -> str:
    # Titles, refs and names come from change files and policy.yml: each is made one line of
    # plain text before it reaches the terminal.
    when = f"{entry.start:%Y-%m-%d %H:%M %Z} -> {entry.end:%Y-%m-%d %H:%M %Z}"
    where = terminal(",".join(entry.environments))
    systems = terminal(",".join(entry.systems)) or "-"
    ref = "-" if entry.status == "freeze" else terminal(entry.ref)
    return f"  {when}  {entry.status:<8} {where:<13} {ref:<14} {systems}  {terminal(entry.title)}"


def _conflict_line(conflict: Conflict) -> str:
    span = f"{conflict.start:%Y-%m-%d %H:%M} -> {conflict.end:%Y-%m-%d %H:%M} UTC"
    pair = f"{conflict.first} x {conflict.second}: {conflict.reason}"
    return f"  {terminal(pair)} ({span})"


def text_view(calendar: ChangeCalendar) -> str:
    scope = terminal(calendar.environment or "all environments")
    lines = [f"Change calendar ({scope}): {len(calendar.entries)} entries"]
    lines += [_line(e) for e in calendar.entries]
    lines.append(f"Conflicts: {len(calendar.conflicts)}")
    lines += [_conflict_line(c) for c in calendar.conflicts]
    lines += [f"  skipped {terminal(str(p))}" for p in calendar.problems]
    return "\n".join(lines)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


@app.root.command("calendar", help=app.VERBS["calendar"])
@click.option("--env", "environment", default=None, help="Only this environment.")
@app.out_option("Write the iCalendar (RFC 5545) file here.", required=False)
@click.option("--strict", is_flag=True, help="Exit 1 when any conflict is found.")
@app.output_option
def calendar(
    *, environment: str | None, out: Path | None, strict: bool, verb_output: str | None
) -> None:
    """Approved and pending changes and freezes; conflicts on the same or related systems."""
    ctx = app.get_context(verb_output)
    result = build_calendar(ctx.repo, environment)
    if out is not None:
        _write(out, to_ical(result))
    payload = {
        "ok": not (strict and result.conflicts),
        "file": str(out) if out else None,
        "entries": [asdict(e) for e in result.entries],
        "conflicts": [asdict(c) for c in result.conflicts],
        "problems": problems_json(result.problems),
    }
    app.emit(ctx, payload, text_view(result))
    if strict and result.conflicts:
        raise GateRefusedError(f"{len(result.conflicts)} calendar conflicts")
