"""`gcmschange notices issue|incident|incidents`: bilingual partner notices."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from gcmschange.cli import app
from gcmschange.errors import ExternalError, InvalidInputError
from gcmschange.notify.notices import PHASES, Notice, issue_incident, issue_notices, read_incidents
from gcmschange.validate.load import load_change


def _maybe_when(value: str | None, zone: str, option: str) -> datetime | None:
    return None if value is None else _when(value, zone, option)


def _when(value: str, zone: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))
    except ValueError as exc:
        raise InvalidInputError(f"{option} {value!r}: not an ISO 8601 date-time") from exc
    except ZoneInfoNotFoundError as exc:
        raise InvalidInputError(f"--timezone {zone!r}: unknown time zone") from exc


def _report(notices: list[Notice], verb_output: str | None) -> None:
    ctx = app.get_context(verb_output)
    rows = [{**asdict(n), "eml": str(n.eml), "md": str(n.md)} for n in notices]
    lines = [
        f"{n.partner:<20} {n.to:<36} {'sent' if n.sent else (n.error or 'written')}"
        for n in notices
    ]
    failed = [n for n in notices if n.error]
    app.emit(ctx, {"ok": not failed, "notices": rows}, "\n".join(lines) or "no partner affected")
    if failed:
        raise ExternalError(
            f"{len(failed)} of {len(notices)} notices not delivered (kept in the outbox): "
            f"{failed[0].error}"
        )


@app.root.group("notices", help=app.VERBS["notices"])
def notices_group() -> None:
    """Bilingual (EN/FR) partner notices for changes and incidents."""


@notices_group.command("issue")
@click.argument("change")
@click.option("--phase", type=click.Choice(PHASES), required=True)
@click.option("--end", "new_end", default=None, help="New end of the window (phase extended).")
@click.option("--reason-en", default="", help="Why, in English (extended, rolled_back).")
@click.option("--reason-fr", default="", help="Pourquoi, en français.")
@app.output_option
def issue(
    *,
    change: str,
    phase: str,
    new_end: str | None,
    reason_en: str,
    reason_fr: str,
    verb_output: str | None,
) -> None:
    """Notify every partner downstream of CHANGE's systems that it reached PHASE."""
    root = app.get_context(verb_output).repo
    request = load_change(root, change)
    extra: dict[str, Any] = {"reason_en": reason_en, "reason_fr": reason_fr}
    end = _maybe_when(new_end, request.window.timezone, "--end")
    if end is not None:
        extra["end"] = end
    _report(issue_notices(root, request, phase, extra=extra), verb_output)


@notices_group.command("incident")
@click.option("--system", "systems", multiple=True, required=True, help="Affected system.")
@click.option("--title-en", required=True)
@click.option("--title-fr", required=True)
@click.option("--impact", type=click.Choice(["degraded", "outage"]), default="outage")
@click.option("--start", required=True, help="ISO 8601; local to --timezone unless offset given.")
@click.option("--end", default=None, help="When service was restored (resolves the incident).")
@click.option("--timezone", "zone", default="America/Toronto", show_default=True)
@click.option("--description-en", default="")
@click.option("--description-fr", default="")
@app.output_option
def incident(
    *,
    systems: tuple[str, ...],
    title_en: str,
    title_fr: str,
    impact: str,
    start: str,
    end: str | None,
    zone: str,
    description_en: str,
    description_fr: str,
    verb_output: str | None,
) -> None:
    """Record an unplanned outage (or its resolution) and notify the partners downstream."""
    root = app.get_context(verb_output).repo
    notices = issue_incident(
        root,
        systems,
        title_en=title_en,
        title_fr=title_fr,
        impact=impact,
        start=_when(start, zone, "--start"),
        end=_maybe_when(end, zone, "--end"),
        timezone=zone,
        description_en=description_en,
        description_fr=description_fr,
    )
    _report(notices, verb_output)


@notices_group.command("incidents")
@app.output_option
def incidents(verb_output: str | None) -> None:
    """List recorded incidents (latest state of each)."""
    ctx = app.get_context(verb_output)
    found = read_incidents(ctx.repo)
    lines = [
        f"{i.id}  {i.impact:<8} {i.start.isoformat()} -> {i.end.isoformat() if i.end else 'open'}"
        f"  {','.join(i.systems)}  {i.title_en}"
        for i in found
    ]
    payload = {"ok": True, "incidents": [asdict(i) for i in found]}
    app.emit(ctx, payload, "\n".join(lines) or "no incidents")
