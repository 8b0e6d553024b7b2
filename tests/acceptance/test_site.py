"""`gcmschange site` over a real scenario: one change applied, one rolled back, one planned
(signed approval, future window), incidents; every page checked in English and French."""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

import icalendar
import pytest
import yaml

from gcmschange.apply import road
from gcmschange.approvals.sign import approve
from gcmschange.audit import trail
from gcmschange.cli import main
from gcmschange.gitrepo import commit_paths
from gcmschange.notify import notices
from gcmschange.paths import audit_log
from gcmschange.validate.load import load_change
from tests.conftest import KEYS, vaulted

ATOM = "{http://www.w3.org/2005/Atom}"
CANARY_SECRET = "s1te-canary-SECRET-42"
CANARY_BANNER = "site-canary-banner-value"
ZONE = "America/Toronto"


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(ZoneInfo(ZONE)):%Y-%m-%dT%H:%M:%S}"


def _change(
    cid: str, systems: list[str], level: str, start: datetime, hours: int
) -> dict[str, object]:
    return {
        "id": cid,
        "title": f"Site scenario {cid}",
        "type": "normal",
        "requester": "rm-alice",
        "environment": "staging",
        "systems": systems,
        "playbook": "configure",
        "variables": {
            "maintenance_banner_en": CANARY_BANNER,
            "canary_token": vaulted(CANARY_SECRET),
        },
        "window": {
            "start": _local(start),
            "end": _local(start + timedelta(hours=hours)),
            "timezone": ZONE,
        },
        "rollout": {"canary": 1, "waves": ["100%"], "failure_threshold": 0},
        "rollback": {"strategy": "restore"},
        "verification": ["verify/test_common.py"],
        "impact": {
            "level": level,
            "description_en": f"{cid} expected impact (token {CANARY_SECRET}).",
            "description_fr": f"Impact prévu de {cid}.",
        },
    }


@dataclass(frozen=True)
class Scenario:
    root: Path
    now: datetime


def _write_changes(root: Path, real_now: datetime) -> None:
    specs = {
        "CHG-SITE-0001": (["log_shipper"], "degraded", real_now - timedelta(hours=1), 4),
        "CHG-SITE-0002": (["case_api"], "none", real_now - timedelta(hours=1), 4),
        "CHG-SITE-0003": (["partner_gateway"], "outage", real_now + timedelta(days=2), 2),
    }
    paths = []
    for cid, (systems, level, start, hours) in specs.items():
        path = root / "changes" / f"{cid}.yaml"
        path.write_text(yaml.safe_dump(_change(cid, systems, level, start, hours)), "utf-8")
        paths.append(path)
    commit_paths(root, paths, "site scenario changes")


def _approve_planned(root: Path, tmp: Path) -> None:
    key = tmp / "owner-partner-gateway"
    shutil.copy(KEYS / "owner-partner-gateway", key)
    key.chmod(0o600)
    change = load_change(root, "CHG-SITE-0003")
    digest = road.prepare(root, "CHG-SITE-0003").digest
    approve(root, change, digest, key, role="owner:partner_gateway")


def _apply_runs(root: Path) -> None:
    # The apply engine's audit events (gcmschange/apply/rollout.py), as it records them.
    run = {"run": "r1", "hosts": ["h"]}
    trail.record(root, "apply.started", change="CHG-SITE-0001", digest="d" * 64, details=run)
    trail.record(root, "apply.started", change="CHG-SITE-0002", digest="e" * 64, details=run)
    time.sleep(1.1)  # so each run lasts at least a second
    trail.record(root, "wave.finished", change="CHG-SITE-0001", digest="d" * 64)
    trail.record(root, "apply.finished", outcome="applied", change="CHG-SITE-0001", digest="d" * 64)
    trail.record(root, "wave.finished", outcome="failed", change="CHG-SITE-0002")
    trail.record(root, "rollback.finished", outcome="ok", change="CHG-SITE-0002")
    trail.record(root, "apply.finished", outcome="rolled_back", change="CHG-SITE-0002")


def _incidents(root: Path, real_now: datetime) -> None:
    notices.issue_incident(
        root,
        ["partner_gateway"],
        title_en="Gateway timeouts",
        title_fr="Délais d'attente de la passerelle",
        impact="degraded",
        start=real_now - timedelta(hours=3),
        end=real_now - timedelta(hours=2, minutes=15),
        now=real_now,
        timezone=ZONE,
    )
    notices.issue_incident(
        root,
        ["eta"],
        title_en="Travel authorisations unavailable",
        title_fr="Autorisations de voyage indisponibles",
        impact="outage",
        start=real_now - timedelta(minutes=30),
        now=real_now,
        timezone=ZONE,
    )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    from tests.conftest import copy_estate

    tmp = tmp_path_factory.mktemp("site")
    root = copy_estate(tmp / "estate")
    real_now = datetime.now(UTC).replace(microsecond=0)
    _write_changes(root, real_now)
    _approve_planned(root, tmp)
    _apply_runs(root)
    _incidents(root, real_now)
    return Scenario(root, datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1))


@pytest.fixture(scope="module")
def site(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "public"
    args = ["--repo", str(scenario.root), "site", "-o", str(out), "--now", scenario.now.isoformat()]
    assert main(args) == 0
    return out


class Page(HTMLParser):
    """What the tests look at in a page: text, ids, links, lang, landmarks."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.tags: list[str] = []
        self.lang = ""
        self.chunks: list[str] = []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append(tag)
        if tag == "html":
            self.lang = values.get("lang") or ""
        if values.get("id"):
            self.ids.add(values["id"] or "")
        for name in ("href", "src"):
            if values.get(name):
                self.links.append(values[name] or "")

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.chunks).split())


def _page(site: Path, rel: str) -> Page:
    return Page(site / rel)


def test_pages_exist_in_both_languages_with_landmarks(site: Path) -> None:
    for rel in ("index.html", "history.html", "partners/index.html", "partners/allied_gov.html"):
        for lang, prefix in (("en", ""), ("fr", "fr/")):
            page = _page(site, prefix + rel)
            assert page.lang == lang, rel
            for landmark in ("header", "nav", "main", "footer", "h1"):
                assert landmark in page.tags, f"{prefix}{rel}: no <{landmark}>"
            assert page.links[page.links.index("#main")] == "#main"  # the skip link
            counterpart = (site / (("fr/" if lang == "en" else "") + rel)).resolve()
            resolved = {(page.path.parent / link).resolve() for link in page.links}
            assert counterpart in resolved, f"{prefix}{rel}: no language switch"
    assert "English" in _page(site, "fr/index.html").text
    assert "Français" in _page(site, "index.html").text


def test_now_shows_each_system_state_in_english_and_french(site: Path) -> None:
    en, fr = _page(site, "index.html").text, _page(site, "fr/index.html").text
    assert "Service status" in en and "État des services" in fr
    assert "Electronic travel authorisation service ✖ Outage" in en
    assert "Service d'autorisation de voyage électronique ✖ Panne" in fr
    assert "Public client portal ✔ Operational" in en
    assert "Portail public des clients ✔ Opérationnel" in fr
    assert "Travel authorisations unavailable" in en
    assert "Autorisations de voyage indisponibles" in fr


def test_planned_lists_the_approved_future_window_only(site: Path, scenario: Scenario) -> None:
    en, fr = _page(site, "index.html").text, _page(site, "fr/index.html").text
    assert "Change CHG-SITE-0003: Site scenario CHG-SITE-0003" in en
    assert "Changement CHG-SITE-0003: Passerelle de données des partenaires" in fr
    assert "Service unavailable" in en and "Service non disponible" in fr
    assert " UTC" in en and ("HNE" in fr or "HAE" in fr)
    # The reference lab changes have open windows but no approvals: not planned.
    assert "CHG-LAB-0001" not in en
    status = json.loads((site / "status.json").read_text("utf-8"))
    assert [e["ref"] for e in status["planned"]] == ["CHG-SITE-0003"]
    assert status["planned"][0]["partners"] == [
        "air_maple",
        "northstar_airways",
        "province_on",
        "province_qc",
        "dli_network",
    ]


def test_history_lists_completed_rolled_back_and_resolved(site: Path) -> None:
    en, fr = _page(site, "history.html").text, _page(site, "fr/history.html").text
    for ref in ("CHG-SITE-0001", "CHG-SITE-0002"):
        assert ref in en and ref in fr
    assert "Completed" in en and "Terminé" in fr
    assert "Rolled back" in en and "Annulé et rétabli" in fr
    assert "Gateway timeouts" in en and "Délais d'attente de la passerelle" in fr
    assert "Resolved" in en and "Résolu" in fr
    assert "45 min 00 s" in en  # the resolved incident's duration
    svg = (site / "history.html").read_text("utf-8")
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img"' in svg
    assert '<title id="chart-month-title">Total downtime' in svg


def _expected_downtime(root: Path) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Interruptions and downtime per month and per system, read straight from the records."""
    starts: dict[str, datetime] = {}
    found: list[tuple[datetime, int, tuple[str, ...]]] = []
    systems = {"CHG-SITE-0001": ("log_shipper",), "CHG-SITE-0002": ("case_api",)}
    for line in audit_log(root).read_text("utf-8").splitlines():
        entry = json.loads(line)
        moment = datetime.fromisoformat(entry["time"])
        if entry["event"] == "apply.started":
            starts[entry["change"]] = moment
        elif entry["event"] == "apply.finished":
            start = starts.pop(entry["change"])
            found.append((start, int((moment - start).total_seconds()), systems[entry["change"]]))
    for line in (root / ".gcmschange" / "incidents.jsonl").read_text("utf-8").splitlines():
        record = json.loads(line)
        if record["end"]:
            start = datetime.fromisoformat(record["start"])
            seconds = int((datetime.fromisoformat(record["end"]) - start).total_seconds())
            found.append((start, seconds, tuple(record["systems"])))
    by_month: dict[str, list[int]] = {}
    by_system: dict[str, list[int]] = {}
    for start, seconds, names in found:
        month = by_month.setdefault(f"{start.astimezone(UTC):%Y-%m}", [0, 0])
        month[0], month[1] = month[0] + 1, month[1] + seconds
        for name in names:
            total = by_system.setdefault(name, [0, 0])
            total[0], total[1] = total[0] + 1, total[1] + seconds
    return by_month, by_system


def _measure_rows(html: str, caption: str) -> dict[str, list[int]]:
    table = html.split(f"<caption>{caption}</caption>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(
        r'<tr><th scope="row">([^<]+)</th><td class="num">(\d+)</td>'
        r'<td class="num" data-seconds="(\d+)">',
        table,
    )
    return {key: [int(n), int(s)] for key, n, s in rows}


def test_downtime_figures_equal_those_computed_from_the_records(
    site: Path, scenario: Scenario
) -> None:
    by_month, by_system = _expected_downtime(scenario.root)
    assert sum(n for n, _ in by_month.values()) == 3  # one change, one rollback, one incident
    html = (site / "history.html").read_text("utf-8")
    assert _measure_rows(html, "Per month (UTC)") == by_month
    names = {
        "log_shipper": "Log shipping",
        "case_api": "Case processing API",
        "partner_gateway": "Partner data gateway",
    }
    assert _measure_rows(html, "Per system") == {names[k]: v for k, v in by_system.items()}
    fr = (site / "fr" / "history.html").read_text("utf-8")
    assert _measure_rows(fr, "Par mois (UTC)") == by_month
    status = json.loads((site / "status.json").read_text("utf-8"))
    assert {
        m["key"]: [m["interruptions"], m["downtime_seconds"]]
        for m in status["measures"]["by_month"]
    } == by_month


def test_partner_pages_show_only_what_affects_the_partner(site: Path) -> None:
    for prefix in ("", "fr/"):
        allied = _page(site, f"{prefix}partners/allied_gov.html").text
        assert "CHG-SITE-0002" in allied  # case_api, which it consumes
        for other in ("CHG-SITE-0001", "CHG-SITE-0003", "Gateway timeouts", "Travel authori"):
            assert other not in allied
        printer = _page(site, f"{prefix}partners/passport_printer.html").text
        assert "CHG-SITE" not in printer and "INC-" not in printer
        airline = _page(site, f"{prefix}partners/northstar_airways.html").text
        assert "CHG-SITE-0003" in airline and "CHG-SITE-0002" in airline
        assert "CHG-SITE-0001" not in airline  # log shipping feeds no partner
    assert "Air Maple (airline)" in _page(site, "partners/index.html").text
    assert "Air Maple (transporteur aérien)" in _page(site, "fr/partners/index.html").text


def test_every_link_resolves_to_a_file_and_anchor(site: Path) -> None:
    pages = {p: Page(p) for p in site.rglob("*.html")}
    assert len(pages) == 2 * (3 + 7)
    for page in pages.values():
        for link in page.links:
            target, _, fragment = link.partition("#")
            path = (page.path.parent / target).resolve() if target else page.path
            assert path.is_file(), f"{page.path.relative_to(site)}: {link} is broken"
            if fragment and path.suffix == ".html":
                assert fragment in pages[path].ids, f"{page.path.relative_to(site)}: {link}"


def test_feeds_parse_and_carry_the_notices(site: Path) -> None:
    for prefix, word in (("", "Scheduled maintenance"), ("fr/", "Maintenance planifiée")):
        feed = ET.parse(site / prefix / "feed.atom").getroot()
        assert feed.tag == f"{ATOM}feed"
        titles = [e.findtext(f"{ATOM}title") or "" for e in feed.iter(f"{ATOM}entry")]
        assert any(word in t and "CHG-SITE-0003" in t for t in titles)
        assert len(titles) == 5  # open incident, planned, two runs, resolved incident
        for entry in feed.iter(f"{ATOM}entry"):
            links = [link.get("href") or "" for link in entry.iter(f"{ATOM}link")]
            page, _, anchor = links[0].partition("#")
            assert f'id="{anchor}"' in (site / prefix / page).read_text("utf-8")
    cal = icalendar.Calendar.from_ical((site / "calendar" / "all.ics").read_bytes())
    events = list(cal.walk("VEVENT"))
    assert [str(e["uid"]) for e in events] == ["CHG-SITE-0003@gcmschange"]
    assert events[0]["dtstart"].dt.tzinfo is not None
    gateway = icalendar.Calendar.from_ical(
        (site / "calendar" / "partner-province_qc.ics").read_bytes()
    )
    assert len(list(gateway.walk("VEVENT"))) == 1
    printer = icalendar.Calendar.from_ical(
        (site / "calendar" / "partner-passport_printer.ics").read_bytes()
    )
    assert list(printer.walk("VEVENT")) == []


def _forbidden(root: Path) -> set[str]:
    """Everything internal the records hold: hosts, addresses, variables, digests, approvers."""
    words = {CANARY_SECRET, CANARY_BANNER}
    for hosts in root.glob("inventories/*/hosts.yml"):
        data = yaml.safe_load(hosts.read_text("utf-8"))
        for group in data["all"]["children"].values():
            for name, hvars in ((group or {}).get("hosts") or {}).items():
                words.add(name)
                words.update(str(v) for v in (hvars or {}).values() if isinstance(v, str))
    for line in (root / "approvers").read_text("utf-8").splitlines():
        if line and not line.startswith("#"):
            principals, *_rest = line.split()
            words.update(principals.split(","))
            words.add(line.split()[-1])  # the public key
    for statement in root.glob("approvals/*/*.json"):
        data = json.loads(statement.read_text("utf-8"))
        words.update({data["digest"], data["nonce"], data["principal"]})
    for event in trail.read_events(root):
        words.update(w for w in (event.digest, event.hash) if w)
    for partner in yaml.safe_load((root / "estate.yml").read_text("utf-8"))["partners"].values():
        words.add(partner["contact"])
    return words


def test_nothing_internal_appears_in_any_file(site: Path, scenario: Scenario) -> None:
    forbidden = _forbidden(scenario.root)
    assert "owner-partner-gateway" in forbidden and len(forbidden) > 40
    files = [p for p in site.rglob("*") if p.is_file()]
    assert len(files) > 30
    for path in files:
        body = path.read_text("utf-8")
        for word in forbidden:
            assert word not in body, f"{path.relative_to(site)} leaks {word!r}"
        assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", body), path
        assert not re.search(r"\b[0-9a-f]{40,64}\b", body), path
    assert "********" in (site / "index.html").read_text("utf-8")  # the masked token


def test_same_inputs_and_now_give_identical_bytes(
    site: Path, scenario: Scenario, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    args = [
        "--repo",
        str(scenario.root),
        "site",
        "-o",
        str(again),
        "--now",
        scenario.now.isoformat(),
    ]
    assert main(args) == 0
    first = {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first == second
