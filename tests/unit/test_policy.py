"""Policy reading and queries: roles per environment and type, freezes, window limits."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gcmschange.errors import InvalidInputError
from gcmschange.rules.policy import expand_roles, in_freeze, load_policy, required_roles
from gcmschange.validate.load import load_change

TORONTO = ZoneInfo("America/Toronto")


def test_prod_normal_needs_each_owner_and_the_board(estate_repo: Path) -> None:
    policy = load_policy(estate_repo)
    change = dataclasses.replace(load_change(estate_repo, "CHG-LAB-0001"), environment="prod")
    assert required_roles(policy, change) == ("owner:portal", "owner:case_api", "change-board")


def test_lab_standard_needs_nobody(estate_repo: Path) -> None:
    policy = load_policy(estate_repo)
    change = dataclasses.replace(load_change(estate_repo, "CHG-LAB-0002"), type="standard")
    assert required_roles(policy, change) == ()


def test_expand_roles_keeps_order_without_repeats() -> None:
    assert expand_roles(("owner", "change-board", "owner"), ("a", "b")) == (
        "owner:a",
        "owner:b",
        "change-board",
    )


def test_year_end_freeze_covers_prod_not_lab(estate_repo: Path) -> None:
    policy = load_policy(estate_repo)
    christmas = datetime(2026, 12, 25, 12, tzinfo=TORONTO)
    freeze = in_freeze(policy, "prod", christmas)
    assert freeze is not None
    assert freeze.start == datetime(2026, 12, 18, tzinfo=TORONTO)
    assert in_freeze(policy, "lab", christmas) is None
    assert in_freeze(policy, "prod", freeze.end) is None  # the end is exclusive


def test_window_limits_and_conflict_levels(estate_repo: Path) -> None:
    policy = load_policy(estate_repo)
    assert policy.max_window("prod") == timedelta(hours=6)
    assert policy.min_notice("prod") == timedelta(hours=72)
    assert policy.min_notice("lab") is None
    assert policy.conflict_level("prod") == "error"
    assert policy.conflict_level("lab") == "warning"
    assert policy.emergency.review_due_days == 5
    assert policy.approval_expiry_days == 14


def test_missing_policy_is_a_one_line_reason(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"policy\.yml: file not found"):
        load_policy(tmp_path)
