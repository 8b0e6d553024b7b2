"""`gcmschange ci ...`: the small helpers the GitLab pipeline calls between the real verbs.

`ci changes` says which change a pipeline is about, `ci note` posts the plan on the merge
request, `ci context` shows what the job knows about itself. The CI variables come from
`cienv`, the only reader of them; the GitLab token is gcmschange's own setting.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import click

from gcmschange.audit import trail
from gcmschange.ci import env, mrnote
from gcmschange.cli import app
from gcmschange.errors import InvalidInputError, UsageError

AUTH_VAR = "GCMS_GITLAB_TOKEN"  # a project access token with the api scope (masked variable)
URL_VAR = "GCMS_GITLAB_URL"  # default: the server the pipeline runs on


@app.root.group("ci")
def ci_group() -> None:
    """Helpers for the GitLab pipeline (see docs/release-manager-guide.md)."""


@ci_group.command("context")
@app.output_option
def context_cmd(verb_output: str | None) -> None:
    """Show the CI context this job runs in (what gcmschange read from GitLab's variables)."""
    ctx = app.get_context(verb_output)
    ci = env.from_environ()
    body = asdict(ci)
    text = "\n".join(f"{k}: {v}" for k, v in body.items() if v not in ("", None))
    app.emit(ctx, {"ok": True, **body, "diff_base": ci.diff_base}, text or "not in CI")


@ci_group.command("changes")
@click.option(
    "--base", default=None, help="Compare with this revision (default: the CI diff base)."
)
@click.option("--one", is_flag=True, help="Exactly one change, or fail saying why.")
@app.output_option
def changes_cmd(base: str | None, one: bool, verb_output: str | None) -> None:
    """The change requests this pipeline is about, one id per line.

    CHANGE_ID when set; else every changes/CHG-*.yaml added or modified since the diff base
    (the merge request's base, or the commit before the push).
    """
    from gcmschange.ci import changes

    ctx = app.get_context(verb_output)
    ci = env.from_environ()
    found = changes.changes_of(ctx.repo, ci, base)
    if one and len(found) != 1:
        listed = f" ({', '.join(found)})" if found else ""
        raise InvalidInputError(
            f"this pipeline touches {len(found)} change requests{listed}; apply takes exactly "
            "one: set the CHANGE_ID variable to choose it"
        )
    app.emit(ctx, {"ok": True, "changes": list(found)}, "\n".join(found))


def _target(ci: env.CiContext) -> tuple[mrnote.Target | None, str]:
    """The note's destination, or None and why nothing will be posted."""
    token = os.environ.get(AUTH_VAR, "")
    url = os.environ.get(URL_VAR, "") or ci.server_url
    project = ci.project_id or ci.project_path
    if not token:
        return None, f"{AUTH_VAR} is not set"
    if ci.mr_iid is None:
        return None, "not a merge-request pipeline"
    if not (url and project):
        return None, f"no GitLab server or project (set {URL_VAR}, CI_PROJECT_ID)"
    return mrnote.Target(url, token, project, ci.mr_iid), ""


@ci_group.command("note")
@click.argument("change")
@click.option(
    "--file",
    "md_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The Markdown plan (default: the change's saved plan, rendered as Markdown).",
)
@app.output_option
def note_cmd(change: str, md_file: Path | None, verb_output: str | None) -> None:
    """Post CHANGE's plan as the merge request's plan note, or update the one already there.

    Does nothing (exit 0, saying why) without a token or outside a merge-request pipeline.
    """
    from gcmschange.apply import journal
    from gcmschange.plan import check, report

    ctx = app.get_context(verb_output)
    ci = env.from_environ()
    target, why = _target(ci)
    if target is None:
        app.emit(ctx, {"ok": True, "action": "skipped", "reason": why}, f"note not posted: {why}")
        return
    if md_file is not None:
        try:
            markdown = md_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--file {md_file}: cannot read it ({exc.strerror})") from exc
    else:
        markdown = report.markdown(check.load_plan(ctx.repo, change))
    measured = journal.last_measurements(ctx.repo, change)
    markdown += mrnote.measurements_section(measured)
    result = mrnote.post_plan(target, change, markdown)
    where = f"{target.project}!{target.mr_iid}"
    trail.record(
        ctx.repo,
        "plan.noted",
        outcome=result.action,
        change=change,
        actor=ci.actor,
        details={"merge_request": where, "note": result.note_id, **ci.audit_details()},
    )
    app.emit(
        ctx,
        {
            "ok": True,
            **asdict(result),
            "merge_request": where,
            "measurements": sum(len(a["measurements"]) for a in measured),
        },
        f"plan note {result.action} on {where} (note {result.note_id})"
        + (f", with the last run's {len(measured)} analysis step(s)" if measured else ""),
    )
