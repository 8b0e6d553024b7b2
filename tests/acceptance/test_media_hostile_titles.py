"""Titles with control characters, escape sequences, bidi controls, newlines and markup, as
records may hold them whatever validation says today: the Atom feeds stay well-formed XML,
the pages and the .ics hold no control character, the terminal gets plain lines, and the
partners' notices get no line the title made."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree as ET

import icalendar
import pytest
import yaml

from gcmschange.audit import trail
from gcmschange.cli import main
from gcmschange.gitrepo import commit_paths
from gcmschange.notify import notices

ATOM = "{http://www.w3.org/2005/Atom}"
CHANGE = "CHG-LAB-0666"
HOSTILE = (
    "Gateway\x1b[2J\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07 \x00\x07\x08\x0b\x0c"
    "\r\n### Fake heading\r- [x](https://evil.example/) <script>alert(1)</script> ]]> &amp; "
    "\u202etxt.exe\u202c \x85\x9b31m\x7f end"
)
# What no page, feed, calendar line or terminal line may hold: C0 but tab and newline
# (CR too: it must never appear alone), DEL, C1, bidi controls.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _hostile_change(root: Path) -> None:
    doc = yaml.safe_load((root / "changes" / "CHG-LAB-0002.yaml").read_text("utf-8"))
    doc.update(id=CHANGE, title=HOSTILE, title_fr=f"Passerelle {HOSTILE}")
    doc["impact"]["description_en"] = f"Impact {HOSTILE}"
    path = root / "changes" / f"{CHANGE}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=False), encoding="utf-8")
    commit_paths(root, [path], "hostile title")


@pytest.fixture
def hostile_repo(estate_repo: Path) -> Path:
    _hostile_change(estate_repo)
    trail.record(estate_repo, "apply.started", change=CHANGE, details={"run": "r1"})
    trail.record(estate_repo, "apply.finished", outcome="applied", change=CHANGE)
    notices.issue_incident(
        estate_repo,
        ["partner_gateway"],
        title_en=HOSTILE,
        title_fr=f"Panne {HOSTILE}",
        impact="outage",
        start=datetime.now(UTC) - timedelta(minutes=5),
        description_en=HOSTILE,
    )
    return estate_repo


class _Text(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self.tags: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def _site(root: Path, out: Path) -> None:
    now = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert main(["--repo", str(root), "site", "-o", str(out), "--now", now]) == 0


def test_feeds_stay_well_formed_xml_with_the_visible_text_kept(
    hostile_repo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "public"
    _site(hostile_repo, out)
    for feed in ("feed.atom", "fr/feed.atom"):
        raw = (out / feed).read_bytes()
        root = ET.fromstring(raw)  # an ill-formed feed raises ParseError here
        titles = [e.findtext(f"{ATOM}title") or "" for e in root.iter(f"{ATOM}entry")]
        hostile = [t for t in titles if "Gateway" in t]
        assert len(hostile) == 2, titles  # the change in the history, the incident now
        for title in titles:
            assert not CONTROL.search(title), repr(title)
        assert any("click" in t and "Fake heading" in t and "<script>" in t for t in hostile)
        assert not CONTROL.search(raw.decode("utf-8"))


def test_pages_hold_no_control_character_and_no_markup_from_a_title(
    hostile_repo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "public"
    _site(hostile_repo, out)
    for page in ("index.html", "history.html", "fr/index.html", "fr/history.html"):
        html = (out / page).read_text("utf-8")
        assert not CONTROL.search(html), page
        assert "<script>" not in html, page
        parsed = _Text(html)
        assert "script" not in parsed.tags, page
        assert "Fake heading" in " ".join(parsed.chunks), page
    status = json.loads((out / "status.json").read_text("utf-8"))
    assert any("Fake heading" in e["title"]["en"] for e in status["current"])


def test_ics_lines_are_rfc_5545_text_and_the_summary_stays_one_line(
    hostile_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "all.ics"
    assert main(["--repo", str(hostile_repo), "calendar", "-o", str(out)]) == 0
    raw = out.read_bytes()
    assert raw.endswith(b"\r\n")
    for line in raw.decode("utf-8").split("\r\n"):
        assert "\r" not in line and "\n" not in line
        assert not CONTROL.search(line), repr(line)
    event = next(
        e
        for e in icalendar.Calendar.from_ical(raw).walk("VEVENT")
        if str(e["UID"]) == f"{CHANGE}@gcmschange"
    )
    summary = str(event["SUMMARY"])
    assert "\n" not in summary and "Fake heading" in summary and "<script>" in summary
    # The terminal view of the same calendar: the title is one line, with no escape.
    terminal = capsys.readouterr().out
    assert not CONTROL.search(terminal)
    line = next(x for x in terminal.splitlines() if CHANGE in x)
    assert "Fake heading" in line and "end" in line


def test_notices_get_no_line_from_a_title(hostile_repo: Path) -> None:
    written = sorted((hostile_repo / ".gcmschange").rglob("*.md"))
    assert written
    for path in written:
        text = path.read_text("utf-8")
        assert not CONTROL.search(text), path
        assert not any(line.startswith(("### Fake", "- [x]")) for line in text.splitlines())


def test_the_markdown_copy_of_a_notice_gets_no_link_image_or_html_from_a_value(
    hostile_repo: Path,
) -> None:
    # The mail is text/plain; its Markdown copy is rendered wherever it is shown, so a value
    # is escaped there: no `[text](url)` link, no raw tag, while the template's own headings stay.
    written = sorted((hostile_repo / ".gcmschange").rglob("*.md"))
    for path in written:
        text = path.read_text("utf-8")
        assert "](https://evil.example/)" not in text, path
        assert "<script>" not in text, path
        assert "\\<script\\>" in text or "script" not in text, path
        assert text.count("# ") >= 2, path  # the template's headings are Markdown still
    emls = sorted((hostile_repo / ".gcmschange").rglob("*.eml"))
    assert any("<script>" in p.read_text("utf-8", errors="replace") for p in emls)
