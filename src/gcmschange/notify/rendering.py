"""Rendering of bilingual notices from replaceable Jinja2 templates.

Templates are looked up first in `notices/templates/` at the repository root (so an
organisation can replace any of them), then in the defaults shipped with the package.
Values from change requests are data: they reach the templates as variables and are never
themselves evaluated as templates; the environment is sandboxed all the same. Every value a
template prints is made one line of plain text (`textsafe.plain`, the environment's
`finalize`): a notice is read in mail clients and terminals, and a newline in a title must
not write a line of its own into a partner's notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from gcmschange import textsafe
from gcmschange.errors import InvalidInputError

DEFAULTS = Path(__file__).resolve().parent / "templates"

LABELS: dict[str, tuple[str, str]] = {
    "scheduled": ("Scheduled maintenance", "Maintenance planifiée"),
    "started": ("Maintenance started", "Début de la maintenance"),
    "extended": ("Maintenance extended", "Prolongation de la maintenance"),
    "completed": ("Maintenance completed", "Fin de la maintenance"),
    "rolled_back": ("Change rolled back", "Changement annulé"),
    "incident": ("Service disruption", "Interruption de service"),
    "incident_resolved": ("Service restored", "Service rétabli"),
}
IMPACT_LABELS: dict[str, tuple[str, str]] = {
    "none": ("No interruption expected", "Aucune interruption prévue"),
    "degraded": ("Degraded service", "Service dégradé"),
    "outage": ("Service unavailable", "Service non disponible"),
}
# Canadian French abbreviations of the time zones partners read most (Termium Plus).
FR_ZONE_ABBREVIATIONS = {
    "EST": "HNE",
    "EDT": "HAE",
    "CST": "HNC",
    "CDT": "HAC",
    "MST": "HNR",
    "MDT": "HAR",
    "PST": "HNP",
    "PDT": "HAP",
    "AST": "HNA",
    "ADT": "HAA",
    "NST": "HNT",
    "NDT": "HAT",
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str  # Markdown, English then French


def _moment(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise InvalidInputError(f"notice time {value!r} has no time zone")
    return moment


def _offset(moment: datetime) -> str:
    text = moment.strftime("%z")
    return f"UTC{text[:3]}:{text[3:]}"


def when_en(value: Any, zone: str = "") -> str:
    """`2026-11-01 01:30 EDT (UTC-04:00) / 2026-11-01 05:30 UTC`."""
    moment = _moment(value)
    local = moment.astimezone(ZoneInfo(zone)) if zone else moment
    utc = moment.astimezone(UTC)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({_offset(local)}) / {utc:%Y-%m-%d %H:%M} UTC"


def when_fr(value: Any, zone: str = "") -> str:
    """`2026-11-01 01 h 30 HAE (UTC-04:00) / 2026-11-01 05 h 30 UTC`."""
    moment = _moment(value)
    local = moment.astimezone(ZoneInfo(zone)) if zone else moment
    utc = moment.astimezone(UTC)
    name = str(local.tzname())
    abbrev = FR_ZONE_ABBREVIATIONS.get(name, name)
    return (
        f"{local:%Y-%m-%d %H} h {local:%M} {abbrev} ({_offset(local)}) / "
        f"{utc:%Y-%m-%d %H} h {utc:%M} UTC"
    )


def _printed(value: Any) -> Any:
    return textsafe.plain(value) if isinstance(value, str) else value


def _printed_markdown(value: Any) -> Any:
    """For the Markdown copy: a value cannot make a link, an image or HTML of itself."""
    return textsafe.markdown_inline(value) if isinstance(value, str) else value


def environment(root: Path, zone: str, *, markdown: bool = False) -> jinja2.Environment:
    loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(root / "notices" / "templates"),
            jinja2.FileSystemLoader(DEFAULTS),
        ]
    )
    env = SandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        keep_trailing_newline=True,
        finalize=_printed_markdown if markdown else _printed,
    )
    env.filters["when_en"] = lambda v: when_en(v, zone)
    env.filters["when_fr"] = lambda v: when_fr(v, zone)
    return env


def render(
    root: Path, template: str, zone: str, context: dict[str, Any], *, markdown: bool = False
) -> Rendered:
    """The subject line and the body of one notice: for the mail, values as plain text; with
    `markdown`, for a page that renders Markdown, values escaped as Markdown."""
    env = environment(root, zone, markdown=markdown)
    try:
        subject = env.get_template("subject.j2").render(context)
        body = env.get_template(f"{template}.md.j2").render(context)
    except jinja2.TemplateNotFound as exc:
        raise InvalidInputError(f"notice template not found: {exc.name}") from exc
    except jinja2.TemplateError as exc:
        where = getattr(exc, "filename", None) or template
        line = getattr(exc, "lineno", None)
        raise InvalidInputError(f"{where}:{line or 0}: notice template error: {exc}") from exc
    return Rendered(subject=" ".join(subject.split()), body=body.strip() + "\n")


def labels(phase: str) -> dict[str, str]:
    en, fr = LABELS[phase]
    return {"en": en, "fr": fr}


def impact(level: str, description_en: str = "", description_fr: str = "") -> dict[str, str]:
    en, fr = IMPACT_LABELS.get(level, (level, level))
    return {
        "level": level,
        "label_en": en,
        "label_fr": fr,
        "description_en": description_en,
        "description_fr": description_fr,
    }
