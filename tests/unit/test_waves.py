"""Wave planning: canary first, cumulative waves, round-robin across systems, precise refusals."""

from __future__ import annotations

import pytest

from gcmschange.apply import waves
from gcmschange.errors import InvalidInputError
from gcmschange.model import Host, Rollout


def hosts(spec: dict[str, int]) -> tuple[Host, ...]:
    return tuple(
        Host(f"{system}-{n}", system, {})
        for system, count in spec.items()
        for n in range(1, count + 1)
    )


def names(plan: tuple[waves.Wave, ...]) -> list[list[str]]:
    return [list(w.hosts) for w in plan]


def test_canary_then_cumulative_percentages_spread_across_systems() -> None:
    plan = waves.plan(hosts({"portal": 2, "case": 2}), Rollout(1, ("50%", "100%"), 0))
    assert names(plan) == [["portal-1"], ["case-1"], ["portal-2", "case-2"]]
    assert plan[0].canary and not plan[1].canary
    assert [w.number for w in plan] == [1, 2, 3]


def test_counts_are_cumulative_and_empty_waves_are_skipped() -> None:
    plan = waves.plan(hosts({"a": 5}), Rollout(2, ("2", "3", "100%"), 0))
    assert names(plan) == [["a-1", "a-2"], ["a-3"], ["a-4", "a-5"]]


def test_no_canary() -> None:
    assert names(waves.plan(hosts({"a": 2}), Rollout(0, ("100%",), 0))) == [["a-1", "a-2"]]


def test_canary_larger_than_fleet_takes_everything_once() -> None:
    assert names(waves.plan(hosts({"a": 2}), Rollout(5, ("100%",), 0))) == [["a-1", "a-2"]]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            ("50%",),
            "the last wave (50%) reaches 2 of 4 hosts; the last wave must reach every target",
        ),
        (("half",), "rollout.waves[0]: 'half' is neither a count"),
        (("0%",), "rollout.waves[0]: '0%' must be between 1% and 100%"),
        (("150%",), "rollout.waves[0]: '150%' must be between 1% and 100%"),
        (("0",), "rollout.waves[0]: '0' must name at least one host"),
    ],
)
def test_bad_waves_are_refused_with_where_and_why(spec: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        waves.plan(hosts({"a": 4}), Rollout(1, spec, 0))
    assert message in err.value.message


def test_no_targets_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="targets no host"):
        waves.plan((), Rollout())


def test_threshold_counts_each_bad_host_once() -> None:
    bad = waves.bad_hosts(("a", "b"), ("b", "c"))
    assert bad == ("a", "b", "c")
    assert waves.exceeded(bad, 2)
    assert not waves.exceeded(bad, 3)
    assert not waves.exceeded((), 0)
