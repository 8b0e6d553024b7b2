"""The status site against the same period a year earlier, and its health from monitoring
(issue 17): records only, a Prometheus that cannot be reached, and a real Prometheus on
loopback that sees an outage no record explains."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from gcmschange.analysis import prometheus
from gcmschange.cli import main
from gcmschange.lab import loadgen, monitoring
from gcmschange.notify import notices
from gcmschange.rules.estate import load_estate
from gcmschange.statussite import monitored
from gcmschange.statussite.build import build_site
from gcmschange.statussite.data import Event, monitored_events

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def _incident(root: Path, system: str, start: datetime, minutes: int, title: str) -> None:
    notices.issue_incident(
        root,
        [system],
        title_en=title,
        title_fr=f"{title} (FR)",
        impact="outage",
        start=start,
        end=start + timedelta(minutes=minutes),
        now=NOW,
        timezone="UTC",
    )


def _site(root: Path, out: Path, *extra: str) -> int:
    return main(["--repo", str(root), "site", "-o", str(out), "--now", NOW.isoformat(), *extra])


def test_history_compares_each_period_with_the_same_period_a_year_earlier(
    estate_repo: Path, tmp_path: Path
) -> None:
    # A year earlier: three outages, 150 min. This year: two, 99 min: -33 % and -34 %,
    # the agency's own figures.
    _incident(estate_repo, "portal", datetime(2025, 3, 4, 8, tzinfo=UTC), 60, "Old one")
    _incident(estate_repo, "eta", datetime(2025, 3, 20, 8, tzinfo=UTC), 60, "Old two")
    _incident(estate_repo, "batch", datetime(2025, 10, 2, 8, tzinfo=UTC), 30, "Old three")
    _incident(estate_repo, "portal", datetime(2026, 3, 5, 8, tzinfo=UTC), 60, "New one")
    _incident(estate_repo, "eta", datetime(2026, 11, 2, 8, tzinfo=UTC), 39, "New two")
    out = tmp_path / "site"
    assert _site(estate_repo, out) == 0

    status = json.loads((out / "status.json").read_text(encoding="utf-8"))
    rows = {c["key"]: c for c in status["measures"]["year_on_year"]}
    assert rows["12m"]["interruptions"] == 2
    assert rows["12m"]["downtime_seconds"] == 99 * 60
    assert rows["12m"]["year_earlier"] == {"interruptions": 3, "downtime_seconds": 150 * 60}
    assert rows["12m"]["change_percent"] == {"interruptions": -33, "downtime": -34}
    # Each month against the same month a year earlier, where either had any.
    assert rows["2026-03"]["year_earlier"]["interruptions"] == 2
    assert rows["2026-03"]["change_percent"]["interruptions"] == -50
    assert rows["2026-10"]["interruptions"] == 0
    assert rows["2026-11"]["change_percent"]["interruptions"] is None  # nothing to compare
    assert "2026-01" not in rows
    assert status["monitoring"] == {
        "asked": False,
        "health_known": False,
        "outages_included": False,
    }

    english = (out / "history.html").read_text(encoding="utf-8")
    french = (out / "fr" / "history.html").read_text(encoding="utf-8")
    assert "Against the same period a year earlier" in english
    assert "Last 12 months" in english and "\u221233 %" in english and "\u221234 %" in english
    assert "Par rapport à la même période un an plus tôt" in french
    assert "12 derniers mois" in french and "\u221234 %" in french
    assert "Monitoring" not in (out / "index.html").read_text(encoding="utf-8")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _name_prometheus(root: Path, url: str) -> None:
    path = root / "policy.yml"
    policy = yaml.safe_load(path.read_text(encoding="utf-8"))
    policy.setdefault("analysis", {}).setdefault("prometheus", {})["prod"] = url
    path.write_text(yaml.safe_dump(policy, sort_keys=False), encoding="utf-8")


def test_an_unreachable_prometheus_says_health_unknown_and_never_fails_the_build(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _name_prometheus(estate_repo, f"http://127.0.0.1:{_closed_port()}")
    _incident(estate_repo, "portal", datetime(2026, 3, 5, 8, tzinfo=UTC), 60, "Records still")
    out = tmp_path / "site"
    assert _site(estate_repo, out, "--health-from", "prod") == 0
    assert "warning: monitoring: prometheus http://127.0.0.1:" in capsys.readouterr().err

    english = (out / "index.html").read_text(encoding="utf-8")
    french = (out / "fr" / "index.html").read_text(encoding="utf-8")
    assert "Health unknown: monitoring could not be reached" in english
    assert english.count('class="health health-unknown"') == 7  # every system
    assert "État inconnu : la supervision n&#39;a pas pu être jointe" in french
    assert "127.0.0.1" not in english  # where monitoring lives is not public
    history = (out / "history.html").read_text(encoding="utf-8")
    assert "outages seen by monitoring are not included" in history
    status = json.loads((out / "status.json").read_text(encoding="utf-8"))
    assert status["monitoring"]["health_known"] is False
    rows = {c["key"]: c for c in status["measures"]["year_on_year"]}
    assert rows["12m"]["interruptions"] == 1  # from the records


def test_a_monitored_outage_a_record_already_counts_is_counted_once(estate_repo: Path) -> None:
    estate = load_estate(estate_repo)
    start = datetime(2026, 3, 5, 8, tzinfo=UTC)
    incident = Event(
        kind="incident",
        ref="INC-1",
        title_en="t",
        title_fr="t",
        systems=("case_api",),
        affected=("case_api", "portal"),
        partners=(),
        level="outage",
        description_en="",
        description_fr="",
        start=start,
        end=start + timedelta(hours=1),
        timezone="UTC",
        outcome="resolved",
    )
    during = monitored.Outage(
        "portal", start + timedelta(minutes=5), start + timedelta(minutes=10), "degraded"
    )
    later = monitored.Outage(
        "portal", start + timedelta(hours=2), start + timedelta(hours=2, minutes=7), "outage"
    )
    found = monitored_events(estate, (during, later), [incident], NOW)
    assert [e.ref for e in found] == ["MON-portal-20260305T100000Z"]
    assert found[0].seconds() == 7 * 60 and found[0].interruption


# --- against a real Prometheus on loopback ---


@dataclass
class Page:
    text: str


@dataclass(frozen=True)
class Served:
    endpoint: prometheus.Endpoint
    page: Page


@pytest.fixture
def real_prometheus(tmp_path: Path) -> Iterator[Served]:
    if shutil.which("prometheus") is None:
        pytest.skip("needs Debian's prometheus (apt-get install prometheus)")
    # Like the lab's exporters: the metric has no labels; the scrape target gives them.
    page = Page("nginx_up 1\n")

    server = loadgen.metrics_server(("127.0.0.1", 0), lambda: page.text)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = f"127.0.0.1:{server.server_address[1]}"
    settings: dict[str, object] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [
            {
                "job_name": "nginx",
                "static_configs": [
                    {"targets": [target], "labels": {"system": "portal", "host": "portal-1"}}
                ],
            }
        ],
    }
    running = None
    try:
        listen = f"127.0.0.1:{_closed_port()}"
        running = monitoring.spawn_prometheus(tmp_path / "prom", listen, settings)
        yield Served(prometheus.Endpoint.of(running.prometheus), page)
    finally:
        if running is not None:
            monitoring.stop_process(running)
        server.shutdown()
        server.server_close()


def _until(endpoint: prometheus.Endpoint, promql: str, present: bool) -> None:
    for _ in range(150):
        if bool(prometheus.query(endpoint, promql)) is present:
            return
        time.sleep(0.1)
    raise AssertionError(f"{promql}: never {'present' if present else 'absent'}")


@pytest.mark.slow
def test_health_and_outages_come_from_a_real_prometheus(
    estate_repo: Path, tmp_path: Path, real_prometheus: Served
) -> None:
    endpoint, page = real_prometheus.endpoint, real_prometheus.page
    source = monitored.Source("prod", endpoint, step_seconds=1)
    _until(endpoint, "nginx_up == 1", present=True)
    time.sleep(2)
    page.text = "nginx_up 0\n"  # down: no record says so
    _until(endpoint, 'ALERTS{alertname="GcmsNginxDown",alertstate="firing"}', present=True)

    down = build_site(estate_repo, tmp_path / "down", monitoring=source)
    portal = next(s for s in down.data.systems if s.id == "portal")
    assert (portal.state, portal.monitored) == ("outage", "outage")
    assert portal.because == ("monitoring",) and portal.alerts == ("GcmsNginxDown",)
    eta = next(s for s in down.data.systems if s.id == "eta")
    assert (eta.state, eta.monitored) == ("operational", "")  # not monitored here
    english = (tmp_path / "down" / "index.html").read_text(encoding="utf-8")
    assert "No server answering" in english and "GcmsNginxDown" in english
    assert "Aucun serveur ne répond" in (tmp_path / "down" / "fr" / "index.html").read_text(
        encoding="utf-8"
    )

    time.sleep(3)
    page.text = "nginx_up 1\n"
    _until(endpoint, 'ALERTS{alertstate="firing"}', present=False)
    time.sleep(2)
    up = build_site(estate_repo, tmp_path / "up", monitoring=source)
    portal = next(s for s in up.data.systems if s.id == "portal")
    assert (portal.state, portal.monitored) == ("operational", "operational")
    [outage] = [e for e in up.data.history if e.kind == "monitored"]
    assert outage.systems == ("portal",) and outage.level == "outage"
    assert 3 <= outage.seconds() <= 12, outage.seconds()  # what monitoring saw, to a step
    assert up.data.year_on_year[0].interruptions == 1
    assert up.data.monitoring.history
    history = (tmp_path / "up" / "history.html").read_text(encoding="utf-8")
    assert ": seen by monitoring" in history
    assert "outages monitoring saw" in history
    feed = (tmp_path / "up" / "fr" / "feed.atom").read_text(encoding="utf-8")
    assert "Interruption constatée par la supervision" in feed
