"""`gcmschange evidence CHANGE -o FILE.tar.gz` and `gcmschange evidence verify FILE`.

`verify` checks a bundle against its own manifest, then against the audit log of the
repository it was built in: a manifest recomputed after an edit agrees with the bundle but
not with the log. `--offline` skips the log, for a bundle checked away from its repository,
and says that it checked only the bundle's internal consistency.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from gcmschange.audit.evidence import BundleReport, build_bundle, recorded_build, verify_bundle
from gcmschange.cli import app
from gcmschange.cli.app import problems_json
from gcmschange.errors import GcmsError, InvalidInputError
from gcmschange.textsafe import terminal


class EvidenceTamperedError(GcmsError):
    """A member of the bundle does not match its manifest, or the manifest does not match the
    audit log; the message names which."""


OFFLINE_NOTE = (
    "internal consistency only (--offline): every member matches the bundle's own manifest, "
    "but the manifest was not checked against the audit log, so this does not show the "
    "bundle is the one that was built"
)


class _BuildByDefault(click.Group):
    """`evidence CHANGE ...` is short for `evidence build CHANGE ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["build", *args]
        return super().parse_args(ctx, args)


@app.root.group("evidence", cls=_BuildByDefault, help=app.VERBS["evidence"])
def evidence_group() -> None:
    """Build or verify a change's evidence bundle."""


@evidence_group.command("build")
@click.argument("change")
@app.out_option("The bundle to write (default: evidence-CHANGE.tar.gz here).", required=False)
@app.output_option
def build(*, change: str, out: Path | None, verb_output: str | None) -> None:
    """Bundle the request, plan, runs, approvals, audit slice and timings, with a manifest."""
    ctx = app.get_context(verb_output)
    target = out or Path(f"evidence-{Path(change).stem}.tar.gz")
    if not target.name.endswith((".tar.gz", ".tgz")):
        raise InvalidInputError(f"-o {target}: an evidence bundle is a .tar.gz file")
    result = build_bundle(ctx.repo, change, target)
    text = (
        f"{result.path}: {len(result.members) + 1} members, manifest sha256 "
        f"{result.manifest_sha256}"
        + (f"; truncated: {', '.join(result.truncated)}" if result.truncated else "")
    )
    payload = {**asdict(result), "path": str(result.path), "ok": True}
    app.emit(ctx, payload, terminal(text))  # member names come from files on disk


def _audit_entry(bundle: Path, report: BundleReport) -> int:
    """The audit entry that recorded this bundle's manifest; refused when there is none."""
    try:
        root = app.get_context().repo
    except GcmsError as exc:
        raise InvalidInputError(
            f"{bundle}: no repository to check the audit log of ({exc.message}); run inside it "
            "or with --repo, or pass --offline to check internal consistency only"
        ) from exc
    found = recorded_build(root, report)
    if found.entry is None:
        raise EvidenceTamperedError(f"{bundle}: {found.problem}")
    return found.entry


@evidence_group.command("verify")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--offline",
    is_flag=True,
    help="Away from the bundle's repository: check the members against the manifest only, "
    "not the manifest against the audit log (says so in its result).",
)
@app.output_option
def verify(*, bundle: Path, offline: bool, verb_output: str | None) -> None:
    """Check every member against MANIFEST.sha256, and the manifest against the audit log.

    Exit 1 naming each altered member, or when the audit log recorded another manifest for
    the change, or none.
    """
    ctx = app.get_context(verb_output)
    report = verify_bundle(bundle)
    if not report.ok:
        first = report.problems[0].message
        raise EvidenceTamperedError(f"{bundle}: {first}", report.problems)
    seq = None if offline else _audit_entry(bundle, report)
    checked = f"{report.members} members checked"
    text = (
        f"{bundle}: consistent, {checked}; {OFFLINE_NOTE}"
        if seq is None
        else f"{bundle}: intact, {checked}; manifest recorded in audit entry {seq}"
    )
    payload = {
        "ok": True,
        "path": str(bundle),
        "members": report.members,
        "manifest_sha256": report.manifest_sha256,
        "audit_checked": seq is not None,
        "audit_entry": seq,
        "note": OFFLINE_NOTE if seq is None else "",
        "problems": problems_json(report.problems),
    }
    app.emit(ctx, payload, terminal(text))
