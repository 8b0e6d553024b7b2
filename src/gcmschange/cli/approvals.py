"""`gcmschange approve` and `gcmschange approvals`: sign, list, and check the gate."""

from __future__ import annotations

import os
import re
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from gcmschange.approvals import gate as approvals
from gcmschange.approvals.statements import Verdict
from gcmschange.cli import app
from gcmschange.errors import InvalidInputError, UsageError
from gcmschange.model import ChangeRequest

DURATION = re.compile(r"^(\d+)([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`30m`, `12h`, `3d`, `2w` as a timedelta."""
    match = DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"--expires {text!r}: expected a positive duration like 30m, 12h, 3d, 2w")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


@app.root.command("approve", help=app.VERBS["approve"])
@click.argument("change", required=False)
@click.option(
    "--governance",
    is_flag=True,
    help="Approve the working tree's rules (approvers, policy.yml, catalogue/) instead of a "
    "change: a governance change, signed under the rules in force.",
)
@click.option(
    "--key",
    "key",
    required=True,
    type=click.Path(path_type=Path),
    help="Your private SSH signing key (its public half is in the approvers file).",
)
@click.option(
    "--role",
    "role",
    default=None,
    help="The role you approve in (default: your one role the policy requires).",
)
@click.option(
    "--expires",
    "expires",
    default="3d",
    show_default=True,
    help="How long the approval stays valid (30m, 12h, 3d, 2w; policy caps it).",
)
@click.option("--comment", "comment", default="", help="A note signed with the approval.")
@click.option(
    "--digest",
    "digest",
    default=None,
    help="Sign the digest the plan shows (its merge-request note) instead of computing it "
    "here: for an approver without the vault password. Apply compares it with what runs, so "
    "a digest of anything else is a stale approval. With the password, it must match.",
)
@app.trust_ref_option
@app.output_option
def approve_cmd(
    *,
    change: str | None,
    governance: bool,
    key: Path,
    role: str | None,
    expires: str,
    comment: str,
    digest: str | None,
    trust_ref: str | None,
    verb_output: str | None,
) -> None:
    """Sign an approval of CHANGE at its current digest and commit it under approvals/."""
    from gcmschange.approvals.sign import approve, approve_governance

    ctx = app.get_context(verb_output)
    lifetime = parse_duration(expires)
    if governance == (change is not None):
        raise UsageError("name a CHANGE, or approve the rules with --governance (not both)")
    if not key.is_file():  # said first: computing the digest may ask for what is missing
        raise InvalidInputError(f"{key}: no such key file")
    if change is None:
        granted = approve_governance(
            ctx.repo, key, expires=lifetime, comment=comment, trust_ref=trust_ref
        )
    else:
        loaded, signed = _change_and_digest(ctx.repo, change, digest)
        granted = approve(
            ctx.repo,
            loaded,
            signed,
            key,
            role=role,
            expires=lifetime,
            comment=comment,
            trust_ref=trust_ref,
        )
    st = granted.statement
    text = (
        f"approved {st.change} ({st.environment}) as {st.role} by {st.principal} at digest "
        f"{st.digest[:12]}, valid until {st.expires}\n  {granted.file} "
        f"(commit {granted.commit[:12]})"
    )
    app.emit(ctx, {"ok": True, **asdict(granted)}, text)


DIGEST = re.compile(r"^[0-9a-f]{64}$")


def _change_and_digest(root: Path, ref: str, given: str | None) -> tuple[ChangeRequest, str]:
    """The change and the digest to sign: computed here, or the plan's when given (then
    checked against this checkout's when the vault password is at hand to compute it)."""
    from gcmschange import vault
    from gcmschange.apply import road
    from gcmschange.validate.load import load_change

    if given is not None and not DIGEST.match(given):
        raise UsageError(f"--digest {given!r}: expected the plan's 64 hex digits")
    if given is not None and not vault.given():
        return load_change(root, ref), given
    prepared = road.prepare(root, ref)
    if given is not None and given != prepared.digest:
        raise InvalidInputError(
            f"{prepared.loaded.change.id}: --digest {given[:12]} is not this checkout's "
            f"{prepared.digest[:12]}: fetch what was planned, or plan again"
        )
    return prepared.loaded.change, prepared.digest


def _verdict_json(v: Verdict) -> dict[str, Any]:
    st = v.statement
    return {
        "source": v.source,
        "ref": v.ref,
        "status": v.status,
        "reason": v.reason,
        "principal": v.principal,
        "roles": list(v.roles),
        "statement": asdict(st) if st else None,
    }


def _result_json(result: approvals.GateResult) -> dict[str, Any]:
    body = asdict(result)
    body["verdicts"] = [_verdict_json(v) for v in result.verdicts]
    return {"ok": True, **body}


def _result_text(result: approvals.GateResult) -> str:
    lines = [
        f"{result.change} ({result.environment}) at digest {result.digest[:12]}",
        "required: " + (", ".join(result.required) or "no approval"),
    ]
    for role in result.required:
        who = result.satisfied.get(role)
        lines.append(f"  {role:<24} {'by ' + who if who else 'STILL REQUIRED'}")
    lines.append("approvals:" if result.verdicts else "approvals: none")
    for v in result.verdicts:
        who, roles = v.principal or "?", ",".join(v.roles) or "-"
        lines.append(f"  {v.status:<18} {who:<22} {roles:<22} {v.ref}")
        if v.status != "valid":
            lines.append(f"      {v.reason}")
    if result.review is not None:
        rv = result.review
        state = f"done by {rv.done_by}" if rv.done_by else ("OVERDUE" if rv.overdue else "owed")
        lines.append(f"post-implementation review: due {rv.due}: {state}")
    lines.append(f"rules from: {result.trust_ref}")
    lines.append("gate: passes" if result.passed else "gate: refused: " + "; ".join(result.reasons))
    return "\n".join(lines)


def _gitlab_sources(
    mr: int | None, project: str | None
) -> tuple[approvals.ApprovalSource, ...] | None:
    if mr is None:
        return None
    from gcmschange.approvals import gitlab_source

    url, token = os.environ.get("GCMS_GITLAB_URL", ""), os.environ.get("GCMS_GITLAB_TOKEN", "")
    if not (url and token and project):
        raise UsageError(
            "--gitlab-mr needs --gitlab-project, GCMS_GITLAB_URL and GCMS_GITLAB_TOKEN"
        )
    return (*approvals.SOURCES.values(), gitlab_source.connect(url, token, project, mr))


@app.root.command("approvals", help=app.VERBS["approvals"])
@click.argument("change")
@click.option(
    "--gate",
    "gate",
    is_flag=True,
    help="Decide (and record) whether the change may run: exit 1 if refused.",
)
@click.option(
    "--gitlab-mr",
    "gitlab_mr",
    type=int,
    default=None,
    help="Also count GitLab approvals of this merge request (optional source).",
)
@click.option(
    "--gitlab-project",
    "gitlab_project",
    default=None,
    help="GitLab project path or id for --gitlab-mr.",
)
@app.trust_ref_option
@app.output_option
def approvals_cmd(
    *,
    change: str,
    gate: bool,
    gitlab_mr: int | None,
    gitlab_project: str | None,
    trust_ref: str | None,
    verb_output: str | None,
) -> None:
    """List CHANGE's approvals, each with its verdict, and what the policy still requires."""
    from gcmschange.apply import road

    ctx = app.get_context(verb_output)
    prepared = road.prepare(ctx.repo, change)
    sources = _gitlab_sources(gitlab_mr, gitlab_project)
    check = approvals.require_gate if gate else approvals.check_gate
    result = check(
        ctx.repo, prepared.loaded.change, prepared.digest, sources=sources, trust_ref=trust_ref
    )
    app.emit(ctx, _result_json(result), _result_text(result))
