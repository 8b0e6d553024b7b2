"""Which change requests a pipeline is about: the CHANGE_ID variable, or the changed files.

A merge request (or a push) that adds or edits `changes/CHG-....yaml` is about those changes;
they are found by comparing the committed `changes/` tree at the diff base with HEAD's, so a
file edited in the job's checkout but not committed never decides what is planned or applied.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from gcmschange import gitrepo
from gcmschange.ci.env import CHANGE_ID, CiContext
from gcmschange.errors import InvalidInputError

CHANGES_DIR = "changes"


def _change_files(tree: Path) -> dict[str, bytes]:
    folder = tree / CHANGES_DIR
    if not folder.is_dir():
        return {}
    return {
        p.stem: p.read_bytes()
        for p in sorted(folder.glob("*.yaml"))
        if p.is_file() and CHANGE_ID.match(p.stem)
    }


def changed_between(root: Path, base: str, head: str = "HEAD") -> tuple[str, ...]:
    """Ids of the change files added or modified from `base` to `head` (deleted ones left out)."""
    for rev in (base, head):
        if gitrepo.resolve_commit(root, rev) is None:
            raise InvalidInputError(
                f"{root}: no commit {rev} in this clone (a shallow clone? set GIT_DEPTH: 0 "
                "in the pipeline, or set CHANGE_ID)"
            )
    with tempfile.TemporaryDirectory(prefix="gcms-changes-") as tmp:
        before, after = Path(tmp, "base"), Path(tmp, "head")
        gitrepo.export_tree(root, base, before, [CHANGES_DIR])
        gitrepo.export_tree(root, head, after, [CHANGES_DIR])
        old, new = _change_files(before), _change_files(after)
    return tuple(cid for cid, data in new.items() if old.get(cid) != data)


def changes_of(root: Path, ci: CiContext, base: str | None = None) -> tuple[str, ...]:
    """CHANGE_ID when set; else the changes touched since `base` (default: the CI diff base)."""
    if ci.change_id:
        if not (root / CHANGES_DIR / f"{ci.change_id}.yaml").is_file():
            raise InvalidInputError(
                f"CHANGE_ID={ci.change_id}: no {CHANGES_DIR}/{ci.change_id}.yaml in {root}"
            )
        return (ci.change_id,)
    if base is not None:
        start = gitrepo.merge_base(root, base, "HEAD") or base
    elif ci.diff_base is not None:
        start = ci.diff_base
    else:
        raise InvalidInputError(
            "cannot tell which change this pipeline is about: no diff base (not a merge "
            "request, and a new branch); set CHANGE_ID or pass --base"
        )
    return changed_between(root, start)
