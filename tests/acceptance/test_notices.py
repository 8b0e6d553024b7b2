"""Partner notices through the real CLI, delivered to a real SMTP server on loopback."""

from __future__ import annotations

import email
import json
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

from gcmschange import gitrepo
from gcmschange.audit import trail
from gcmschange.cli import main
from gcmschange.notify.notices import read_incidents
from gcmschange.paths import audit_log, outbox
from tests.conftest import vault_yaml

GATEWAY_PARTNERS = {
    "noc@air-maple.example",
    "ops@northstar.example",
    "immigration-it@ontario.example",
    "ti-immigration@quebec.example",
    "dli-support@schools.example",
}


class Inbox(Message):
    """Collects what the real SMTP server received, as parsed messages with their recipients."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.received: list[tuple[list[str], EmailMessage]] = []

    def handle_message(self, message: Any) -> None:
        parsed = email.message_from_bytes(message.as_bytes(), policy=default)
        assert isinstance(parsed, EmailMessage)
        rcpts = [r.strip() for r in str(message["X-RcptTo"]).split(",")]
        self.received.append((rcpts, parsed))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[Inbox]:
    inbox = Inbox(port=_free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def _smtp(port: int, extra: str = "") -> str:
    return f"smtp:\n  host: 127.0.0.1\n  port: {port}\n  timeout: 5\n{extra}"


def _configure_smtp(root: Path, port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings as the operators keep them: committed, on the commit they trust."""
    (root / "notices.yml").write_text(_smtp(port), encoding="utf-8")
    sha = gitrepo.commit_paths(root, [root / "notices.yml"], "Mail settings")
    monkeypatch.setenv("GCMS_TRUST_REF", sha)


def _run_json(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    code = main(["--repo", str(root), "--output", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_gateway_change_notifies_exactly_its_downstream_partners_by_smtp(
    estate_repo: Path,
    smtp_server: Inbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _configure_smtp(estate_repo, smtp_server.port, monkeypatch)
    code, payload = _run_json(
        estate_repo, capsys, "notices", "issue", "CHG-LAB-0002", "--phase", "scheduled"
    )
    assert code == 0, payload
    assert {n["to"] for n in payload["notices"]} == GATEWAY_PARTNERS
    assert all(n["sent"] for n in payload["notices"])
    assert {rcpt for rcpts, _ in smtp_server.received for rcpt in rcpts} == GATEWAY_PARTNERS
    for _, message in smtp_server.received:
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        text = body.get_content()
        assert "Scheduled maintenance" in message["Subject"]
        assert "Maintenance planifiée" in message["Subject"]
        assert text.index("Partner gateway accepts TLS 1.3 only") < text.index(
            "Passerelle de données des partenaires"
        )
        assert "2026-01-01 00:00 EST (UTC-05:00) / 2026-01-01 05:00 UTC" in text
        assert "2026-01-01 00 h 00 HNE (UTC-05:00) / 2026-01-01 05 h 00 UTC" in text
        assert message["Message-ID"] and message["Date"]
        assert message["Content-Language"] == "en, fr"
    events = trail.select(trail.read_events(estate_repo), event="notice.issued")
    assert [e.outcome for e in events] == ["sent"] * 5
    assert trail.verify_chain(estate_repo).ok


def test_outbox_holds_eml_and_markdown_without_smtp(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, payload = _run_json(
        estate_repo, capsys, "notices", "issue", "CHG-LAB-0003", "--phase", "started"
    )
    assert code == 0
    assert not any(n["sent"] for n in payload["notices"])
    emls = sorted(outbox(estate_repo).rglob("*.eml"))
    assert len(emls) == len(payload["notices"]) == 6  # case_api feeds everyone but the printer
    raw = emls[0].read_bytes()
    assert b"\r\n" in raw  # RFC 5322 line endings
    parsed = email.message_from_bytes(raw, policy=default)
    assert parsed["Content-Type"].startswith("text/plain")
    assert parsed.get_param("charset") == "utf-8"
    assert emls[0].with_suffix(".md").read_text(encoding="utf-8").count("# ") >= 2
    outcomes = {e.outcome for e in trail.select(trail.read_events(estate_repo), event="notice.")}
    assert outcomes == {"written"}


def test_unreachable_smtp_keeps_the_outbox_and_fails_with_a_reason(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure_smtp(estate_repo, _free_port(), monkeypatch)
    code = main(
        ["--repo", str(estate_repo), "notices", "issue", "CHG-LAB-0002", "--phase", "completed"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "5 of 5 notices not delivered (kept in the outbox): SMTP 127.0.0.1:" in err
    assert len(list(outbox(estate_repo).rglob("*.eml"))) == 5
    outcomes = {e.outcome for e in trail.select(trail.read_events(estate_repo), event="notice.")}
    assert outcomes == {"send_failed"}


def test_secret_variables_never_reach_notices_or_audit(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "s3cr3t-Canary-Value"
    source = (estate_repo / "changes" / "CHG-LAB-0002.yaml").read_text(encoding="utf-8")
    changed = source.replace("id: CHG-LAB-0002", "id: CHG-LAB-0090").replace(
        'tls_protocols: "TLSv1.3"\n',
        'tls_protocols: "TLSv1.3"\n' + vault_yaml("canary_token", secret),
    )
    (estate_repo / "changes" / "CHG-LAB-0090.yaml").write_text(changed, encoding="utf-8")
    code = main(
        [
            "--repo",
            str(estate_repo),
            "notices",
            "issue",
            "CHG-LAB-0090",
            "--phase",
            "rolled_back",
            "--reason-en",
            f"token {secret} leaked",
            "--reason-fr",
            secret,
        ]
    )
    capsys.readouterr()
    assert code == 0
    written = [p.read_bytes() for p in outbox(estate_repo).rglob("*") if p.is_file()]
    assert written and all(secret.encode() not in data for data in written)
    assert any(b"token ******** leaked" in data for data in written)
    assert secret.encode() not in audit_log(estate_repo).read_bytes()


def test_extended_shows_the_new_end_in_both_languages(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, payload = _run_json(
        estate_repo,
        capsys,
        "notices",
        "issue",
        "CHG-LAB-0002",
        "--phase",
        "extended",
        "--end",
        "2026-11-01T03:00",
    )
    assert code == 0
    text = Path(payload["notices"][0]["md"]).read_text(encoding="utf-8")
    assert "it now ends 2026-11-01 03:00 EST (UTC-05:00) / 2026-11-01 08:00 UTC" in text
    assert "se termine maintenant le 2026-11-01 03 h 00 HNE" in text


def test_organisation_templates_replace_the_defaults(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    own = estate_repo / "notices" / "templates"
    own.mkdir(parents=True)
    (own / "scheduled.md.j2").write_text(
        "EN: {{ ref }} for {{ partner.name_en }}\n\nFR : {{ ref }} pour {{ partner.name_fr }}\n",
        encoding="utf-8",
    )
    # As the organisation keeps them: committed, on the commit it trusts.
    sha = gitrepo.commit_paths(estate_repo, [own / "scheduled.md.j2"], "Our notice template")
    monkeypatch.setenv("GCMS_TRUST_REF", sha)
    code, payload = _run_json(
        estate_repo, capsys, "notices", "issue", "CHG-LAB-0002", "--phase", "scheduled"
    )
    assert code == 0
    texts = {Path(n["md"]).read_text(encoding="utf-8") for n in payload["notices"]}
    assert any("FR : CHG-LAB-0002 pour Province de l'Ontario" in t for t in texts)


def test_incident_is_recorded_notified_and_resolved(
    estate_repo: Path,
    smtp_server: Inbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _configure_smtp(estate_repo, smtp_server.port, monkeypatch)
    base = [
        "notices",
        "incident",
        "--system",
        "batch",
        "--title-en",
        "Print files delayed",
        "--title-fr",
        "Fichiers d'impression retardés",
        "--start",
        "2026-03-08T01:30",
    ]
    code, payload = _run_json(estate_repo, capsys, *base)
    assert code == 0, payload
    assert [n["to"] for n in payload["notices"]] == ["print-ops@printer.example"]
    assert "Service disruption" in smtp_server.received[0][1]["Subject"]
    code, payload = _run_json(estate_repo, capsys, *base, "--end", "2026-03-08T04:00")
    assert code == 0
    assert "Service restored" in smtp_server.received[1][1]["Subject"]
    (incident,) = read_incidents(estate_repo)
    assert incident.end is not None and incident.partners == ("passport_printer",)
    code, listing = _run_json(estate_repo, capsys, "notices", "incidents")
    assert listing["incidents"][0]["id"] == incident.id


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--system", "nope"], "incident systems: unknown ['nope']"),
        (["--system", "batch", "--start", "yesterday"], "--start 'yesterday': not an ISO"),
    ],
)
def test_incident_bad_input_is_one_line(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], args: list[str], reason: str
) -> None:
    cmd = [
        "notices",
        "incident",
        "--title-en",
        "x",
        "--title-fr",
        "x",
        "--start",
        "2026-01-01T00:00",
    ]
    code = main(["--repo", str(estate_repo), *cmd, *args])
    assert code == 1
    assert reason in capsys.readouterr().err


@pytest.mark.parametrize("phase", ["scheduled", "started", "extended", "completed", "rolled_back"])
def test_every_phase_renders_without_optional_extras(estate_repo: Path, phase: str) -> None:
    # apply and rollback call issue_notices without reasons; a template must not require them
    assert (
        main(["--repo", str(estate_repo), "notices", "issue", "CHG-LAB-0003", "--phase", phase])
        == 0
    )


def test_a_branch_cannot_point_partner_mail_and_its_password_at_its_own_server(
    estate_repo: Path,
    smtp_server: Inbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _configure_smtp(estate_repo, smtp_server.port, monkeypatch)
    # The branch's own settings: another server, and the job's vault password as the login.
    other = _free_port()
    login = "  username: x\n  password_env: GCMS_VAULT_PASSWORD\n"
    (estate_repo / "notices.yml").write_text(_smtp(other, login), encoding="utf-8")
    gitrepo.commit_paths(estate_repo, [estate_repo / "notices.yml"], "Better mail settings")
    code, payload = _run_json(
        estate_repo, capsys, "notices", "issue", "CHG-LAB-0002", "--phase", "scheduled"
    )
    assert code == 0, payload
    assert all(n["sent"] for n in payload["notices"])  # through the trusted server
    assert len(smtp_server.received) == 5


def test_a_password_variable_not_kept_for_mail_is_refused(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    login = "  username: x\n  password_env: CI_JOB_TOKEN\n"
    (estate_repo / "notices.yml").write_text(_smtp(_free_port(), login), encoding="utf-8")
    gitrepo.commit_paths(estate_repo, [estate_repo / "notices.yml"], "Mail settings")
    monkeypatch.setenv("GCMS_TRUST_REF", "HEAD")
    code = main(
        ["--repo", str(estate_repo), "notices", "issue", "CHG-LAB-0002", "--phase", "completed"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "notices.yml (at " in err
    assert "): smtp.password_env: 'CI_JOB_TOKEN' must start with GCMS_SMTP_" in err


def test_a_branch_cannot_change_who_is_told_or_what_they_read(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GCMS_TRUST_REF", gitrepo.resolve_commit(estate_repo, "HEAD") or "")
    estate = estate_repo / "estate.yml"
    text = estate.read_text(encoding="utf-8")
    contact = next(c for c in GATEWAY_PARTNERS if c in text)
    estate.write_text(text.replace(contact, "attacker@evil.example"), encoding="utf-8")
    phish = estate_repo / "notices" / "templates" / "scheduled.md.j2"
    phish.parent.mkdir(parents=True)
    phish.write_text("[Log in here](https://evil-phish.example/login)\n", encoding="utf-8")
    gitrepo.commit_paths(estate_repo, [estate, phish], "Better contacts")
    code, payload = _run_json(
        estate_repo, capsys, "notices", "issue", "CHG-LAB-0002", "--phase", "scheduled"
    )
    assert code == 0
    assert {n["to"] for n in payload["notices"]} == GATEWAY_PARTNERS
    texts = [Path(n["md"]).read_text(encoding="utf-8") for n in payload["notices"]]
    assert not any("evil-phish" in t for t in texts)
