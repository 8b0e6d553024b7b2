"""`lab up --systems` brings the systems the chosen ones' templates read, so the lab it
makes can converge (a portal whose nginx.conf lists the case API's hosts needs them)."""

from __future__ import annotations

import pytest

from gcmschange.errors import LabError
from gcmschange.lab import preflight
from gcmschange.resources import reference_estate
from gcmschange.rules.estate import load_estate


def test_a_system_brings_the_systems_its_templates_read() -> None:
    estate = load_estate(reference_estate())
    assert preflight.with_groups_read(estate, ("portal",)) == ("portal", "case_api")
    assert preflight.with_groups_read(estate, ("case_api",)) == ("case_api",)
    assert preflight.with_groups_read(estate, ("case_api", "portal")) == ("case_api", "portal")
    assert preflight.with_groups_read(estate, ("nope",)) == ("nope",)  # systems_of names it


def test_an_unknown_system_is_named() -> None:
    estate = load_estate(reference_estate())
    with pytest.raises(LabError, match="unknown system 'nope'"):
        preflight.systems_of(estate, ["portal", "nope"])
