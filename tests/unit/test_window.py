"""Window and freeze decisions with an injected clock; emergencies pass and are recorded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gcmschange.apply import window
from gcmschange.audit import trail
from gcmschange.errors import GateRefusedError
from gcmschange.rules.policy import Freeze, load_policy
from gcmschange.validate.load import load_change

INSIDE = datetime(2027, 3, 1, 12, tzinfo=UTC)
BEFORE = datetime(2025, 6, 1, 12, tzinfo=UTC)


def test_inside_the_window_passes(estate_repo: Path) -> None:
    change = load_change(estate_repo, "CHG-LAB-0001")
    result = window.check(load_policy(estate_repo), change, INSIDE)
    assert result.passed and not result.emergency_override


def test_outside_the_window_is_refused_and_recorded(estate_repo: Path) -> None:
    change = load_change(estate_repo, "CHG-LAB-0001")
    with pytest.raises(GateRefusedError) as err:
        window.require(estate_repo, change, "d" * 64, BEFORE)
    assert "outside the approved window 2026-01-01T00:00:00-05:00" in err.value.message
    assert trail.read_events(estate_repo)[-1].event == "window.refused"


def test_a_freeze_refuses_a_normal_change(estate_repo: Path) -> None:
    policy = load_policy(estate_repo)
    freeze = Freeze("Lab freeze", BEFORE, datetime(2030, 1, 1, tzinfo=UTC), ("lab",))
    frozen = replace(policy, freezes=(freeze,))
    change = load_change(estate_repo, "CHG-LAB-0001")
    result = window.check(frozen, change, INSIDE)
    assert not result.passed
    assert result.reasons(change) == ("lab is in the freeze 'Lab freeze'",)


def test_an_emergency_passes_outside_its_window_and_says_so(estate_repo: Path) -> None:
    change = replace(load_change(estate_repo, "CHG-LAB-0001"), type="emergency")
    result = window.require(estate_repo, change, "d" * 64, BEFORE)
    assert result.passed and result.emergency_override
    event = trail.read_events(estate_repo)[-1]
    assert event.event == "window.emergency_override"
    assert "outside the approved window" in event.details["reasons"][0]
