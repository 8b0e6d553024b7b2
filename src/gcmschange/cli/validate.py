"""`gcmschange validate [CHANGE...]`: every problem in the change requests, then the exit code."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import click

from gcmschange.cli import app
from gcmschange.errors import ExitCode, UsageError

FORMATS = ("text", "json", "junit", "codequality")


def _now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"--now {value!r}: not an ISO date and time ({exc})") from exc
    if moment.tzinfo is None:
        raise UsageError(f"--now {value!r}: give an offset, for example 2026-05-01T09:00:00-04:00")
    return moment


@app.root.command("validate", help=app.VERBS["validate"])
@click.argument("changes", nargs=-1)
@click.option(
    "--output",
    "verb_output",
    type=click.Choice(FORMATS),
    default=None,
    help="Report format: text, json, junit (CI test report) or codequality (GitLab widget).",
)
@click.option(
    "--now",
    "now_arg",
    default=None,
    metavar="ISO-TIME",
    help="Measure notice from this moment instead of the clock (with an offset).",
)
@click.option("--no-cache", is_flag=True, help="Ignore and do not update the result cache.")
def validate_cmd(
    changes: tuple[str, ...], verb_output: str | None, now_arg: str | None, no_cache: bool
) -> int:
    """Validate CHANGES (paths or ids; default: every changes/*.yaml).

    Exit 0 when no change has an error (warnings allowed), 1 otherwise.
    """
    from gcmschange.validate import reports, run

    ctx = app.get_context(verb_output)
    root = ctx.repo
    with _no_cycle_collection():
        report = run.validate(root, changes, now=_now(now_arg), use_cache=not no_cache)
        run.record_audit(root, report)
        reports.REPORTERS[ctx.output](report, sys.stdout)
    return int(ExitCode.OK if report.ok else ExitCode.FAILURE)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Validating 10,000 changes makes a million small objects and no reference cycles;
    the cycle collector would rescan them all again and again (a third of a warm run)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
