"""GitLab merge-request approvals as a second, optional `ApprovalSource` (off by default).

A GitLab approval carries no digest or environment; what binds it to the plan is the
merge request's head commit, which must be the commit the repository is at (GitLab's
"reset approvals on push" keeps approvals on the head). People are matched to the
approvers file by GitLab username or e-mail (an alias on their key line), and such an
approval counts for any one role its person holds. python-gitlab is imported only in
`connect`, so nothing else pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from gcmschange import gitrepo
from gcmschange.approvals.statements import (
    ROLE_NOT_HELD,
    SELF_APPROVAL,
    STALE,
    UNKNOWN_KEY,
    VALID,
    Expectation,
    Verdict,
)
from gcmschange.errors import ExternalError
from gcmschange.rules.approvers import Approvers


# The slice of python-gitlab's objects we read, as read-only members so fakes fit.
class MergeRequestApprovals(Protocol):
    @property
    def approved_by(self) -> list[dict[str, Any]]: ...


class ApprovalsManager(Protocol):
    def get(self) -> MergeRequestApprovals: ...


class MergeRequest(Protocol):
    @property
    def sha(self) -> str: ...

    @property
    def author(self) -> dict[str, Any]: ...

    @property
    def approvals(self) -> ApprovalsManager: ...


class MergeRequests(Protocol):
    def get(self, iid: int) -> MergeRequest: ...


class Project(Protocol):
    @property
    def mergerequests(self) -> MergeRequests: ...


@dataclass(frozen=True)
class _Head:
    mr_sha: str  # the merge request's head commit
    repo_sha: str  # the commit the repository is at
    opener: str | None  # the principal who opened the merge request


@dataclass(frozen=True)
class GitLabSource:
    project: Project
    mr_iid: int
    name: str = "gitlab"

    def collect(self, root: Path, approvers: Approvers, want: Expectation) -> tuple[Verdict, ...]:
        mr = self.project.mergerequests.get(self.mr_iid)
        head = _Head(
            mr.sha, gitrepo.head_sha(root), approvers.identify(str(mr.author.get("username", "")))
        )
        people = [entry.get("user", {}) for entry in mr.approvals.get().approved_by]
        return tuple(self._verdict(user, head, approvers, want) for user in people)

    def _verdict(
        self, user: dict[str, Any], head: _Head, approvers: Approvers, want: Expectation
    ) -> Verdict:
        username = str(user.get("username", ""))
        ref = f"gitlab:!{self.mr_iid}:{username}"
        who = approvers.identify(username, str(user.get("email") or ""))
        entry = approvers.by_alias(who) if who else None
        if who is None or entry is None:
            reason = f"GitLab user {username!r} is not in the approvers file"
            return Verdict(self.name, ref, UNKNOWN_KEY, reason, None, ())
        status, reason = VALID, "valid"
        if head.mr_sha != head.repo_sha:
            status = STALE
            reason = (
                f"merge request !{self.mr_iid} is at {head.mr_sha[:12]}, "
                f"the repository at {head.repo_sha[:12]}"
            )
        elif who in want.requesters or who == head.opener:
            status = SELF_APPROVAL
            why = want.requesters.get(who, f"{who} opened merge request !{self.mr_iid}")
            reason = f"self-approval: {why}"
        elif not entry.roles:
            status, reason = ROLE_NOT_HELD, f"{who} holds no role in the approvers file"
        return Verdict(self.name, ref, status, reason, who, entry.roles)


def connect(url: str, token: str, project: str, mr_iid: int) -> GitLabSource:
    """A source reading merge request `project!mr_iid` on the GitLab at `url`."""
    import gitlab

    try:
        client = gitlab.Gitlab(url, private_token=token)
        found = client.projects.get(project)
    except gitlab.exceptions.GitlabError as exc:
        raise ExternalError(f"GitLab {url}: cannot read project {project}: {exc}") from exc
    return GitLabSource(cast(Project, found), mr_iid)
