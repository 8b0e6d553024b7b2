"""The rules a change is judged by, read from where the branch under judgement cannot change them.

The rules are `approvers`, `policy.yml` and `catalogue/` (the schemas ship in the package).
A gate that read them from the working tree would let a merge request add its author's key,
swap an approver's key, lower the policy or make its change "standard". So they are read from
a trusted commit, the **trust ref**, chosen in this order:

1. `--trust-ref REV`, or `GCMS_TRUST_REF`: whatever the operator names.
2. In a merge-request pipeline: GitLab's diff base (the target branch at the merge base).
3. When the change file is on the protected line (the first-parent history of the default
   branch, `origin/<default>` or else `<default>`): the first parent of the commit that
   brought the change file onto that line. The rules a change was merged under are the ones
   before its merge, so a merge request cannot carry its own rules in with it.
4. Otherwise (a branch, a draft): the merge base of HEAD with the protected line.

No trust ref, no gate: it fails closed.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from gcmschange import gitrepo
from gcmschange.ci import env as cienv
from gcmschange.errors import InvalidInputError
from gcmschange.paths import state_dir
from gcmschange.rules.approvers import Approvers, load_approvers
from gcmschange.rules.policy import Policy, load_policy

RULE_PATHS = ("approvers", "policy.yml", "catalogue")
DEFAULT_BRANCH = "main"
TREE = "the working tree"


@dataclass(frozen=True)
class RuleSet:
    """The bytes of every rules file, as one commit or the working tree holds them."""

    origin: str  # a commit sha, or TREE
    files: Mapping[str, bytes]

    @cached_property
    def digest(self) -> str:
        sha = hashlib.sha256(b"gcmschange-rules-v1\0")
        for name in sorted(self.files):
            sha.update(f"{name}\0{hashlib.sha256(self.files[name]).hexdigest()}\0".encode())
        return sha.hexdigest()

    def differing(self, other: RuleSet) -> tuple[str, ...]:
        """The files that differ between the two (added, removed or edited)."""
        names = set(self.files) | set(other.files)
        return tuple(sorted(n for n in names if self.files.get(n) != other.files.get(n)))


def at_commit(root: Path, sha: str) -> RuleSet:
    return RuleSet(sha, gitrepo.files_at(root, sha, RULE_PATHS))


def in_tree(root: Path) -> RuleSet:
    """The working tree's rules; a link or special file among them is refused, not followed."""
    found: dict[str, bytes] = {}
    for name in RULE_PATHS:
        path = root / name
        paths = sorted(p for p in path.rglob("*")) if path.is_dir() else [path]
        for item in paths:
            try:
                mode = item.lstat().st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(mode):
                continue
            rel = item.relative_to(root).as_posix()
            if not stat.S_ISREG(mode):
                raise InvalidInputError(f"{rel}: a rules file must be a regular file, not a link")
            found[rel] = item.read_bytes()
    return RuleSet(TREE, found)


@dataclass(frozen=True)
class TrustRef:
    sha: str
    how: str  # why this commit is trusted, for every message that names it

    def describe(self) -> str:
        return f"{self.sha[:12]} ({self.how})"


def _protected_line(root: Path) -> str | None:
    branch = cienv.from_environ().default_branch or DEFAULT_BRANCH
    for ref in (f"refs/remotes/origin/{branch}", f"refs/heads/{branch}"):
        if gitrepo.resolve_commit(root, ref):
            return ref
    return None


def resolve(root: Path, change_path: str | None, explicit: str | None = None) -> TrustRef:
    """The trust ref (see the module's docstring for the order); fails closed."""
    chosen = explicit or os.environ.get("GCMS_TRUST_REF") or None
    if chosen:
        sha = gitrepo.resolve_commit(root, chosen)
        if sha is None:
            raise InvalidInputError(f"trust ref {chosen!r}: no such commit in {root}")
        return TrustRef(sha, f"named by {'--trust-ref' if explicit else 'GCMS_TRUST_REF'}")
    ci = cienv.from_environ()
    if ci.is_merge_request and ci.mr_diff_base_sha:
        sha = gitrepo.resolve_commit(root, ci.mr_diff_base_sha)
        if sha is None:
            raise InvalidInputError(
                f"CI_MERGE_REQUEST_DIFF_BASE_SHA={ci.mr_diff_base_sha}: not in this clone "
                "(fetch the target branch: GIT_DEPTH 0)"
            )
        return TrustRef(sha, f"the merge base with {ci.mr_target_branch or 'the target'}")
    line = _protected_line(root)
    if line is None:
        raise InvalidInputError(
            f"{root}: no trust ref: no {DEFAULT_BRANCH} branch to take the rules from; "
            "pass --trust-ref REV (the last commit whose rules you trust)"
        )
    arrived = gitrepo.arrival(root, line, change_path) if change_path else None
    if arrived is not None:
        parent = gitrepo.resolve_commit(root, f"{arrived}^1")
        if parent is None:
            raise InvalidInputError(
                f"{change_path}: arrived in the first commit of {line}; there are no earlier "
                "rules to judge it by: pass --trust-ref REV"
            )
        return TrustRef(parent, f"{line} before {change_path} arrived in {arrived[:12]}")
    base = gitrepo.merge_base(root, "HEAD", line)
    if base is None:
        raise InvalidInputError(f"{root}: HEAD shares no history with {line}: no trust ref")
    return TrustRef(base, f"the merge base of HEAD with {line}")


@dataclass(frozen=True)
class Rules:
    """One rule set, loaded: what the gate judges approvals with."""

    ruleset: RuleSet
    folder: Path  # a private copy of the files, for ssh-keygen and the loaders
    approvers: Approvers
    policy: Policy


def materialise(root: Path, ruleset: RuleSet) -> Path:
    """The rule set's files in a folder of their own under `.gcmschange/rules/`, written once
    (its name is its digest, so a folder that exists holds exactly these bytes)."""
    folder = state_dir(root) / "rules" / ruleset.digest[:24]
    if folder.is_dir():
        return folder
    partial = folder.with_name(folder.name + f".{os.getpid()}.tmp")
    for name, data in ruleset.files.items():
        target = partial / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    partial.mkdir(parents=True, exist_ok=True)
    try:
        partial.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise
    return folder


def load(root: Path, ruleset: RuleSet, systems: frozenset[str]) -> Rules:
    folder = materialise(root, ruleset)
    where = "" if ruleset.origin == TREE else f" at {ruleset.origin[:12]}"
    try:
        approvers = load_approvers(folder, systems)
        policy = load_policy(folder)
    except InvalidInputError as exc:
        raise InvalidInputError(f"the rules{where}: {exc.message}", exc.problems) from exc
    return Rules(ruleset, folder, approvers, policy)
