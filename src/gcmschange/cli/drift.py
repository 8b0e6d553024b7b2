"""`gcmschange drift ENV`: which hosts no longer hold what git says (for a scheduled pipeline)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gcmschange.cli import app

FORMATS = ("text", "json", "junit")


@app.root.command("drift", help=app.VERBS["drift"])
@click.argument("environment")
@click.option(
    "--systems",
    default="",
    metavar="SYSTEM[,SYSTEM...]",
    help="Check only the hosts of these systems (default: every host of ENV).",
)
@click.option(
    "--output",
    "verb_output",
    type=click.Choice(FORMATS),
    default=None,
    help="Report format: text, json, or junit (one test case per host, for CI).",
)
@click.option(
    "--playbook",
    default="",
    metavar="NAME",
    help="Also run playbooks/NAME.yml in check mode (the playbook your changes name), so drift "
    "in what it manages is found too.",
)
@click.option(
    "--junit",
    "junit_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the JUnit report to this file (for CI test reports).",
)
def drift_cmd(
    environment: str,
    systems: str,
    verb_output: str | None,
    playbook: str,
    junit_file: Path | None,
) -> int:
    """Check mode of the standard configuration plus the verification tests, on every host
    of ENVIRONMENT; report each host that differs from git, fails its tests, or is unreachable.

    Exit 0 when every host is clean, 1 when some host drifted, 6 when some host could not
    be reached (and none drifted).
    """
    from gcmschange.ci import env
    from gcmschange.plan import drift

    ctx = app.get_context(verb_output)
    ci = env.from_environ()
    wanted = tuple(s.strip() for s in systems.split(",") if s.strip())
    with app.live_progress(f"drift {environment}", ctx.output == "text") as progress:
        report = drift.check_drift(
            ctx.repo, environment, wanted, progress=progress, playbook=playbook
        )
    drift.record_audit(ctx.repo, report, actor=ci.actor, ci=ci.audit_details())
    if junit_file is not None:
        junit_file.write_text(drift.junit_report(report), encoding="utf-8")
    if ctx.output == "json":
        click.echo(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    elif ctx.output == "junit":
        click.echo(drift.junit_report(report), nl=False)
    else:
        click.echo(drift.text_report(report))
    return int(report.exit_code)
