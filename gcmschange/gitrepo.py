"""The one place gcmschange talks to git (through GitPython): thin functions, no state.

Each function opens the repository at `root`, does one thing and returns plain values;
git failures become `ExternalError` naming the repository and what was attempted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import git

from gcmschange.errors import ExternalError


@dataclass(frozen=True)
class Author:
    name: str
    email: str


def _repo(root: Path) -> git.Repo:
    try:
        return git.Repo(root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise ExternalError(f"{root}: not a git repository") from exc


def is_repo(root: Path) -> bool:
    try:
        git.Repo(root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return False
    return True


def head_sha(root: Path) -> str:
    """The commit HEAD points at; an empty repository has none and says so."""
    repo = _repo(root)
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
    repo = _repo(root)
    try:
        commit = next(repo.iter_commits(paths=_relative(root, path), max_count=1), None)
    except (git.GitCommandError, ValueError):
        return None  # an empty repository: nothing has been committed, so nobody authored it
    if commit is None:
        return None
    return Author(name=str(commit.author.name or ""), email=str(commit.author.email or ""))


def commit_paths(root: Path, paths: Sequence[Path], message: str) -> str:
    """Commit exactly `paths` (nothing else the user has staged) and return the new sha."""
    repo = _repo(root)
    rel = [_relative(root, p) for p in paths]
    try:
        repo.git.add("--", *rel)
        # `commit -- paths` takes only these paths, so unrelated staged work stays staged.
        repo.git.commit("-q", "-m", message, "--", *rel)
    except git.GitCommandError as exc:
        detail = (exc.stderr or exc.stdout or "").strip()
        raise ExternalError(f"{root}: git commit of {', '.join(rel)} failed: {detail}") from exc
    return str(repo.head.commit.hexsha)
