"""SMTP settings: off unless configured; bad settings say where and why."""

from __future__ import annotations

import pytest

from gcmschange.errors import InvalidInputError
from gcmschange.notify.mailer import SmtpSettings, settings_from


def test_off_unless_configured() -> None:
    assert settings_from({"estate.yml": b"systems: {}\n"}) is None
    assert settings_from({"notices.yml": b"smtp:\n  host: mx\n  enabled: false\n"}) is None


def test_estate_section_is_read_when_there_is_no_notices_file() -> None:
    estate = b"notices:\n  smtp:\n    host: mx.example\n    port: 587\n    security: starttls\n"
    assert settings_from({"estate.yml": estate}) == SmtpSettings("mx.example", 587, "starttls")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("smtp:\n  host: mx\n  port: '25'\n", "notices.yml: smtp.port: expected int, got '25'"),
        ("smtp:\n  host: mx\n  security: tls\n", "notices.yml: smtp.security: expected one of"),
        ("smtp:\n  port: 25\n", "notices.yml: smtp: expected a mapping with at least 'host'"),
        (
            "smtp:\n  host: mx\n  username: u\n  password_env: GCMS_SMTP_PASSWORD\n",
            "notices.yml: smtp.security: none would send the password in clear to mx",
        ),
        (
            "smtp:\n  host: mx\n  password_env: GCMS_VAULT_PASSWORD\n",
            "notices.yml: smtp.password_env: 'GCMS_VAULT_PASSWORD' must start with GCMS_SMTP_",
        ),
    ],
)
def test_bad_settings_say_where(body: str, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        settings_from({"notices.yml": body.encode()})
