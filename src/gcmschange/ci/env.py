"""The one reader of GitLab CI variables (`CI_*`, `GITLAB_*`): a frozen `CiContext`.

CLI modules call `from_environ()` once and hand the values they need (actor, diff base,
merge request, project) to the core, so no core module depends on where it runs and tests
build a context from a plain dict. Outside CI every field is empty and `in_ci` is false.

Variables read are those GitLab documents as predefined
(https://docs.gitlab.com/ee/ci/variables/predefined_variables.html), plus `CHANGE_ID`, the
pipeline variable a person sets to name the change when the changed files cannot.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from gcmschange.errors import InvalidInputError

# GitLab sends forty zeros as the "before" commit of a new branch's first pipeline.
NULL_SHA = "0" * 40
_SHA = re.compile(r"^[0-9a-f]{7,64}$")
# The change-request schema's id pattern (schemas/change-request.schema.json).
CHANGE_ID = re.compile(r"^CHG-[A-Z][A-Z0-9]{1,15}-[0-9]{4,8}$")
MERGE_REQUEST_EVENT = "merge_request_event"
SCHEDULE = "schedule"


@dataclass(frozen=True)
class CiContext:
    """What a pipeline job knows about itself; empty strings where GitLab said nothing."""

    in_ci: bool = False
    server_url: str = ""
    project_id: str = ""
    project_path: str = ""
    pipeline_id: str = ""
    pipeline_url: str = ""
    pipeline_source: str = ""  # push, merge_request_event, schedule, web, ...
    job_name: str = ""
    job_url: str = ""
    commit_sha: str = ""
    commit_before_sha: str = ""
    commit_branch: str = ""  # empty on merge-request and tag pipelines
    default_branch: str = ""
    mr_iid: int | None = None
    mr_diff_base_sha: str = ""
    mr_source_branch: str = ""
    mr_target_branch: str = ""
    user_login: str = ""
    user_email: str = ""
    user_name: str = ""
    environment: str = ""
    change_id: str = ""  # the CHANGE_ID pipeline variable, when a person set one

    @property
    def is_merge_request(self) -> bool:
        return self.mr_iid is not None

    @property
    def on_default_branch(self) -> bool:
        return bool(self.commit_branch) and self.commit_branch == self.default_branch

    @property
    def diff_base(self) -> str | None:
        """The commit a pipeline's changes are measured from.

        Merge requests: GitLab's diff base (the merge base with the target branch). Branch
        pipelines: the commit before the push, unless the branch is new (all zeros).
        """
        if self.mr_diff_base_sha:
            return self.mr_diff_base_sha
        if self.commit_before_sha and self.commit_before_sha != NULL_SHA:
            return self.commit_before_sha
        return None

    @property
    def actor(self) -> str | None:
        """Who the audit should name: the GitLab user who started the job, if known."""
        return f"gitlab:{self.user_login}" if self.user_login else None

    def audit_details(self) -> dict[str, Any]:
        """The pipeline coordinates an audit event carries, only those GitLab gave."""
        keys = ("pipeline_id", "pipeline_url", "job_name", "job_url", "commit_sha", "mr_iid")
        body = asdict(self)
        return {f"ci_{k}": body[k] for k in keys if body[k] not in ("", None)}


def _mr_iid(raw: str) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or int(raw) == 0:
        raise InvalidInputError(
            f"CI_MERGE_REQUEST_IID={raw!r}: not a merge request number (a positive integer)"
        )
    return int(raw)


def _sha(name: str, raw: str) -> str:
    if raw and not _SHA.match(raw):
        raise InvalidInputError(f"{name}={raw!r}: not a commit SHA (hexadecimal)")
    return raw


def _change_id(raw: str) -> str:
    value = raw.strip()
    if value and not CHANGE_ID.match(value):
        raise InvalidInputError(
            f"CHANGE_ID={raw!r}: not a change id (expected something like CHG-LAB-0001)"
        )
    return value


def from_environ(environ: Mapping[str, str] | None = None) -> CiContext:
    """The context of the running job (default: this process's environment).

    Raises `InvalidInputError` naming the variable when one holds a value GitLab never sends.
    """
    env = os.environ if environ is None else environ

    def get(name: str) -> str:
        return env.get(name, "").strip()

    return CiContext(
        in_ci=get("GITLAB_CI") == "true" or get("CI") == "true",
        server_url=get("CI_SERVER_URL"),
        project_id=get("CI_PROJECT_ID"),
        project_path=get("CI_PROJECT_PATH"),
        pipeline_id=get("CI_PIPELINE_ID"),
        pipeline_url=get("CI_PIPELINE_URL"),
        pipeline_source=get("CI_PIPELINE_SOURCE"),
        job_name=get("CI_JOB_NAME"),
        job_url=get("CI_JOB_URL"),
        commit_sha=_sha("CI_COMMIT_SHA", get("CI_COMMIT_SHA")),
        commit_before_sha=_sha("CI_COMMIT_BEFORE_SHA", get("CI_COMMIT_BEFORE_SHA")),
        commit_branch=get("CI_COMMIT_BRANCH"),
        default_branch=get("CI_DEFAULT_BRANCH"),
        mr_iid=_mr_iid(get("CI_MERGE_REQUEST_IID")),
        mr_diff_base_sha=_sha(
            "CI_MERGE_REQUEST_DIFF_BASE_SHA", get("CI_MERGE_REQUEST_DIFF_BASE_SHA")
        ),
        mr_source_branch=get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"),
        mr_target_branch=get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME"),
        user_login=get("GITLAB_USER_LOGIN"),
        user_email=get("GITLAB_USER_EMAIL"),
        user_name=get("GITLAB_USER_NAME"),
        environment=get("CI_ENVIRONMENT_NAME"),
        change_id=_change_id(env.get("CHANGE_ID", "")),
    )
