"""What a merge request changes in the rendered configuration, per host.

The same hosts are rendered as the estate stood at the merge request's base commit, read
through git (never the working tree, which holds the change itself), and compared file by
file with the rendering of the working tree. At the base, the change is rendered as it was
there, or not at all when the merge request adds it: the base rendering is then what the
hosts run today.
"""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gcmschange import gitrepo
from gcmschange.errors import GcmsError, InvalidInputError
from gcmschange.masking import mask_text, secret_values
from gcmschange.model import ChangeRequest, Host
from gcmschange.render.cache import default_cache
from gcmschange.render.configs import RenderedFile, RenderedSet, render_hosts
from gcmschange.rules.estate import borrow_inventory, load_estate, load_inventory
from gcmschange.validate.load import load_change

MAIN_REFS = ("origin/main", "main")


@dataclass(frozen=True)
class FileDiff:
    dest: str
    status: str  # "added", "removed" or "modified"
    diff: str  # unified diff, secrets masked


@dataclass(frozen=True)
class HostDiff:
    host: str
    files: tuple[FileDiff, ...]


@dataclass(frozen=True)
class ConfigDiff:
    base: str  # the base commit
    changed: tuple[HostDiff, ...]
    unchanged: tuple[str, ...]
    note: str = ""  # why there is no diff, when the base could not be rendered


def default_base(root: Path, given: str | None = None) -> str | None:
    """The base commit: `given` (the CI layer passes the merge request's diff base), else the
    merge base of HEAD with origin/main or main, else None (no base: no diff)."""
    if given:
        sha = gitrepo.resolve_commit(root, given)
        if sha is None:
            raise InvalidInputError(f"--base {given}: no such revision in {root}")
        return sha
    if not gitrepo.is_repo(root):
        return None
    for ref in MAIN_REFS:
        if gitrepo.resolve_commit(root, ref) is not None:
            return gitrepo.merge_base(root, "HEAD", ref)
    return None


@dataclass(frozen=True)
class BaseRendering:
    rendered: RenderedSet
    secrets: tuple[str, ...]  # the base change's secret values (they may differ from today's)


def render_at(
    root: Path,
    base: str,
    change: ChangeRequest,
    environment: str,
    hosts: Sequence[str],
    *,
    use_cache: bool,
) -> BaseRendering:
    """The rendering of `hosts` of `environment` from the estate as it is at commit `base`;
    the change as it was there, or none when the merge request adds it."""
    with tempfile.TemporaryDirectory(prefix="gcms-base-") as tmp:
        export = Path(tmp)
        # The whole tree: loading the base change validates it against the schemas, policy
        # and catalogue of its time.
        gitrepo.export_tree(root, base, export)
        # A generated inventory (the lab's) is not versioned: the base uses today's.
        borrow_inventory(root, export, environment)
        estate = load_estate(export)
        inventory = load_inventory(export, environment)
        known: list[Host] = [inventory.hosts[h] for h in hosts if h in inventory.hosts]
        at_base = None
        if change.path and (export / change.path).is_file():
            at_base = load_change(export, change.path)
        variables = dict(at_base.variables) if at_base else {}
        secrets = secret_values(export, at_base) if at_base else ()
        cache = default_cache(root) if use_cache and not secrets else None
        rendered = render_hosts(estate, inventory, known, variables, cache=cache)
        return BaseRendering(rendered, secrets)


def _file_diff(
    where: str, base_sha: str, old: RenderedFile | None, new: RenderedFile | None
) -> str:
    before = old.content.splitlines(keepends=True) if old else []
    after = new.content.splitlines(keepends=True) if new else []
    lines = difflib.unified_diff(
        before,
        after,
        fromfile=f"{where} (base {base_sha[:12]})" if old else "/dev/null",
        tofile=where if new else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def compare(
    base_sha: str, base: RenderedSet, head: RenderedSet, secrets: Sequence[str] = ()
) -> ConfigDiff:
    """Per host, the files whose rendering differs between `base` and `head`."""
    old = {(f.host, f.dest): f for f in base.files}
    new = {(f.host, f.dest): f for f in head.files}
    changed: list[HostDiff] = []
    unchanged: list[str] = []
    for host in head.hosts():
        dests = [d for h, d in new if h == host] + [d for h, d in old if h == host]
        files: list[FileDiff] = []
        for dest in dict.fromkeys(dests):
            a, b = old.get((host, dest)), new.get((host, dest))
            if a is not None and b is not None and a.content == b.content:
                continue
            status = "added" if a is None else "removed" if b is None else "modified"
            text = mask_text(_file_diff(f"{host}:{dest}", base_sha, a, b), secrets)
            files.append(FileDiff(dest, status, text))
        if files:
            changed.append(HostDiff(host, tuple(files)))
        else:
            unchanged.append(host)
    return ConfigDiff(base_sha, tuple(changed), tuple(unchanged))


def config_diff(
    root: Path,
    change: ChangeRequest,
    rendered: RenderedSet,
    base: str,
    secrets: Sequence[str] = (),
) -> ConfigDiff:
    """The rendered files of the working tree against the same rendering at `base`."""
    try:
        at_base = render_at(
            root, base, change, rendered.environment, rendered.hosts(), use_cache=not secrets
        )
    except GcmsError as err:
        return ConfigDiff(base, (), (), note=f"the base {base[:12]} cannot be rendered: {err}")
    return compare(base, at_base.rendered, rendered, (*secrets, *at_base.secrets))
