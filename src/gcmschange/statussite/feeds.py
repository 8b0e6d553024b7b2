"""The site's machine feeds: iCalendar of planned windows, Atom of notices, status.json.

Each is built from `SiteData` alone and stamped with its `now`, so the bytes are the same
for the same inputs. Nothing internal goes in: no hosts, digests, approvers or variables.
Text is made safe for each medium in one place: the Atom tree as a whole just before it is
written (`_xml_safe`), the calendars in `change_calendar`'s writer, JSON by its encoder.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from gcmschange import textsafe
from gcmschange.notify import change_calendar
from gcmschange.statussite.data import Comparison, Event, Measure, SiteData
from gcmschange.statussite.text import text

ATOM = "http://www.w3.org/2005/Atom"


def _entry_of(event: Event) -> change_calendar.Entry:
    zone = ZoneInfo(event.timezone)
    end = event.end or event.start
    return change_calendar.Entry(
        uid=f"{event.ref}@gcmschange",  # the change calendar's uid: one event per change
        ref=event.ref,
        title=f"{event.title_en} / {event.title_fr}",
        status="approved",
        environments=(),
        systems=event.affected,
        start=event.start.astimezone(zone),
        end=end.astimezone(zone),
        timezone=event.timezone,
        impact=event.level,
        partners=event.partners,
    )


def ical(data: SiteData, events: tuple[Event, ...]) -> bytes:
    """RFC 5545 bytes for `events`, through the change calendar's own writer (DST-correct)."""
    entries = tuple(_entry_of(e) for e in events)
    calendar = change_calendar.ChangeCalendar(None, entries, (), ())
    return change_calendar.to_ical(calendar, now=data.now)


def _atom_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry_phase(event: Event) -> str:
    if event.kind == "monitored":
        return "monitored"
    return {"in_progress": "started", "open": "incident", "resolved": "incident_resolved"}.get(
        event.outcome, event.outcome
    )


def _entry(feed: ET.Element, event: Event, lang: str, link: str, data: SiteData) -> None:
    phase = _entry_phase(event)
    entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
    ET.SubElement(entry, f"{{{ATOM}}}id").text = f"urn:gcmschange:{event.anchor}:{phase}"
    title = event.title_en if lang == "en" else event.title_fr
    label = text(lang, f"phase.{phase}")
    ET.SubElement(entry, f"{{{ATOM}}}title").text = f"{label}: {event.ref} — {title}"
    moment = event.end or event.start
    ET.SubElement(entry, f"{{{ATOM}}}updated").text = _atom_time(min(moment, data.now))
    ET.SubElement(entry, f"{{{ATOM}}}link", rel="alternate", type="text/html", href=link)
    names = [data.estate.systems[s] for s in event.affected if s in data.estate.systems]
    affected = ", ".join(s.name_en if lang == "en" else s.name_fr for s in names)
    description = event.description_en if lang == "en" else event.description_fr
    summary = f"{text(lang, 'impact.' + event.level)}. {affected}. {description}".strip()
    ET.SubElement(entry, f"{{{ATOM}}}summary", type="text").text = summary
    ET.SubElement(entry, f"{{{ATOM}}}category", term=phase, label=label)


def atom(data: SiteData, lang: str, base: str = "") -> bytes:
    """An Atom feed (RFC 4287) of the notices: planned, started, ended changes and incidents.

    `base` is the URL of the folder holding the feed and its language's pages; empty, the
    links are relative to the feed, which Atom allows.
    """
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed", {"xml:lang": lang})
    org = data.estate.name_en if lang == "en" else data.estate.name_fr
    ET.SubElement(feed, f"{{{ATOM}}}id").text = f"urn:gcmschange:status:{lang}"
    ET.SubElement(feed, f"{{{ATOM}}}title").text = f"{text(lang, 'feed.title')} — {org}"
    ET.SubElement(feed, f"{{{ATOM}}}updated").text = _atom_time(data.now)
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    ET.SubElement(author, f"{{{ATOM}}}name").text = org
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="self", href=f"{base}feed.atom")
    ET.SubElement(
        feed, f"{{{ATOM}}}link", rel="alternate", type="text/html", href=f"{base}index.html"
    )
    for event in (*data.current, *data.planned):
        _entry(feed, event, lang, f"{base}index.html#{event.anchor}", data)
    for event in data.history:
        _entry(feed, event, lang, f"{base}history.html#{event.anchor}", data)
    _xml_safe(feed)
    ET.indent(feed)
    xml: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return xml + b"\n"


def _xml_safe(tree: ET.Element) -> None:
    """Every text and attribute value of `tree` made XML 1.0 characters: ElementTree escapes
    markup but writes a control character as it is, which no XML parser accepts."""
    for element in tree.iter():
        if element.text:
            element.text = textsafe.xml_text(element.text)
        for name, value in element.attrib.items():
            element.set(name, textsafe.xml_text(value))


def _event_json(event: Event) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "ref": event.ref,
        "title": {"en": event.title_en, "fr": event.title_fr},
        "systems": list(event.systems),
        "affected_systems": list(event.affected),
        "partners": list(event.partners),
        "impact": event.level,
        "description": {"en": event.description_en, "fr": event.description_fr},
        "start": event.start.isoformat(),
        "end": event.end.isoformat() if event.end else None,
        "timezone": event.timezone,
        "outcome": event.outcome,
        "duration_seconds": event.seconds() if event.end else None,
    }


def _comparison_json(c: Comparison) -> dict[str, Any]:
    return {
        "key": c.key,
        "start": c.start.isoformat(),
        "end": c.end.isoformat(),
        "interruptions": c.interruptions,
        "downtime_seconds": c.downtime_seconds,
        "year_earlier": {
            "interruptions": c.before_interruptions,
            "downtime_seconds": c.before_downtime_seconds,
        },
        "change_percent": {"interruptions": c.interruptions_change, "downtime": c.downtime_change},
    }


def _measures_json(measures: tuple[Measure, ...]) -> list[dict[str, Any]]:
    return [
        {"key": m.key, "interruptions": m.interruptions, "downtime_seconds": m.downtime_seconds}
        for m in measures
    ]


def status_json(data: SiteData) -> bytes:
    """The machine feed: the same facts as the pages, with stable keys."""
    payload = {
        "format": "gcmschange-status/v1",
        "generated": _atom_time(data.now),
        "systems": [
            {
                "id": s.id,
                "name": {"en": s.name_en, "fr": s.name_fr},
                "state": s.state,
                "because": list(s.because),
                "monitoring": {"health": s.monitored, "alerts": list(s.alerts)}
                if data.monitoring.asked
                else None,
            }
            for s in data.systems
        ],
        "current": [_event_json(e) for e in data.current],
        "planned": [_event_json(e) for e in data.planned],
        "history": [_event_json(e) for e in data.history],
        "measures": {
            "by_month": _measures_json(data.by_month),
            "by_system": _measures_json(data.by_system),
            "year_on_year": [_comparison_json(c) for c in data.year_on_year],
        },
        "monitoring": {
            "asked": data.monitoring.asked,
            "health_known": data.monitoring.known,
            "outages_included": data.monitoring.history,
        },
    }
    text = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    # JSON escapes every control character itself; only a lone surrogate (possible in a JSON
    # record read back) has no UTF-8 form, and becomes "?" rather than a failed build.
    return text.encode("utf-8", "replace")
