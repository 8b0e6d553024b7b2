"""SMTP delivery of notices: the only smtplib user. Off unless configured.

Settings come from `notices.yml` (key `smtp`) at the repository root, or from `notices.smtp`
in `estate.yml`. Passwords are never written in either file: `password_env` names the
environment variable that holds it.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from gcmschange import yamlsafe
from gcmschange.errors import InvalidInputError

Security = Literal["none", "starttls", "ssl"]
SECURITY: tuple[Security, ...] = ("none", "starttls", "ssl")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    security: Security = "none"
    username: str = ""
    password_env: str = ""
    timeout: float = 30.0


def _read(path: Path) -> Any:
    return yamlsafe.load_file(path).data


def _smtp_section(root: Path) -> tuple[str, Any]:
    own = root / "notices.yml"
    if own.is_file():
        data = _read(own) or {}
        return "notices.yml: smtp", data.get("smtp") if isinstance(data, dict) else None
    data = _read(root / "estate.yml") if (root / "estate.yml").is_file() else {}
    notices = data.get("notices") if isinstance(data, dict) else None
    return "estate.yml: notices.smtp", notices.get("smtp") if isinstance(notices, dict) else None


def _field(where: str, section: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = section.get(name, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidInputError(f"{where}.{name}: expected {kind.__name__}, got {value!r}")
    return value


def load_settings(root: Path) -> SmtpSettings | None:
    """The SMTP settings, or None when sending is not configured (or `enabled: false`)."""
    where, section = _smtp_section(root)
    if section is None or (isinstance(section, dict) and section.get("enabled") is False):
        return None
    if not isinstance(section, dict) or not section.get("host"):
        raise InvalidInputError(f"{where}: expected a mapping with at least 'host'")
    security = section.get("security", "none")
    if security not in SECURITY:
        raise InvalidInputError(f"{where}.security: expected one of {', '.join(SECURITY)}")
    return SmtpSettings(
        host=_field(where, section, "host", str, ""),
        port=_field(where, section, "port", int, 25),
        security=security,
        username=_field(where, section, "username", str, ""),
        password_env=_field(where, section, "password_env", str, ""),
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
