"""`gcmschange render CHANGE`: the files a change produces per host, and what it changes in them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import click

from gcmschange.cli import app
from gcmschange.paths import STATE_DIR
from gcmschange.render.configs import RenderedSet
from gcmschange.render.diff import ConfigDiff


@app.root.command("render")
@click.argument("change")
@click.option("--env", "environment", default=None, help="Environment (default: the change's).")
@app.out_option(
    "Output directory (default: .gcmschange/changes/<id>/rendered).", required=False, dir_okay=True
)
@click.option(
    "--base",
    default=None,
    help="Compare with the rendering at this commit (default: merge base with origin/main "
    "or main; CI passes the merge request's diff base).",
)
@app.output_option
def render_cmd(
    change: str,
    environment: str | None,
    out: Path | None,
    base: str | None,
    verb_output: str | None,
) -> None:
    """Render the configuration files a change produces, per host.

    Writes <out>/<host>/<dest> and shows, per host, what differs from the same rendering at
    the base commit (read through git); unchanged hosts are counted, not listed. Exit 1 on a
    missing variable, a template error or an unsafe destination, with nothing written.
    """
    from gcmschange.apply import road
    from gcmschange.masking import secret_values
    from gcmschange.render import diff as configdiff
    from gcmschange.render.cache import default_cache

    ctx = app.get_context(verb_output)
    root = ctx.repo
    loaded = road.load(root, change, environment)
    secrets = secret_values(root, loaded.change)
    rendered = road.render(loaded, cache=None if secrets else default_cache(root))
    base_sha = configdiff.default_base(root, base)
    diff = None
    if base_sha is not None:
        diff = configdiff.config_diff(root, loaded.change, rendered, base_sha, secrets)
    target = out or root / STATE_DIR / "changes" / loaded.change.id / "rendered"
    _write(rendered.masked(secrets), target, replace_old=out is None)
    payload = _payload(loaded.change.id, rendered.masked(secrets), target, diff)
    app.emit(ctx, payload, _text(loaded.change.id, rendered, target, diff))


def _write(rendered: RenderedSet, target: Path, *, replace_old: bool) -> None:
    """Write the set; our own default directory is replaced whole, so no stale file stays."""
    if not replace_old:
        rendered.write(target)
        return
    fresh = target.with_name(f"{target.name}.{os.getpid()}.new")
    shutil.rmtree(fresh, ignore_errors=True)
    rendered.write(fresh)
    shutil.rmtree(target, ignore_errors=True)
    fresh.rename(target)


def _payload(
    change: str, rendered: RenderedSet, target: Path, diff: ConfigDiff | None
) -> dict[str, Any]:
    hosts: dict[str, list[dict[str, str]]] = {}
    for f in rendered.files:
        hosts.setdefault(f.host, []).append(
            {"dest": f.dest, "template": f.template, "sha256": f.sha256}
        )
    payload: dict[str, Any] = {
        "ok": True,
        "change": change,
        "environment": rendered.environment,
        "out": str(target),
        "hosts": hosts,
        "base": diff.base if diff else None,
    }
    if diff is not None:
        payload["diff"] = {
            "changed": {
                h.host: [{"dest": f.dest, "status": f.status, "diff": f.diff} for f in h.files]
                for h in diff.changed
            },
            "unchanged": list(diff.unchanged),
            "note": diff.note,
        }
    return payload


def _text(change: str, rendered: RenderedSet, target: Path, diff: ConfigDiff | None) -> str:
    manifest = rendered.manifest()
    files = sum(len(d) for d in manifest.values())
    lines = [
        f"rendered {change} ({rendered.environment}): {len(manifest)} host(s), "
        f"{files} file(s) -> {target}"
    ]
    if diff is None:
        lines.append("no base commit to compare with (no main branch): files per host")
        for host, dests in manifest.items():
            lines += [f"{host}:", *(f"  {d}" for d in dests)]
        return "\n".join(lines)
    lines.append(f"compared with base {diff.base[:12]}")
    if diff.note:
        return "\n".join([*lines, diff.note])
    for host_diff in diff.changed:
        touched = {f.dest: f.status for f in host_diff.files}
        lines.append(f"{host_diff.host}: {len(touched)} of {len(manifest[host_diff.host])} file(s)")
        for dest in dict.fromkeys([*manifest[host_diff.host], *touched]):
            lines.append(f"  {_mark(touched.get(dest))} {dest}")
        lines += [f.diff.rstrip("\n") for f in host_diff.files]
    if diff.unchanged:
        lines.append(f"{len(diff.unchanged)} host(s) unchanged")
    if not diff.changed:
        lines.append("no rendered file changes")
    return "\n".join(lines)


def _mark(status: str | None) -> str:
    return {"added": "+", "removed": "-", "modified": "~"}.get(status or "", " ")
