"""The sealed tree: a private copy of every byte a run of a change can read, and its hash.

What Ansible or pytest may load for a change is more than its playbook: vars and plugin
folders beside the playbook, roles, collections, the whole inventory of the environment
(`group_vars/`, `host_vars/`), every verification test and its `conftest.py`, the templates,
`ansible.cfg`. All of it is copied, as regular files only, into
`.gcmschange/sealed/<change>/<hash>/`, hashed there, and every run (plan, apply,
verification, idempotence, rollback, resume) reads that copy and nothing else. So an edit
after approval either changes the digest (the approvals go stale) or has no effect: the
bytes hashed are the bytes that run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from gcmschange import gitrepo
from gcmschange.errors import InvalidInputError
from gcmschange.execution import ansiblecfg
from gcmschange.paths import state_dir
from gcmschange.plan import requirements

# Top-level paths a run may read, besides `inventories/<env>/` (a missing one is fine).
SEALED = (
    "estate.yml",
    "ansible.cfg",
    "requirements.yml",
    "playbooks",
    "roles",
    "collections",
    "library",
    "filter_plugins",
    "module_utils",
    "templates",
    "verify",
)
# Never part of what runs: caches and byte code a test run leaves behind.
SKIPPED = frozenset({"__pycache__", ".pytest_cache"})


def read_by_runs(root: Path, code_from: str | None = None) -> tuple[str, ...]:
    """The repository's folders and files a run reads (besides an environment's inventory):
    `SEALED`, and the folders the repository's own ansible.cfg names (roles_path =
    vendor_roles:roles, ...), which the run's ansible.cfg pins inside the copy. As the
    working tree holds them, or commit `code_from`."""
    if code_from:
        cfg = gitrepo.files_at(root, code_from, ["ansible.cfg"]).get("ansible.cfg")
    else:
        own = root / "ansible.cfg"
        cfg = own.read_bytes() if own.is_file() else None
    text = cfg.decode("utf-8", errors="replace") if cfg is not None else None
    return tuple(dict.fromkeys((*SEALED, *ansiblecfg.folders_named(text))))


@dataclass(frozen=True)
class Sealed:
    root: Path  # the private copy: run from here, never from the working tree
    files: tuple[tuple[str, str], ...]  # (relative path, sha256), sorted


def _walk(root: Path, name: str) -> list[Path]:
    top = root / name
    try:
        mode = top.lstat().st_mode
    except FileNotFoundError:
        return []
    if not stat.S_ISDIR(mode):
        return [top]
    found: list[Path] = []
    for folder, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
        for d in dirs:
            if (Path(folder) / d).is_symlink():
                found.append(Path(folder) / d)  # refused below: links are not followed
        found += [Path(folder) / f for f in sorted(files)]
    return found


def _copy(root: Path, path: Path, dest: Path) -> tuple[str, str]:
    rel = path.relative_to(root).as_posix()
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        raise InvalidInputError(
            f"{rel}: a symbolic link; the sealed run copies regular files only "
            "(copy the target in, or point roles_path at it)"
        )
    if not stat.S_ISREG(mode):
        raise InvalidInputError(f"{rel}: not a regular file (a FIFO, socket or device)")
    target = dest / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target, follow_symlinks=False)
    if mode & 0o111:
        target.chmod(0o700)  # a module or script keeps its executable bit
    return rel, hashlib.sha256(target.read_bytes()).hexdigest()


def _from_commit(root: Path, rev: str, names: list[str], dest: Path) -> list[tuple[str, str]]:
    """The files under `names` as commit `rev` holds them (regular files only)."""
    files = gitrepo.files_at(root, rev, names)
    for rel, data in files.items():
        if SKIPPED & set(Path(rel).parts):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return [(rel, hashlib.sha256(data).hexdigest()) for rel, data in files.items()]


def seal(root: Path, change_id: str, environment: str, code_from: str | None = None) -> Sealed:
    """Copy what a run of `change_id` in `environment` may read, then hash the copy: from the
    working tree, or with `code_from`, from that commit (a merge request's plan runs the
    target branch's code with the merge request's change data)."""
    work = state_dir(root) / "sealed" / change_id
    partial = work / f".partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    names = [*read_by_runs(root, code_from), f"inventories/{environment}"]
    try:
        if code_from is None:
            files = [_copy(root, p, partial) for n in names for p in _walk(root, n)]
        else:
            files = _from_commit(root, code_from, names, partial)
        # Installed into the copy and hashed with it: what requirements.yml pins is part
        # of what approvers approve, and a run loads it from here only.
        files = sorted(files + requirements.install(root, partial))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    digest = hashlib.sha256(repr(files).encode()).hexdigest()[:24]
    final = work / digest
    if final.is_dir() and _holds(final, files):
        shutil.rmtree(partial)  # the same bytes were sealed before: keep that copy
    else:
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
    return Sealed(final, tuple(files))


def _holds(folder: Path, files: list[tuple[str, str]]) -> bool:
    """A copy sealed earlier still holds exactly these bytes (nobody edited it since)."""
    found = sorted(
        (p.relative_to(folder).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
    )
    return found == files
