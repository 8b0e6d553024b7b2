"""`gcmschange site -o DIR`: the static, bilingual status site and its feeds.

English pages sit at the root and French ones under `fr/`, each with a link to its
counterpart. Pages are rendered from package templates with autoescaping on, from
`SiteData` only (`sitedata.gather`), so nothing the records hold beyond public facts (hosts,
digests, diffs, approvers, variables) can reach a page. Every value a page prints passes
`textsafe.html_text` (the environment's `finalize`) before it is escaped, so control
characters in a title cannot reach the HTML. Links are relative, so the site works from any
folder, GitLab Pages included.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from gcmschange import textsafe
from gcmschange.errors import InvalidInputError
from gcmschange.statussite import data as sitedata
from gcmschange.statussite import feeds, monitored, svgchart, text
from gcmschange.statussite.data import Measure, SiteData

STYLE = resources.files("gcmschange.statussite").joinpath("templates/style.css")
PREFIX = {"en": "", "fr": "fr/"}
OTHER = {"en": "fr", "fr": "en"}


@dataclass(frozen=True)
class SiteResult:
    out: Path
    files: tuple[str, ...]  # relative to `out`, sorted
    data: SiteData


def _page_value(value: Any) -> Any:
    """What a page prints for `{{ value }}`: text made safe for HTML (autoescape follows);
    markup the site built itself (a macro's output, a chart) as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return textsafe.html_text(value)
    return value


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gcmschange.statussite", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_page_value,
    )


def _chart(lang: str, what: str, measures: tuple[Measure, ...], name: Callable[[str], str]) -> Any:
    bars = [
        svgchart.Bar(name(m.key), m.downtime_seconds, text.duration(m.downtime_seconds, lang))
        for m in measures
    ]
    title = f"{text.text(lang, 'measures.downtime')} — {text.text(lang, 'measures.' + what)}"
    desc = text.text(lang, "measures.chart_desc").format(
        what=text.text(lang, "measures.what." + what)
    )
    return svgchart.bar_chart(f"chart-{what}", title, desc, bars)


def _context(data: SiteData, lang: str, page: str) -> dict[str, Any]:
    path = PREFIX[lang] + page
    site_root = "../" * path.count("/")
    estate = data.estate

    def system_name(sid: str) -> str:
        system = estate.systems.get(sid)
        return sid if system is None else (system.name_en if lang == "en" else system.name_fr)

    def partner_name(pid: str) -> str:
        partner = estate.partners.get(pid)
        return pid if partner is None else (partner.name_en if lang == "en" else partner.name_fr)

    return {
        "lang": lang,
        "data": data,
        "page": page,
        "site_root": site_root,
        "lang_root": "../" * page.count("/"),
        "switch_href": site_root + PREFIX[OTHER[lang]] + page,
        "t": lambda key: text.text(lang, key),
        "when": lambda moment, zone: text.when(lang, moment, zone),
        "duration": lambda seconds: text.duration(seconds, lang),
        "change": lambda value: text.change(value, lang),
        "system_name": system_name,
        "partner_name": partner_name,
        "org": estate.name_en if lang == "en" else estate.name_fr,
        "title_of": lambda e: e.title_en if lang == "en" else e.title_fr,
        "description_of": lambda e: e.description_en if lang == "en" else e.description_fr,
        "month_chart": _chart(lang, "month", data.by_month, str),
        "system_chart": _chart(lang, "system", data.by_system, system_name),
        "generated": data.now.strftime("%Y-%m-%d %H:%M UTC"),
    }


def _pages(data: SiteData) -> list[tuple[str, str, SiteData, dict[str, Any]]]:
    """(template, page path within a language, facts shown, extra context) for every page."""
    pages: list[tuple[str, str, SiteData, dict[str, Any]]] = [
        ("index.html.j2", "index.html", data, {}),
        ("history.html.j2", "history.html", data, {}),
        ("partners.html.j2", "partners/index.html", data, {}),
    ]
    for pid, partner in data.estate.partners.items():
        extra = {"partner": partner}
        pages.append(("partner.html.j2", f"partners/{pid}.html", data.for_partner(pid), extra))
    return pages


def _calendars(data: SiteData) -> dict[str, bytes]:
    files = {"calendar/all.ics": feeds.ical(data, data.planned)}
    for sid in data.estate.systems:
        mine = tuple(e for e in data.planned if sid in e.affected)
        files[f"calendar/system-{sid}.ics"] = feeds.ical(data, mine)
    for pid in data.estate.partners:
        mine = tuple(e for e in data.planned if pid in e.partners)
        files[f"calendar/partner-{pid}.ics"] = feeds.ical(data, mine)
    return files


def render_site(data: SiteData, base_url: str = "") -> dict[str, bytes]:
    """Every file of the site, by path relative to the site's root."""
    env = _environment()
    files: dict[str, bytes] = {}
    for lang in text.LANGS:
        for template, page, facts, extra in _pages(data):
            context = {**_context(facts, lang, page), **extra}
            html = env.get_template(template).render(context)
            files[PREFIX[lang] + page] = html.encode("utf-8")
        feed_base = base_url.rstrip("/") + "/" + PREFIX[lang] if base_url else ""
        files[PREFIX[lang] + "feed.atom"] = feeds.atom(data, lang, feed_base)
    files["style.css"] = (
        resources.files("gcmschange.statussite").joinpath("templates/style.css").read_bytes()
    )
    files["status.json"] = feeds.status_json(data)
    files.update(_calendars(data))
    return files


def _write(out: Path, files: dict[str, bytes]) -> None:
    for rel, content in sorted(files.items()):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(content)
        tmp.replace(path)


def build_site(
    root: Path,
    out: Path,
    now: datetime | None = None,
    base_url: str = "",
    *,
    remote: str | None = None,
    monitoring: monitored.Source | None = None,
) -> SiteResult:
    """Gather the facts as of `now` and write the whole site under `out`; with `monitoring`,
    health and monitored outages from that Prometheus too (unknown if it cannot be asked)."""
    if now is not None and now.tzinfo is None:
        raise InvalidInputError("site: --now needs a time zone (for example 2026-12-01T12:00Z)")
    data = sitedata.gather(root, now, remote, monitoring)
    files = render_site(data, base_url)
    try:
        _write(out, files)
    except OSError as exc:
        raise InvalidInputError(f"{out}: cannot write the site: {exc.strerror}") from exc
    return SiteResult(out, tuple(sorted(files)), data)
