"""The one place gcmschange talks to git (through GitPython): thin functions, no state.

Each function opens the repository at `root`, does one thing, closes it and returns plain
values; git failures become `ExternalError` naming the repository and what was attempted.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import git

from gcmschange.errors import ExternalError


@dataclass(frozen=True)
class Author:
    name: str
    email: str


@contextlib.contextmanager
def _repo(root: Path) -> Iterator[git.Repo]:
    """The repository at `root`, closed on the way out.

    Reading an object starts `git cat-file` processes that live as long as the Repo does.
    A Repo is part of a reference cycle, so it is not freed when the last name for it goes
    but by the garbage collector, whenever that runs, and it finalizes the cycle in no set
    order: the process can be found still running, its pipes open, before GitPython's own
    finalizer stops it.
    """
    try:
        repo = git.Repo(root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise ExternalError(f"{root}: not a git repository") from exc
    with repo:
        yield repo


def is_repo(root: Path) -> bool:
    try:
        git.Repo(root).close()
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return False
    return True


def head_sha(root: Path) -> str:
    """The commit HEAD points at; an empty repository has none and says so."""
    with _repo(root) as repo:
        try:
            return str(repo.head.commit.hexsha)
        except ValueError as exc:
            raise ExternalError(f"{root}: the repository has no commit yet") from exc


def _relative(root: Path, path: Path) -> str:
    if not path.is_absolute():
        return str(path)
    return str(path.resolve().relative_to(Path(root).resolve()))


def last_author(root: Path, path: Path) -> Author | None:
    """Author of the last commit touching `path`, or None if no commit touches it."""
    if not is_repo(root):
        return None
    with _repo(root) as repo:
        try:
            commit = next(repo.iter_commits(paths=_relative(root, path), max_count=1), None)
        except (git.GitCommandError, ValueError):
            return None  # an empty repository: nothing has been committed, so nobody authored it
        if commit is None:
            return None
        return Author(name=str(commit.author.name or ""), email=str(commit.author.email or ""))


def commit_paths(root: Path, paths: Sequence[Path], message: str) -> str:
    """Commit exactly `paths` (nothing else the user has staged) and return the new sha."""
    rel = [_relative(root, p) for p in paths]
    with _repo(root) as repo:
        try:
            repo.git.add("--", *rel)
            # `commit -- paths` takes only these paths, so unrelated staged work stays staged.
            repo.git.commit("-q", "-m", message, "--", *rel)
        except git.GitCommandError as exc:
            detail = (exc.stderr or exc.stdout or "").strip()
            raise ExternalError(f"{root}: git commit of {', '.join(rel)} failed: {detail}") from exc
        return str(repo.head.commit.hexsha)


def resolve_commit(root: Path, rev: str) -> str | None:
    """The commit `rev` names, or None when the repository has no such revision."""
    with _repo(root) as repo:
        try:
            return str(repo.commit(rev).hexsha)
        except (git.BadName, git.BadObject, ValueError):
            return None


def merge_base(root: Path, a: str, b: str) -> str | None:
    """The best common ancestor of `a` and `b`, or None when they share no history."""
    with _repo(root) as repo:
        try:
            bases = repo.merge_base(a, b)
        except git.GitCommandError:
            return None
        return str(bases[0].hexsha) if bases else None


def export_tree(root: Path, rev: str, dest: Path, paths: Sequence[str] | None = None) -> None:
    """Write the files under `paths` (top-level names; None: all) as they are at `rev`.

    Symlinks and submodules are left out: an exported tree is read, never followed out.
    """
    with _repo(root) as repo:
        tree = _tree(repo, root, rev)
        for name in [str(entry.name) for entry in tree] if paths is None else paths:
            for blob in _files_under(tree, name):
                # Never a crafted path that climbs out of `dest`.
                if ".." in Path(str(blob.path)).parts:
                    continue
                target = dest / str(blob.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(blob.data_stream.read())


def _tree(repo: git.Repo, root: Path, rev: str) -> git.Tree:
    try:
        return repo.commit(rev).tree
    except (git.BadName, git.BadObject, ValueError) as exc:
        raise ExternalError(f"{root}: no revision {rev}") from exc


def _files_under(tree: git.Tree, name: str) -> list[git.Blob]:
    """The regular files at `name` (a file or a folder) in `tree`: symlinks and submodules
    are left out, so what is read from a commit is never followed out of it."""
    try:
        item = tree / name
    except KeyError:
        return []
    if isinstance(item, git.Blob):
        blobs = [item]
    elif isinstance(item, git.Tree):
        blobs = [b for b in item.traverse() if isinstance(b, git.Blob)]
    else:
        return []
    return [b for b in blobs if b.mode & 0o170000 == 0o100000]


# --- lock refs (used by locks.py): a lock is a ref on a remote, created by an atomic push ---

REMOTE_TIMEOUT_S = 30


@dataclass(frozen=True)
class RefUpdate:
    ref: str
    new: str  # the commit to point the ref at; "" deletes it
    expect: str  # the value the remote must hold now; "" means the ref must not exist


@dataclass(frozen=True)
class PushOutcome:
    ok: bool
    rejected: dict[str, str]  # ref -> git's reason, for refs the remote refused
    unreachable: str  # why the remote could not be reached; "" when it was


def _git(root: Path, *args: str) -> tuple[int, str, str]:
    """Run git in `root` and return (exit code, stdout, stderr) without raising."""
    with _repo(root) as repo:
        status, out, err = repo.git.execute(
            ["git", *args],
            with_extended_output=True,
            with_exceptions=False,
            kill_after_timeout=REMOTE_TIMEOUT_S,
        )
    return int(status or 0), str(out), str(err)


def push_leased(root: Path, remote: str, updates: Sequence[RefUpdate]) -> PushOutcome:
    """One atomic push of `updates`, each leased on its expected value: all or nothing."""
    leases = [f"--force-with-lease={u.ref}:{u.expect}" for u in updates]
    specs = [f"{u.new}:{u.ref}" if u.new else f":{u.ref}" for u in updates]
    code, out, err = _git(root, "push", "--porcelain", "--atomic", *leases, remote, *specs)
    rejected: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] == "!":
            rejected[parts[1].split(":", 1)[1]] = parts[2].strip()
    if code == 0:
        return PushOutcome(True, {}, "")
    if rejected:
        return PushOutcome(False, rejected, "")
    return PushOutcome(False, {}, _first_error(err) or f"git push exited {code}")


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if ln.startswith(("fatal:", "error:", "ssh:"))]
    return "; ".join((useful or lines)[:2])


def remote_refs(root: Path, remote: str, prefix: str) -> dict[str, str]:
    """ref -> sha for the remote's refs under `prefix`; raise when the remote is unreachable."""
    code, out, err = _git(root, "ls-remote", "--refs", remote, f"{prefix}*")
    if code != 0:
        raise ExternalError(f"remote {remote!r} unreachable: {_first_error(err)}")
    refs = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref:
            refs[ref.strip()] = sha.strip()
    return refs


def fetch_objects(root: Path, remote: str, refs: Sequence[str]) -> None:
    """Fetch the objects of `refs` without creating or moving any local ref."""
    if not refs:
        return
    code, _out, err = _git(root, "fetch", "-q", "--no-tags", "--no-write-fetch-head", remote, *refs)
    if code != 0:
        raise ExternalError(
            f"remote {remote!r}: cannot fetch {len(refs)} ref(s): {_first_error(err)}"
        )


def commit_message(root: Path, sha: str) -> str | None:
    code, out, _err = _git(root, "log", "-1", "--format=%B", sha)
    return out if code == 0 else None


def has_remote(root: Path, remote: str) -> bool:
    with _repo(root) as repo:
        return remote in [r.name for r in repo.remotes]


def init_with_everything(
    root: Path, message: str, branch: str = "main", later: Sequence[str] = ()
) -> str:
    """Make `root` a new repository on `branch` whose first commit holds every file in it but
    the top-level `later` ones, which a second commit adds (one commit if `later` is empty)."""
    try:
        with git.Repo.init(root, initial_branch=branch) as repo:
            if not _has_identity(repo):
                # A fresh machine (CI) may have no git identity: this repository gets its own.
                with repo.config_writer() as config:
                    config.set_value("user", "name", "gcmschange workspace")
                    config.set_value("user", "email", "workspace@gcmschange.invalid")
            repo.git.add("-A", "--", ".", *(f":(exclude){name}" for name in later))
            repo.git.commit("-q", "-m", message)
            present = [name for name in later if (root / name).exists()]
            if present:
                repo.git.add("-A", "--", *present)
                repo.git.commit("-q", "-m", f"{message}: {', '.join(present)}")
            return str(repo.head.commit.hexsha)
    except git.GitCommandError as exc:
        detail = (exc.stderr or exc.stdout or "").strip()
        raise ExternalError(f"{root}: cannot create the repository: {detail}") from exc


def add_bare_origin(root: Path, origin: Path, name: str = "origin", branch: str = "main") -> None:
    """Create a bare repository at `origin`, add it as remote `name` and push every branch."""
    try:
        git.Repo.init(origin, bare=True, initial_branch=branch).close()
        with _repo(root) as repo:
            repo.create_remote(name, str(origin))
            repo.git.push("-q", name, "--all")
            repo.git.remote("set-head", name, "--auto")
    except git.GitCommandError as exc:
        detail = _first_error(str(exc.stderr or exc.stdout or ""))
        raise ExternalError(f"{root}: cannot set up remote {name} at {origin}: {detail}") from exc


def _has_identity(repo: git.Repo) -> bool:
    if os.environ.get("GIT_AUTHOR_NAME") and os.environ.get("GIT_COMMITTER_NAME"):
        return True
    reader = repo.config_reader()
    return bool(reader.get_value("user", "name", "")) and bool(
        reader.get_value("user", "email", "")
    )


# --- commits that live only on refs of their own (lock refs, audit anchors) ---


def make_commit(
    root: Path, message: str, parent: str = "", files: dict[str, bytes] | None = None
) -> str:
    """A commit on no branch: `files` as a flat tree (the empty tree when None), `message`,
    on top of `parent` when there is one. A lock is a parentless one of the empty tree."""
    with tempfile.TemporaryDirectory(prefix="gcms-commit-") as tmp:
        rows = []
        for name, data in sorted((files or {}).items()):
            path = Path(tmp) / "blob"
            path.write_bytes(data)
            code, blob, err = _git(root, "hash-object", "-w", str(path))
            if code != 0:
                raise ExternalError(f"{root}: cannot store {name}: {err.strip()}")
            rows.append(f"100644 blob {blob.strip()}\t{name}\n")
        listing = Path(tmp) / "tree"
        listing.write_text("".join(rows), encoding="utf-8")
        with listing.open("rb") as stdin, _repo(root) as repo:
            status, tree, err = repo.git.execute(
                ["git", "mktree"], istream=stdin, with_extended_output=True, with_exceptions=False
            )
    if status != 0:
        raise ExternalError(f"{root}: cannot write a tree: {str(err).strip()}")
    args = ["commit-tree", str(tree).strip(), "-m", message, *(["-p", parent] if parent else [])]
    code, sha, err = _git(root, *args)
    if code != 0:
        raise ExternalError(f"{root}: cannot create a commit: {err.strip()}")
    return sha.strip()


def file_at(root: Path, sha: str, name: str) -> bytes | None:
    """The bytes of `name` in commit `sha`'s tree, None when it has no such file."""
    with _repo(root) as repo:
        try:
            blob = repo.commit(sha).tree / name
        except (KeyError, ValueError, git.BadName):
            return None
        data: bytes = blob.data_stream.read()
        return data


def chain_messages(root: Path, sha: str) -> list[str]:
    """The messages of `sha` and its first-parent ancestors, newest first."""
    code, out, err = _git(root, "log", "--first-parent", "--format=%B%x00", sha)
    if code != 0:
        raise ExternalError(f"{root}: cannot read the commits of {sha[:12]}: {err.strip()}")
    return [m.strip() for m in out.split("\0") if m.strip()]


# --- trusted history (used by rules.trusted and the gate) ---


def files_at(root: Path, rev: str, names: Sequence[str]) -> dict[str, bytes]:
    """The regular files at `rev` under each of `names` (a file or a folder), by path."""
    with _repo(root) as repo:
        tree = _tree(repo, root, rev)
        return {
            str(blob.path): blob.data_stream.read()
            for name in names
            for blob in _files_under(tree, name)
        }


def first_parent_line(root: Path, base: str, head: str) -> list[str]:
    """Commits on `head`'s first-parent line after `base`, oldest first."""
    code, out, err = _git(root, "rev-list", "--first-parent", "--reverse", f"{base}..{head}")
    if code != 0:
        raise ExternalError(f"{root}: cannot list {base[:12]}..{head}: {err.strip()}")
    return out.split()


def arrival(root: Path, head: str, path: str) -> str | None:
    """The commit on `head`'s first-parent line that brought `path` in (a merge or a direct
    commit), or None when `path` is not in `head`'s history."""
    code, out, _err = _git(
        root, "log", "--first-parent", "--diff-filter=A", "--format=%H", head, "--", path
    )
    shas = out.split() if code == 0 else []
    return shas[-1] if shas else None


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    why: str  # "author of 1a2b3c4d5e6f" / "committer of …"


def people_of(root: Path, revs: str, path: str) -> list[Person]:
    """Every author and committer of every commit in `revs` (a commit's history, or a range
    `a..b`) that touched `path`."""
    fmt = "%H%x00%an%x00%ae%x00%cn%x00%ce"
    code, out, err = _git(root, "log", f"--format={fmt}", revs, "--", path)
    if code != 0:
        raise ExternalError(f"{root}: cannot read the history of {path}: {err.strip()}")
    found: list[Person] = []
    for line in out.splitlines():
        parts = line.split("\0")
        if len(parts) != 5:
            continue
        sha, an, ae, cn, ce = parts
        found.append(Person(an, ae, f"authored {sha[:12]}, which touched {path}"))
        found.append(Person(cn, ce, f"committed {sha[:12]}, which touched {path}"))
    return found


def commit_time(root: Path, sha: str) -> datetime:
    """When `sha` was committed (on a protected branch: when it landed there)."""
    with _repo(root) as repo:
        try:
            return repo.commit(sha).committed_datetime.astimezone(UTC)
        except (git.BadName, git.BadObject, ValueError) as exc:
            raise ExternalError(f"{root}: no commit {sha}") from exc


def changed_paths(root: Path, base: str) -> tuple[list[str], list[str]]:
    """The paths that differ between `base` and the working tree: (tracked ones, committed
    since or edited; new ones, untracked and not ignored)."""
    code, out, err = _git(root, "diff", "--name-only", "--no-renames", base, "--")
    if code != 0:
        raise ExternalError(f"{root}: cannot compare with {base[:12]}: {err.strip()}")
    _code, untracked, _err = _git(root, "ls-files", "--others", "--exclude-standard")
    return sorted(set(out.split("\n")) - {""}), sorted(set(untracked.split("\n")) - {""})
