"""SMTP settings: off unless configured; bad settings say where and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from gcmschange.errors import InvalidInputError
from gcmschange.notify.mailer import SmtpSettings, load_settings


def test_off_unless_configured(tmp_path: Path) -> None:
    (tmp_path / "estate.yml").write_text("systems: {}\n", encoding="utf-8")
    assert load_settings(tmp_path) is None
    (tmp_path / "notices.yml").write_text("smtp:\n  host: mx\n  enabled: false\n")
    assert load_settings(tmp_path) is None


def test_estate_section_is_read_when_there_is_no_notices_file(tmp_path: Path) -> None:
    (tmp_path / "estate.yml").write_text(
        "notices:\n  smtp:\n    host: mx.example\n    port: 587\n    security: starttls\n"
    )
    assert load_settings(tmp_path) == SmtpSettings("mx.example", 587, "starttls")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("smtp:\n  host: mx\n  port: '25'\n", "notices.yml: smtp.port: expected int, got '25'"),
        ("smtp:\n  host: mx\n  security: tls\n", "notices.yml: smtp.security: expected one of"),
        ("smtp:\n  port: 25\n", "notices.yml: smtp: expected a mapping with at least 'host'"),
    ],
)
def test_bad_settings_say_where(tmp_path: Path, body: str, reason: str) -> None:
    (tmp_path / "notices.yml").write_text(body, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=reason):
        load_settings(tmp_path)
