"""Bilingual partner notices: one message per affected partner, English then French.

Partners come from the estate graph (the blast radius of the change's systems), never from
the request. Each notice is written to the outbox as an RFC 5322 message (`.eml`) and as
Markdown (`.md`), sent by SMTP when `mailer` is configured, and recorded in the audit log
as `notice.issued`. A failed delivery is recorded and reported on the notice, not raised:
apply and rollback must not stop because a mail server is down; the outbox keeps the text.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from gcmschange import gitrepo, textsafe
from gcmschange.audit import trail
from gcmschange.errors import GcmsError, InvalidInputError
from gcmschange.masking import mask_data, mask_text, secret_names, secret_values
from gcmschange.model import ChangeRequest
from gcmschange.notify import mailer, rendering
from gcmschange.notify.change_calendar import window_problem
from gcmschange.notify.incidents import Incident, incident_id, read_incidents, save_incident
from gcmschange.paths import outbox, state_dir
from gcmschange.rules import trusted
from gcmschange.rules.estate import Estate, Partner, load_estate

PHASES = ("scheduled", "started", "extended", "completed", "rolled_back")
__all__ = ["PHASES", "Incident", "Notice", "issue_incident", "issue_notices", "read_incidents"]


@dataclass(frozen=True)
class Notice:
    ref: str  # the change or incident it is about
    phase: str
    partner: str
    to: str
    subject: str
    message_id: str
    eml: Path
    md: Path
    sent: bool = False
    error: str = ""


@dataclass(frozen=True)
class _Draft:
    partner: Partner
    subject: str
    body: str
    message: EmailMessage
    page: str  # the Markdown copy kept beside the mail


def _address(name: str, addr: str, where: str) -> Address:
    try:
        return Address(display_name=name, addr_spec=addr)
    except (ValueError, HeaderParseError) as exc:
        raise InvalidInputError(f"{where}: {addr!r} is not an e-mail address") from exc


def _message(
    estate: Estate, partner: Partner, subject: str, body: str, **meta: Any
) -> EmailMessage:
    domain = estate.notices_from.rpartition("@")[2] or "localhost"
    msg = EmailMessage()
    msg["From"] = _address(estate.name_en, estate.notices_from, "estate.yml: notices_from")
    msg["To"] = _address(partner.name_en, partner.contact, f"estate.yml: partners.{partner.id}")
    msg["Subject"] = subject
    msg["Date"] = format_datetime(meta["now"].astimezone(UTC))
    msg["Message-ID"] = make_msgid(
        idstring=f"{meta['ref']}.{meta['phase']}.{partner.id}", domain=domain
    )
    msg["X-GCMS-Reference"] = meta["ref"]
    msg["X-GCMS-Phase"] = meta["phase"]
    msg["X-GCMS-Partner"] = partner.id
    msg.set_content(body, charset="utf-8", cte="quoted-printable")
    msg["Content-Language"] = "en, fr"  # after set_content, which resets Content-* headers
    return msg


def _drafts(
    root: Path,
    estate: Estate,
    systems: tuple[str, ...],
    base: dict[str, Any],
    secrets: tuple[str, ...],
) -> list[_Draft]:
    affected = set(estate.blast_radius(systems).systems)
    drafts = []
    for pid in estate.blast_radius(systems).partners:
        partner = estate.partners[pid]
        mine = [estate.systems[s] for s in partner.consumes if s in affected]
        context = {**base, "partner": partner, "systems": mine}
        rendered = rendering.render(root, base["template"], base["timezone"], context)
        subject, body = mask_text(rendered.subject, secrets), mask_text(rendered.body, secrets)
        message = _message(estate, partner, subject, body, **base)
        # Masked before escaping: an escaped secret would no longer match its mask.
        masked = mask_data(context, secrets)
        page = rendering.render(root, base["template"], base["timezone"], masked, markdown=True)
        header = textsafe.plain(f"to: {partner.contact} | {message['Message-ID']}")
        text = (
            f"<!-- {header.replace('--', '- -')} -->\n"
            f"**{page.subject}**\n\n{page.body}"  # its values were escaped as it rendered
        )
        drafts.append(_Draft(partner, subject, body, message, mask_text(text, secrets)))
    return drafts


def _batch_dir(root: Path, ref: str, phase: str, now: datetime) -> Path:
    parent = outbox(root) / ref
    stamp = f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{phase}"
    candidate, n = parent / stamp, 1
    while candidate.exists():
        n += 1
        candidate = parent / f"{stamp}-{n}"
    candidate.mkdir(parents=True)
    return candidate


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _issue(
    root: Path,
    drafts: list[_Draft],
    meta: dict[str, Any],
    change: str | None,
    source: NoticeSource,
) -> list[Notice]:
    folder = _batch_dir(root, meta["ref"], meta["phase"], meta["now"])
    notices = []
    for draft in drafts:
        eml, md = folder / f"{draft.partner.id}.eml", folder / f"{draft.partner.id}.md"
        _write(eml, draft.message.as_bytes(policy=SMTP))
        _write(md, draft.page.encode("utf-8"))
        notices.append(
            Notice(
                meta["ref"],
                meta["phase"],
                draft.partner.id,
                draft.partner.contact,
                draft.subject,
                str(draft.message["Message-ID"]),
                eml,
                md,
            )
        )
    notices = _send(notices, [d.message for d in drafts], source)
    for notice in notices:
        _record(root, notice, change)
    return notices


def _send(
    notices: list[Notice], messages: list[EmailMessage], source: NoticeSource
) -> list[Notice]:
    if not messages:
        return notices
    settings = mailer.load_settings(source.folder, source.trusted_at, source.why_not)
    if settings is None:
        return notices
    failures = mailer.deliver(settings, messages)
    return [
        replace(n, sent=n.message_id not in failures, error=failures.get(n.message_id, ""))
        for n in notices
    ]


def _record(root: Path, notice: Notice, change: str | None) -> None:
    outcome = "sent" if notice.sent else ("send_failed" if notice.error else "written")
    details = {
        "ref": notice.ref,
        "phase": notice.phase,
        "partner": notice.partner,
        "to": notice.to,
        "message_id": notice.message_id,
        "eml": str(notice.eml.relative_to(root)),
        "error": notice.error,
    }
    trail.record(root, "notice.issued", outcome=outcome, change=change, details=details)


def _title_fr(estate: Estate, change: ChangeRequest) -> str:
    given = change.raw.get("title_fr")
    if isinstance(given, str) and given:
        return given
    return ", ".join(estate.systems[s].name_fr for s in change.systems if s in estate.systems)


def _base(estate: Estate, now: datetime, **values: Any) -> dict[str, Any]:
    return {
        "org": {"name_en": estate.name_en, "name_fr": estate.name_fr},
        "sender": estate.notices_from,
        "now": now,
        "label": rendering.labels(values["label_key"]),
        "resolved": False,
        "extra": {},
        **values,
    }


NOTICE_SOURCES = ("estate.yml", "notices.yml", "notices/templates")


@dataclass(frozen=True)
class NoticeSource:
    """Where partners' contacts, the notice templates and the mail settings are read."""

    folder: Path
    trusted_at: str | None  # " (at <trust ref>)"; None: the working tree, nothing is sent
    why_not: str = ""  # why there is no trust ref to read them at


def notice_source(root: Path, change_path: str | None) -> NoticeSource:
    """The trust ref's copy of what notices read (`gcmschange.rules.trusted`), so a branch
    cannot change who is told, what they are told, or the mail server and login it goes
    through; its edits take effect once merged. Without a trust ref (no git, no default
    branch), or one older than the estate, the working tree: notices are then written, never
    sent (`mailer.load_settings`)."""
    try:
        trust = trusted.resolve(root, change_path)
    except GcmsError as exc:
        return NoticeSource(root, None, exc.message)
    files = gitrepo.files_at(root, trust.sha, NOTICE_SOURCES)
    if "estate.yml" not in files:
        return NoticeSource(root, None, f"{trust.describe()} holds no estate.yml")
    folder = state_dir(root) / "notices-at" / trust.sha
    if not (folder / "estate.yml").is_file():
        partial = folder.with_name(f"{trust.sha}.{os.getpid()}.tmp")
        shutil.rmtree(partial, ignore_errors=True)
        for name, data in files.items():
            (partial / name).parent.mkdir(parents=True, exist_ok=True)
            (partial / name).write_bytes(data)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    return NoticeSource(folder, f" (at {trust.describe()})")


def issue_notices(
    root: Path,
    change: ChangeRequest,
    phase: str,
    *,
    now: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> list[Notice]:
    """Notify every partner downstream of the change's systems that it reached `phase`.

    `extra` feeds the templates: `end` (new end, for "extended"), `reason_en`/`reason_fr`.
    """
    if phase not in PHASES:
        raise InvalidInputError(f"notice phase {phase!r}: expected one of {', '.join(PHASES)}")
    source = notice_source(root, change.path or None)
    estate = load_estate(source.folder)
    secrets = secret_values(root, change)
    data = mask_data(dict(extra or {}), secrets, secret_names(root, change.playbook))
    end = data.get("end", change.window.end) if phase == "extended" else change.window.end
    base = _base(
        estate,
        now or datetime.now(UTC),
        label_key=phase,
        template=phase,
        ref=change.id,
        phase=phase,
        title_en=change.title,
        title_fr=_title_fr(estate, change),
        impact=rendering.impact(
            change.impact.level, change.impact.description_en, change.impact.description_fr
        ),
        start=change.window.start,
        end=end,
        timezone=change.window.timezone,
        extra=data,
        change={"id": change.id, "environment": change.environment, "type": change.type},
    )
    drafts = _drafts(source.folder, estate, change.systems, base, secrets)
    return _issue(root, drafts, base, change.id, source)


def issue_incident(
    root: Path,
    systems: tuple[str, ...] | list[str],
    *,
    title_en: str,
    title_fr: str,
    impact: str,
    start: datetime,
    end: datetime | None = None,
    now: datetime | None = None,
    timezone: str = "America/Toronto",
    description_en: str = "",
    description_fr: str = "",
) -> list[Notice]:
    """Record an unplanned outage (or its update/resolution) and notify the partners."""
    source = notice_source(root, None)
    estate = load_estate(source.folder)
    targets = _check_incident(
        estate, tuple(systems), impact, start=start, end=end, timezone=timezone
    )
    moment = now or datetime.now(UTC)
    incident = Incident(
        id=incident_id(start, targets, title_en),
        title_en=title_en,
        title_fr=title_fr,
        systems=targets,
        partners=estate.blast_radius(targets).partners,
        impact=impact,
        start=start,
        end=end,
        timezone=timezone,
        recorded=moment,
        description_en=description_en,
        description_fr=description_fr,
    )
    save_incident(root, incident)
    trail.record(root, "incident.recorded", details={"incident": incident.id, "end": str(end)})
    resolved = incident.resolved(moment)
    phase = "incident_resolved" if resolved else "incident"
    base = _base(
        estate,
        moment,
        label_key=phase,
        template="incident",
        ref=incident.id,
        phase=phase,
        title_en=title_en,
        title_fr=title_fr,
        resolved=resolved,
        start=start,
        end=end,
        impact=rendering.impact(impact, description_en, description_fr),
        timezone=timezone,
    )
    return _issue(root, _drafts(source.folder, estate, targets, base, ()), base, None, source)


def _check_incident(
    estate: Estate,
    systems: tuple[str, ...],
    impact: str,
    *,
    start: datetime,
    end: datetime | None,
    timezone: str,
) -> tuple[str, ...]:
    unknown = [s for s in systems if s not in estate.systems]
    if not systems or unknown:
        known = ", ".join(sorted(estate.systems))
        raise InvalidInputError(f"incident systems: unknown {unknown or '(none given)'} ({known})")
    if impact not in rendering.IMPACT_LABELS:
        raise InvalidInputError(f"incident impact {impact!r}: expected degraded or outage")
    if start.tzinfo is None or (end is not None and end.tzinfo is None):
        raise InvalidInputError("incident start/end: a time zone is required")
    # Refused before it is recorded: a record the notices, calendar and site cannot write
    # would be kept for ever and left out of every one of them.
    why = window_problem(start, end, timezone)
    if why:
        raise InvalidInputError(f"incident start/end: {why}")
    if end is not None and end < start:
        raise InvalidInputError("incident end: before its start")
    return tuple(dict.fromkeys(systems))
