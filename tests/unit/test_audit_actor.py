"""The audit names the GitLab user in CI and the local account elsewhere."""

from __future__ import annotations

import pytest

from gcmschange.audit import trail


def test_ci_job_is_recorded_as_its_gitlab_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv("GITLAB_USER_LOGIN", "rm-alice")
    assert trail.default_actor() == "gitlab:rm-alice"


def test_malformed_ci_variable_falls_back_to_the_local_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv("GITLAB_USER_LOGIN", "rm-alice")
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "not-a-number")
    assert not trail.default_actor().startswith("gitlab:")
