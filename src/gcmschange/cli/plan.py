"""`gcmschange plan CHANGE`: check + diff on the real hosts, the plan report, and its digest."""

from __future__ import annotations

import click

from gcmschange.cli import app


@app.root.command("plan")
@click.argument("change")
@click.option(
    "--output",
    "verb_output",
    type=click.Choice(("text", "json", "markdown")),
    default=None,
    help="Report format; markdown is the merge-request note.",
)
@app.accelerate_option
@app.trust_ref_option
def plan_cmd(change: str, verb_output: str | None, accelerate: bool, trust_ref: str | None) -> int:
    """Run the change in check + diff mode against its hosts and compute its digest.

    Renders CHANGE, runs its playbook in check + diff mode on every target host, and saves
    the plan (per host: the tasks that would change and their diffs) as
    .gcmschange/changes/<id>/plan.json. Exit 0 when every host was planned, 6 when a host
    was unreachable (the plan is incomplete), 1 when the change cannot be rendered or a
    host's check failed.

    In a merge-request pipeline (or with --trust-ref) the plan runs the trust ref's code with
    this change request; a merge request that changes code is planned with its own code only
    in the environments policy.yml lists under untrusted_plans (the lab by default).
    """
    from gcmschange.plan import check, report

    ctx = app.get_context(verb_output)
    output = ctx.output
    with app.live_progress("planning", output == "text") as progress:
        result = check.run_plan(
            ctx.repo, change, progress=progress, accelerate=accelerate, trust_ref=trust_ref
        )
    click.echo(report.report(result, output))
    if not result.complete and output != "json":
        missing = [h for s in ("unreachable", "failed") for h in result.named(s)]
        click.echo(f"gcmschange: plan incomplete: {', '.join(missing)}", err=True)
    return int(result.exit_code)
