"""The pre-change health gate refuses while an incident is open on the change's systems
(issue 17); an emergency change may override, recorded. Real incident records and a real
audit log in a fresh estate repository; no Prometheus, so only the incidents speak."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gcmschange.analysis.judge import Judge
from gcmschange.analysis.templates import Spec
from gcmschange.apply.verbs import healthy
from gcmschange.audit import trail
from gcmschange.errors import GateRefusedError
from gcmschange.model import ChangeRequest
from gcmschange.notify import notices
from gcmschange.rules.policy import Inconclusive
from gcmschange.validate.load import from_document

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NO_PROMETHEUS = Judge(Spec(10, ()), None, Inconclusive.FAIL, "staging")


def _change(kind: str = "normal", systems: tuple[str, ...] = ("portal",)) -> ChangeRequest:
    doc: dict[str, object] = {
        "id": "CHG-GATE-1",
        "title": "t",
        "type": kind,
        "requester": "rm-alice",
        "environment": "staging",
        "systems": list(systems),
        "playbook": "configure",
        "window": {"start": "2026-06-01T00:00", "end": "2026-06-02T00:00", "timezone": "UTC"},
    }
    return from_document(doc, "changes/CHG-GATE-1.yaml")


def _incident(root: Path, system: str, start: datetime, end: datetime | None = None) -> str:
    notices.issue_incident(
        root,
        [system],
        title_en="Portal errors",
        title_fr="Erreurs du portail",
        impact="degraded",
        start=start,
        end=end,
        now=NOW,
        timezone="UTC",
    )
    from gcmschange.notify.incidents import read_incidents

    return read_incidents(root)[-1].id


def _health_events(root: Path) -> list[trail.AuditEvent]:
    return trail.select(trail.read_events(root), change="CHG-GATE-1", event="health.")


def test_an_open_incident_on_the_changes_systems_refuses_the_start(estate_repo: Path) -> None:
    incident = _incident(estate_repo, "portal", NOW - timedelta(minutes=20))
    with pytest.raises(GateRefusedError) as caught:
        healthy(estate_repo, _change(), "d1", NO_PROMETHEUS, NOW)
    assert caught.value.message == (
        f"CHG-GATE-1: refused: incident open on its systems: {incident} (portal) "
        "(an emergency change may override)"
    )
    [refused] = _health_events(estate_repo)
    assert (refused.event, refused.outcome) == ("health.refused", "refused")
    assert refused.details["incidents"] == [incident]


def test_resolved_later_and_other_systems_incidents_do_not_stop_it(estate_repo: Path) -> None:
    _incident(estate_repo, "portal", NOW - timedelta(hours=2), NOW - timedelta(hours=1))
    _incident(estate_repo, "eta", NOW - timedelta(minutes=5))
    _incident(estate_repo, "portal", NOW + timedelta(hours=1))  # not begun at NOW
    healthy(estate_repo, _change(), "d1", NO_PROMETHEUS, NOW)
    assert _health_events(estate_repo) == []
    with pytest.raises(GateRefusedError, match=r"incident open on its systems: INC-\S+ \(eta\)"):
        healthy(estate_repo, _change(systems=("portal", "eta")), "d1", NO_PROMETHEUS, NOW)


def test_an_emergency_change_goes_on_and_the_override_is_recorded(estate_repo: Path) -> None:
    incident = _incident(estate_repo, "portal", NOW - timedelta(minutes=20))
    healthy(estate_repo, _change("emergency"), "d1", NO_PROMETHEUS, NOW)
    [override] = _health_events(estate_repo)
    assert override.event == "health.emergency_override"
    assert override.details["incidents"] == [incident]
    assert override.details["verdict"] == "not measured"
    assert trail.verify_chain(estate_repo).ok
