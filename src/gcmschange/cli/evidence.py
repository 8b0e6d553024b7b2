"""`gcmschange evidence CHANGE -o FILE.tar.gz` and `gcmschange evidence verify FILE`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from gcmschange.audit import trail
from gcmschange.audit.evidence import BundleReport, build_bundle, verify_bundle
from gcmschange.cli import app
from gcmschange.cli.app import problems_json
from gcmschange.errors import GcmsError, InvalidInputError


class EvidenceTamperedError(GcmsError):
    """A member of the bundle does not match its manifest; the message names it."""


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
    app.emit(ctx, payload, text)


def _recorded(report: BundleReport) -> int | None:
    """The audit entry that recorded this manifest, when run inside the repository."""
    try:
        root = app.get_context().repo
    except GcmsError:
        return None
    for event in trail.select(trail.read_events(root), event="evidence.built"):
        if event.details.get("manifest_sha256") == report.manifest_sha256:
            return event.seq
    return None


@evidence_group.command("verify")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@app.output_option
def verify(*, bundle: Path, verb_output: str | None) -> None:
    """Check every member against MANIFEST.sha256 (exit 1 naming each altered member)."""
    ctx = app.get_context(verb_output)
    report = verify_bundle(bundle)
    if not report.ok:
        first = report.problems[0].message
        raise EvidenceTamperedError(f"{bundle}: {first}", report.problems)
    seq = _recorded(report)
    recorded = f"; recorded in audit entry {seq}" if seq else ""
    payload = {
        "ok": True,
        "path": str(bundle),
        "members": report.members,
        "manifest_sha256": report.manifest_sha256,
        "audit_entry": seq,
        "problems": problems_json(report.problems),
    }
    app.emit(ctx, payload, f"{bundle}: intact, {report.members} members checked{recorded}")
