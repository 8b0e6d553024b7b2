"""The pipeline files: they load, and their stages, rules and jobs say what issue 8 asks.

What the rules select for each kind of pipeline is proven by running gitlab-ci-local
(tests/lab/test_pipeline*.py); here, the structure every GitLab would read the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gcmschange import resources
from gcmschange.cli import _load_verbs, app

PROJECT = resources.reference_estate()
TEMPLATE = PROJECT / "ci" / "gcmschange.gitlab-ci.yml"
NEVER_ON = ('$CI_PIPELINE_SOURCE == "schedule"', '$CI_PIPELINE_SOURCE == "merge_request_event"')


class _Loader(yaml.SafeLoader):
    """GitLab's YAML: `!reference [job, key]` is kept as a ("!reference", path) pair."""


def _reference(loader: yaml.SafeLoader, node: yaml.Node) -> tuple[str, list[Any]]:
    assert isinstance(node, yaml.SequenceNode)
    return ("!reference", loader.construct_sequence(node))


_Loader.add_constructor("!reference", _reference)


def _load(path: Path) -> dict[str, Any]:
    loader = _Loader(path.read_text(encoding="utf-8"))
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def ci() -> dict[str, Any]:
    return _load(TEMPLATE)


def _rules(ci: dict[str, Any], job: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for rule in ci[job]["rules"]:
        if isinstance(rule, tuple):  # !reference [.anchor, rules]
            out += ci[rule[1][0]][rule[1][1]]
        else:
            out.append(rule)
    return out


def _script(ci: dict[str, Any], job: str) -> str:
    return "\n".join(ci[job]["script"])


def test_root_pipeline_includes_the_template() -> None:
    root = _load(PROJECT / ".gitlab-ci.yml")
    assert {"local": "ci/gcmschange.gitlab-ci.yml"} in root["include"]
    assert root["variables"]["GCMS_ENV"] == "lab"


def test_stages_in_order(ci: dict[str, Any]) -> None:
    assert ci["stages"] == ["validate", "plan", "approve", "apply", "verify"]
    jobs = {k: v["stage"] for k, v in ci.items() if isinstance(v, dict) and "stage" in v}
    assert jobs == {
        "validate": "validate",
        "plan": "plan",
        "approval-gate": "approve",
        "apply": "apply",
        "verify": "verify",
        "pages": ".post",
        "drift": "verify",
    }


def test_validate_reports_use_formats_validate_has(ci: dict[str, Any]) -> None:
    from gcmschange.cli.validate import FORMATS

    reports = ci["validate"]["artifacts"]["reports"]
    script = _script(ci, "validate")
    for kind, fmt in (("junit", "junit"), ("codequality", "codequality")):
        assert fmt in FORMATS
        assert f"--output {fmt} > {reports[kind]}" in script


def test_apply_is_manual_gated_serialised_and_only_on_the_default_branch(
    ci: dict[str, Any],
) -> None:
    apply = ci["apply"]
    assert apply["resource_group"] == "apply-$GCMS_ENV"
    assert apply["environment"]["name"] == "$GCMS_ENV"
    assert apply["allow_failure"] is False
    rules = _rules(ci, "apply")
    assert rules[0]["when"] == "never"
    assert all(cond in rules[0]["if"] for cond in NEVER_ON)
    for rule in rules[1:]:
        assert rule["when"] == "manual"
        assert rule["if"].startswith("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH")
    script = apply["script"]
    gate = next(i for i, s in enumerate(script) if "approvals" in s)
    run = next(i for i, s in enumerate(script) if 'gcmschange apply "' in s)
    assert "--gate" in script[gate]
    assert gate < run


def test_verify_follows_apply_with_the_same_rules(ci: dict[str, Any]) -> None:
    assert ci["verify"]["needs"] == ["apply"]
    assert [r.get("if") for r in _rules(ci, "verify")] == [r.get("if") for r in _rules(ci, "apply")]
    assert ci["verify"]["environment"] == {"name": "$GCMS_ENV", "action": "verify"}


def test_no_job_holds_a_signing_key(ci: dict[str, Any]) -> None:
    """Approvals are signed on approvers' own machines: a key in CI signs for whoever clicks."""
    assert "approve" not in ci
    for name, job in ci.items():
        if isinstance(job, dict) and "script" in job:
            assert "gcmschange approve " not in _script(ci, name), name
            assert "GCMS_APPROVER_KEY" not in _script(ci, name), name


def test_plan_runs_without_the_gitlab_token(ci: dict[str, Any]) -> None:
    script = _script(ci, "plan")
    assert "env -u GCMS_GITLAB_TOKEN -u CI_JOB_TOKEN gcmschange plan" in script


def test_plan_only_for_merge_requests_touching_changes(ci: dict[str, Any]) -> None:
    assert _rules(ci, "plan") == [
        {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"', "changes": ["changes/**/*"]}
    ]
    script = _script(ci, "plan")
    assert "--output markdown" in script
    assert "gcmschange ci note" in script
    assert ci["plan"]["artifacts"]["paths"] == ["plans/"]


def test_pages_and_drift(ci: dict[str, Any]) -> None:
    assert ci["pages"]["artifacts"]["paths"] == ["public"]
    assert "gcmschange site -o public" in _script(ci, "pages")
    (drift_rule,) = _rules(ci, "drift")
    assert drift_rule["if"].startswith('$CI_PIPELINE_SOURCE == "schedule"')
    assert ci["drift"]["artifacts"]["reports"]["junit"] in _script(ci, "drift")


def test_every_gcmschange_command_in_the_jobs_exists(ci: dict[str, Any]) -> None:
    _load_verbs()
    text = yaml.safe_dump({k: v for k, v in ci.items() if isinstance(v, dict)}, width=10_000)
    used = set(re.findall(r"gcmschange ([a-z]+)(?: ([a-z]+))?", text))
    assert used
    for verb, sub in used:
        command = app.root.commands.get(verb)
        assert command is not None, f"gcmschange {verb} is not a command"
        assert "not yet available" not in (command.help or ""), f"gcmschange {verb}"
        group = getattr(command, "commands", None)
        if group is not None and sub:
            assert sub in group, f"gcmschange {verb} {sub} is not a command"
