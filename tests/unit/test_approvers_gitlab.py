"""The optional GitLab source, with python-gitlab faked at the boundary (no network)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gcmschange import gitrepo
from gcmschange.approvals import gate
from gcmschange.approvals.gitlab_source import GitLabSource
from gcmschange.approvals.statements import Expectation
from gcmschange.rules.approvers import parse_approvers

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHXrrKEeFqcGRDOwj7UF0ad/twMRl4YIIRSPZUTE3Isy"
KEY2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3QfgWAKxQRVLoWk9Jvhzw9cBiiLOYRoGvuAbF5PYgO"
APPROVERS = parse_approvers(
    f"# roles: cab-carol change-board\ncab-carol,carol@gcms.example {KEY}\nrm-alice {KEY2}\n"
)


@dataclass
class FakeApprovals:
    approved_by: list[dict[str, Any]]


@dataclass
class FakeApprovalsManager:
    result: FakeApprovals

    def get(self) -> FakeApprovals:
        return self.result


@dataclass
class FakeMergeRequest:
    sha: str
    author: dict[str, Any]
    approvals: FakeApprovalsManager


@dataclass
class FakeMergeRequests:
    mrs: dict[int, FakeMergeRequest] = field(default_factory=dict)

    def get(self, iid: int) -> FakeMergeRequest:
        return self.mrs[iid]


@dataclass
class FakeProject:
    mergerequests: FakeMergeRequests


def _repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("x")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-qm", "x"], check=True)
    return tmp_path


def _source(sha: str, *users: str, opener: str = "rm-bob") -> GitLabSource:
    approved = FakeApprovals([{"user": {"username": u}} for u in users])
    mr = FakeMergeRequest(sha, {"username": opener}, FakeApprovalsManager(approved))
    return GitLabSource(FakeProject(FakeMergeRequests({7: mr})), 7)


def _want() -> Expectation:
    return Expectation("CHG-1", "prod", "d" * 64, datetime.now(UTC), 14, {"rm-alice": "rm-alice"})


def test_approvals_at_head_count_for_the_roles_their_person_holds(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    verdicts = _source(gitrepo.head_sha(root), "cab-carol").collect(root, APPROVERS, _want())
    assert [(v.status, v.principal, v.roles) for v in verdicts] == [
        ("valid", "cab-carol", ("change-board",))
    ]
    assert gate.SOURCES["file"].name == "file"


def test_each_gitlab_refusal_is_precise(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    head = gitrepo.head_sha(root)
    stale = _source("0" * 40, "cab-carol").collect(root, APPROVERS, _want())
    assert stale[0].status == "stale"
    assert f"repository at {head[:12]}" in stale[0].reason
    people = _source(head, "rm-alice", "mallory").collect(root, APPROVERS, _want())
    assert [(v.status, v.reason) for v in people] == [
        ("self-approval", "self-approval: rm-alice"),
        ("unknown-key", "GitLab user 'mallory' is not in the approvers file"),
    ]
    opener = _source(head, "cab-carol", opener="carol@gcms.example")
    assert opener.collect(root, APPROVERS, _want())[0].reason == (
        "self-approval: cab-carol opened merge request !7"
    )
