"""Times in notices: local zone with its EN/FR abbreviation, and UTC, right across DST."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gcmschange.errors import InvalidInputError
from gcmschange.notify.rendering import impact, when_en, when_fr

TORONTO = ZoneInfo("America/Toronto")


def test_before_and_after_the_november_switch() -> None:
    before = datetime(2026, 11, 1, 1, 30, tzinfo=TORONTO)  # first 01:30, still EDT
    after = datetime(2026, 11, 1, 3, 0, tzinfo=TORONTO)
    assert when_en(before) == "2026-11-01 01:30 EDT (UTC-04:00) / 2026-11-01 05:30 UTC"
    assert when_fr(after) == "2026-11-01 03 h 00 HNE (UTC-05:00) / 2026-11-01 08 h 00 UTC"


def test_utc_input_is_shown_in_the_requested_zone() -> None:
    moment = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert when_fr(moment, "America/Toronto").startswith("2026-07-01 08 h 00 HAE (UTC-04:00)")
    assert when_en(moment.isoformat(), "America/Vancouver").startswith("2026-07-01 05:00 PDT")


def test_naive_time_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="has no time zone"):
        when_en("2026-01-01T00:00:00")


def test_impact_labels_are_bilingual() -> None:
    labels = impact("outage")
    assert (labels["label_en"], labels["label_fr"]) == (
        "Service unavailable",
        "Service non disponible",
    )
