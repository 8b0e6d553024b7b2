"""SMTP delivery of notices: the only smtplib user. Off unless configured.

Settings come from `notices.yml` (key `smtp`) at the repository root, or from `notices.smtp`
in `estate.yml`, **as the trust ref holds them** (`notices.notice_source`): they say where
partner mail goes and which credential goes with it, so a branch must not be able to point
them at its own server. An edit takes effect once merged. The password is never in either
file: `password_env` names the environment variable holding it, and must start with
`GCMS_SMTP_`, so no file can send another secret of the job (the vault password, a CI token)
to a mail server.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from gcmschange import yamlsafe
from gcmschange.errors import InvalidInputError

Security = Literal["none", "starttls", "ssl"]
SECURITY: tuple[Security, ...] = ("none", "starttls", "ssl")
SMTP_VARIABLES = "GCMS_SMTP_"  # the prefix password_env must have
FILES = ("notices.yml", "estate.yml")
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})  # a local relay: nothing on the wire


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    security: Security = "none"
    username: str = ""
    password_env: str = ""
    timeout: float = 30.0


def _parsed(files: Mapping[str, bytes], name: str) -> Any:
    if name not in files:
        return None
    return yamlsafe.load_bytes(files[name], name).data


def _smtp_section(files: Mapping[str, bytes]) -> tuple[str, Any]:
    own = _parsed(files, "notices.yml")
    if own is not None or "notices.yml" in files:
        return "notices.yml: smtp", own.get("smtp") if isinstance(own, dict) else None
    data = _parsed(files, "estate.yml")
    notices = data.get("notices") if isinstance(data, dict) else None
    return "estate.yml: notices.smtp", notices.get("smtp") if isinstance(notices, dict) else None


def _in_tree(folder: Path) -> dict[str, bytes]:
    return {n: (folder / n).read_bytes() for n in FILES if (folder / n).is_file()}


def _field(where: str, section: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = section.get(name, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidInputError(f"{where}.{name}: expected {kind.__name__}, got {value!r}")
    return value


def load_settings(folder: Path, trusted_at: str | None, why_not: str = "") -> SmtpSettings | None:
    """The SMTP settings in `folder`, the trust ref's copy of them (`notices.notice_source`,
    `trusted_at` saying which), or None when sending is not configured there (or `enabled:
    false`). A folder that is not the trust ref's may not send."""
    files = _in_tree(folder)
    if trusted_at is None:
        if _smtp_section(files)[1] is None:
            return None  # nothing to trust or distrust: notices are written, not sent
        raise InvalidInputError(
            f"SMTP settings are read from the trust ref, and there is none: {why_not}"
        )
    return settings_from(files, trusted_at)


def settings_from(files: Mapping[str, bytes], at: str = "") -> SmtpSettings | None:
    where, section = _smtp_section(files)
    file, _, key = where.partition(": ")
    where = f"{file}{at}: {key}"
    if section is None or (isinstance(section, dict) and section.get("enabled") is False):
        return None
    if not isinstance(section, dict) or not section.get("host"):
        raise InvalidInputError(f"{where}: expected a mapping with at least 'host'")
    security = section.get("security", "none")
    if security not in SECURITY:
        raise InvalidInputError(f"{where}.security: expected one of {', '.join(SECURITY)}")
    password_env = _field(where, section, "password_env", str, "")
    if password_env and not password_env.startswith(SMTP_VARIABLES):
        raise InvalidInputError(
            f"{where}.password_env: {password_env!r} must start with {SMTP_VARIABLES} "
            "(a variable kept for the mail password, not another secret of the job)"
        )
    host = _field(where, section, "host", str, "")
    if password_env and security == "none" and host not in LOOPBACK:
        raise InvalidInputError(
            f"{where}.security: none would send the password in clear to {host}; "
            "use starttls or ssl"
        )
    return SmtpSettings(
        host=host,
        port=_field(where, section, "port", int, 25),
        security=security,
        username=_field(where, section, "username", str, ""),
        password_env=password_env,
        timeout=_field(where, section, "timeout", float, 30.0),
    )


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    if settings.security == "ssl":
        context = ssl.create_default_context()
        return smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout, context=context
        )
    client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    if settings.security == "starttls":
        client.starttls(context=ssl.create_default_context())
    return client


def _login(client: smtplib.SMTP, settings: SmtpSettings) -> None:
    if not settings.username:
        return
    password = os.environ.get(settings.password_env, "") if settings.password_env else ""
    if not password:
        raise smtplib.SMTPAuthenticationError(
            535, b"no password in $" + settings.password_env.encode()
        )
    client.login(settings.username, password)


def deliver(settings: SmtpSettings, messages: Sequence[EmailMessage]) -> dict[str, str]:
    """Send every message over one connection; returns Message-ID -> error for failures."""
    where = f"SMTP {settings.host}:{settings.port}"
    failures: dict[str, str] = {}
    try:
        with _connect(settings) as client:
            _login(client, settings)
            for message in messages:
                try:
                    client.send_message(message)
                except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError) as exc:
                    failures[str(message["Message-ID"])] = f"{where}: refused: {exc}"
    except (smtplib.SMTPException, OSError) as exc:
        reason = f"{where}: {type(exc).__name__}: {exc}"
        for message in messages:
            failures.setdefault(str(message["Message-ID"]), reason)
    return failures
