"""The CI context: built from a plain mapping, exactly as GitLab's predefined variables arrive."""

from __future__ import annotations

import pytest

from gcmschange.ci import env as cienv
from gcmschange.errors import ExitCode, InvalidInputError

SHA = "3b5f1c0e9d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c"
BASE = "a" * 40
MR_PIPELINE = {
    "CI": "true",
    "GITLAB_CI": "true",
    "CI_SERVER_URL": "https://gitlab.gcms.example",
    "CI_PROJECT_ID": "42",
    "CI_PROJECT_PATH": "platform/gitops",
    "CI_PIPELINE_ID": "1001",
    "CI_PIPELINE_URL": "https://gitlab.gcms.example/platform/gitops/-/pipelines/1001",
    "CI_PIPELINE_SOURCE": "merge_request_event",
    "CI_JOB_NAME": "plan",
    "CI_COMMIT_SHA": SHA,
    "CI_DEFAULT_BRANCH": "main",
    "CI_MERGE_REQUEST_IID": "7",
    "CI_MERGE_REQUEST_DIFF_BASE_SHA": BASE,
    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "change/CHG-LAB-0001",
    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
    "GITLAB_USER_LOGIN": "rm-alice",
    "GITLAB_USER_EMAIL": "alice@gcms.example",
    "GITLAB_USER_NAME": "Alice",
}


def test_outside_ci_everything_is_empty() -> None:
    ctx = cienv.from_environ({"HOME": "/root", "PATH": "/usr/bin"})
    assert ctx == cienv.CiContext()
    assert not ctx.in_ci
    assert ctx.actor is None
    assert ctx.diff_base is None
    assert ctx.audit_details() == {}


def test_merge_request_pipeline() -> None:
    ctx = cienv.from_environ(MR_PIPELINE)
    assert ctx.in_ci
    assert ctx.is_merge_request
    assert ctx.mr_iid == 7
    assert ctx.diff_base == BASE
    assert not ctx.on_default_branch  # GitLab leaves CI_COMMIT_BRANCH unset for MRs
    assert ctx.actor == "gitlab:rm-alice"
    assert ctx.project_path == "platform/gitops"
    assert ctx.audit_details() == {
        "ci_pipeline_id": "1001",
        "ci_pipeline_url": MR_PIPELINE["CI_PIPELINE_URL"],
        "ci_job_name": "plan",
        "ci_commit_sha": SHA,
        "ci_mr_iid": 7,
    }


def test_default_branch_push_measures_from_the_commit_before() -> None:
    env = {k: v for k, v in MR_PIPELINE.items() if "MERGE_REQUEST" not in k}
    env |= {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main", "CI_COMMIT_BEFORE_SHA": BASE}
    ctx = cienv.from_environ(env)
    assert ctx.on_default_branch
    assert not ctx.is_merge_request
    assert ctx.diff_base == BASE


def test_a_new_branch_has_no_diff_base() -> None:
    ctx = cienv.from_environ({"CI_COMMIT_BEFORE_SHA": cienv.NULL_SHA, "CI_COMMIT_BRANCH": "x"})
    assert ctx.diff_base is None


def test_change_id_variable() -> None:
    assert cienv.from_environ({"CHANGE_ID": " CHG-LAB-0003 "}).change_id == "CHG-LAB-0003"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CI_MERGE_REQUEST_IID", "seven", "CI_MERGE_REQUEST_IID='seven': not a merge request"),
        ("CI_MERGE_REQUEST_IID", "0", "CI_MERGE_REQUEST_IID='0': not a merge request"),
        ("CI_COMMIT_SHA", "HEAD", "CI_COMMIT_SHA='HEAD': not a commit SHA"),
        ("CI_MERGE_REQUEST_DIFF_BASE_SHA", "zz", "CI_MERGE_REQUEST_DIFF_BASE_SHA='zz': not a"),
        ("CHANGE_ID", "chg 1; rm -rf /", "CHANGE_ID='chg 1; rm -rf /': not a change id"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        cienv.from_environ({**MR_PIPELINE, name: value})
    assert caught.value.message.startswith(message)
    assert "\n" not in caught.value.message
    assert caught.value.exit_code == ExitCode.FAILURE
