"""Approval gates through the real CLI: real ssh-keygen keys, a real approvers file, real git.

Each refusal named in issue 5 gets its own precise message and exit 1; approvals that
`approve` would refuse are forged with the same signing code, because the gate must not
rely on `approve` having refused them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from gcmschange.apply import road
from gcmschange.approvals import gate as approvals
from gcmschange.approvals.statements import Statement, new_nonce, utc_text, write_signed
from gcmschange.audit import trail
from gcmschange.cli import main
from gcmschange.validate.load import load_change

# principal -> (git e-mail alias, roles); "mallory" gets a key but no line in the file.
PEOPLE: dict[str, tuple[str, str]] = {
    "rm-alice": ("alice@gcms.example", ""),
    "owner-portal": ("portal-owner@gcms.example", "owner:portal"),
    "owner-case-api": ("case-api-owner@gcms.example", "owner:case_api"),
    "owner-partner-gateway": ("gateway-owner@gcms.example", "owner:partner_gateway"),
    "cab-carol": ("carol@gcms.example", "change-board"),
    "cab-dave": ("dave@gcms.example", "change-board"),
}
LAB_INVENTORY = """all:
  children:
    portal:
      hosts:
        portal-l01: {}
        portal-l02: {}
    case_api:
      hosts:
        caseapi-l01: {}
    partner_gateway:
      hosts:
        gateway-l01: {}
"""


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def commit_all(root: Path, message: str, email: str = "") -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message, *(["--author", f"Someone <{email}>"] if email else []))


@dataclass(frozen=True)
class Lab:
    root: Path
    keys: dict[str, Path]

    def run(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        code = main(["--repo", str(self.root), *args])
        out, err = capsys.readouterr()
        return code, out, err

    def approve(
        self, capsys: pytest.CaptureFixture[str], change: str, who: str, *more: str
    ) -> tuple[int, str, str]:
        return self.run(capsys, "approve", change, "--key", str(self.keys[who]), *more)

    def digest(self, change: str) -> str:
        return road.prepare(self.root, change).digest

    def forge(self, change: str, signer: str, **fields: str) -> Path:
        """A statement signed with `signer`'s real key, bypassing `approve`'s own checks."""
        prepared = road.prepare(self.root, change)
        now = datetime.now(UTC)
        base = Statement(
            change=prepared.loaded.change.id,
            digest=prepared.digest,
            environment=prepared.loaded.change.environment,
            principal=signer,
            role=PEOPLE.get(signer, ("", "owner:portal"))[1].split(",")[0] or "owner:portal",
            issued=utc_text(now),
            expires=utc_text(now + timedelta(days=1)),
            nonce=new_nonce(),
        )
        path, _ = write_signed(self.root, replace(base, **fields), self.keys[signer])
        return path


def keygen(path: Path, comment: str) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True
    )
    return path


def approvers_text(keys: dict[str, Path], extra_roles: dict[str, str] | None = None) -> str:
    lines = []
    for who, (mail, roles) in PEOPLE.items():
        held = ",".join(r for r in (roles, (extra_roles or {}).get(who, "")) if r)
        if held:
            lines.append(f"# roles: {who} {held}")
        pub = " ".join(keys[who].with_suffix(".pub").read_text().split()[:2])
        lines.append(f'{who},{mail} namespaces="gcmschange-approval" {pub}')
    return "\n".join(lines) + "\n"


def trust_head(root: Path) -> None:
    """These tests judge approvals, not where the rules come from (tests/acceptance/
    test_trust.py does that): the rules they set up are trusted as committed, as if a
    governance change had put them in force."""
    sha = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    os.environ["GCMS_TRUST_REF"] = sha


def make_lab(root: Path, keydir: Path, extra_roles: dict[str, str] | None = None) -> Lab:
    keydir.mkdir(exist_ok=True)
    keys = {who: keygen(keydir / who, who) for who in [*PEOPLE, "mallory"]}
    (root / "approvers").write_text(approvers_text(keys, extra_roles), encoding="utf-8")
    (root / "inventories" / "lab" / "hosts.yml").write_text(LAB_INVENTORY, encoding="utf-8")
    commit_all(root, "test approvers and lab inventory")
    trust_head(root)
    return Lab(root, keys)


def set_approvers(lab: Lab, extra_roles: dict[str, str]) -> None:
    (lab.root / "approvers").write_text(approvers_text(lab.keys, extra_roles), encoding="utf-8")
    commit_all(lab.root, "roles")
    trust_head(lab.root)


@pytest.fixture
def lab(estate_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lab:
    monkeypatch.setenv("GCMS_TRUST_REF", "")  # restored after the test
    return make_lab(estate_repo, tmp_path / "keys")


def gate(lab: Lab, capsys: pytest.CaptureFixture[str], change: str) -> tuple[int, str]:
    code, out, err = lab.run(capsys, "approvals", change, "--gate")
    return code, out + err


def approve_owners(lab: Lab, capsys: pytest.CaptureFixture[str], change: str) -> None:
    for who in ("owner-portal", "owner-case-api"):
        code, _, err = lab.approve(capsys, change, who)
        assert code == 0, err


def test_a_correctly_approved_change_passes_the_gate(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    approve_owners(lab, capsys, "CHG-LAB-0001")
    code, out = gate(lab, capsys, "CHG-LAB-0001")
    assert code == 0, out
    assert "owner:portal             by owner-portal" in out
    assert "gate: passes" in out
    events = [e.event for e in trail.read_events(lab.root)]
    assert events.count("approval.granted") == 2
    assert events[-1] == "gate.passed"


def test_approvals_are_committed_and_listed_as_json(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    approve_owners(lab, capsys, "CHG-LAB-0001")
    log = subprocess.run(
        ["git", "-C", str(lab.root), "log", "-1", "--format=%s", "--stat"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "Approve CHG-LAB-0001 as owner:case_api (owner-case-api)" in log
    assert ".json.sig" in log
    code, out, _ = lab.run(capsys, "approvals", "CHG-LAB-0001", "--output", "json")
    body = json.loads(out)
    assert code == 0
    assert body["passed"] is True
    assert {v["status"] for v in body["verdicts"]} == {"valid"}
    assert body["satisfied"] == {"owner:portal": "owner-portal", "owner:case_api": "owner-case-api"}


def refused(lab: Lab, capsys: pytest.CaptureFixture[str], change: str, expected: str) -> str:
    code, out = gate(lab, capsys, change)
    assert code == 1, out
    assert expected in out, out
    last = trail.read_events(lab.root)[-1]
    assert (last.event, last.outcome) == ("gate.refused", "refused")
    assert any(expected in r for r in last.details["reasons"])
    return out


def test_self_approval_is_refused(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    set_approvers(lab, {"rm-alice": "owner:portal"})
    code, _, err = lab.approve(capsys, "CHG-LAB-0001", "rm-alice")
    assert code == 1
    assert "approval refused: self-approval: rm-alice requested CHG-LAB-0001" in err
    assert trail.read_events(lab.root)[-1].event == "approval.refused"
    lab.forge("CHG-LAB-0001", "rm-alice", role="owner:portal")
    lab.approve(capsys, "CHG-LAB-0001", "owner-case-api")
    refused(lab, capsys, "CHG-LAB-0001", "self-approval: rm-alice requested CHG-LAB-0001")


def test_every_author_of_the_change_file_counts_as_requester(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    change = lab.root / "changes" / "CHG-LAB-0001.yaml"
    change.write_text(change.read_text() + "# reworded by the portal owner\n")
    commit_all(lab.root, "edit the change", email="portal-owner@gcms.example")
    change.write_text(change.read_text() + "# and tidied by someone else afterwards\n")
    commit_all(lab.root, "tidy", email="someone-else@gcms.example")
    code, _, err = lab.approve(capsys, "CHG-LAB-0001", "owner-portal")
    assert code == 1
    why = "self-approval: owner-portal authored "
    assert why in err and "which touched changes/CHG-LAB-0001.yaml" in err
    lab.forge("CHG-LAB-0001", "owner-portal")
    lab.approve(capsys, "CHG-LAB-0001", "owner-case-api")
    refused(lab, capsys, "CHG-LAB-0001", why)


def test_a_commit_under_another_name_still_names_its_committer(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    """A forged author does not hide who committed: the portal owner commits the change under
    Alice's name and approves it alone; the committer counts as a requester."""
    change = lab.root / "changes" / "CHG-LAB-0001.yaml"
    change.write_text(change.read_text() + "# made by the portal owner, signed as Alice\n")
    git(lab.root, "add", "-A")
    committer = {
        "GIT_COMMITTER_NAME": "Portal Owner",
        "GIT_COMMITTER_EMAIL": "portal-owner@gcms.example",
    }
    subprocess.run(
        [
            "git",
            "-C",
            str(lab.root),
            "commit",
            "-qm",
            "edit",
            "--author",
            "Alice <alice@gcms.example>",
        ],
        check=True,
        capture_output=True,
        env={**os.environ, **committer},
    )
    lab.forge("CHG-LAB-0001", "owner-portal")
    lab.forge("CHG-LAB-0001", "owner-case-api", role="owner:case_api")
    refused(lab, capsys, "CHG-LAB-0001", "self-approval: owner-portal committed ")


def test_unknown_key_is_refused(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = lab.approve(capsys, "CHG-LAB-0001", "mallory")
    assert code == 1
    assert "is not in the approvers file" in err
    lab.forge("CHG-LAB-0001", "mallory", principal="owner-portal", role="owner:portal")
    lab.approve(capsys, "CHG-LAB-0001", "owner-case-api")
    refused(
        lab,
        capsys,
        "CHG-LAB-0001",
        "claims to be from 'owner-portal' but is signed by a key that is not in the approvers",
    )


def test_tampered_statement_with_valid_signature_is_refused(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    approve_owners(lab, capsys, "CHG-LAB-0001")
    statement = next((lab.root / "approvals" / "CHG-LAB-0001").glob("*owner-portal*.json"))
    doc = json.loads(statement.read_text())
    doc["expires"] = "2099-01-01T00:00:00Z"
    statement.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    refused(
        lab,
        capsys,
        "CHG-LAB-0001",
        "the signature does not match the statement (altered after owner-portal signed)",
    )


def test_approval_of_another_change_replayed_here_is_refused(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = lab.approve(capsys, "CHG-LAB-0003", "owner-case-api")
    assert code == 0, err
    lab.approve(capsys, "CHG-LAB-0001", "owner-portal")
    here = lab.root / "approvals" / "CHG-LAB-0001"
    for src in (lab.root / "approvals" / "CHG-LAB-0003").iterdir():
        shutil.copy(src, here / src.name)
    refused(
        lab,
        capsys,
        "CHG-LAB-0001",
        "approves CHG-LAB-0003, not CHG-LAB-0001 (replayed from another change)",
    )


def _retarget(lab: Lab, change: str, new_id: str, **fields: object) -> None:
    path = lab.root / "changes" / f"{change}.yaml"
    doc = yaml.safe_load(path.read_text())
    # A short window outside any freeze, as prod and staging policy demand.
    window = {
        "start": "2027-03-10T22:00:00",
        "end": "2027-03-11T02:00:00",
        "timezone": "America/Toronto",
    }
    doc.update(id=new_id, window=window, **fields)
    (lab.root / "changes" / f"{new_id}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    commit_all(lab.root, f"{new_id}")


def test_staging_approval_replayed_for_prod_is_refused(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    _retarget(
        lab,
        "CHG-LAB-0001",
        "CHG-PROD-0100",
        environment="staging",
        systems=["portal"],
        verification=["verify/test_common.py", "verify/test_portal.py"],
    )
    code, _, err = lab.approve(capsys, "CHG-PROD-0100", "owner-portal")
    assert code == 0, err
    _retarget(lab, "CHG-PROD-0100", "CHG-PROD-0100", environment="prod")
    lab.approve(capsys, "CHG-PROD-0100", "cab-carol")
    refused(
        lab, capsys, "CHG-PROD-0100", "approves environment 'staging'; CHG-PROD-0100 targets 'prod'"
    )


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text, rel
    path.write_text(text.replace(old, new, 1))


STALE_EDITS = {
    "template": ("templates/portal/index.html.j2", "</", "<!-- edited --></"),
    "variable": (
        "changes/CHG-LAB-0001.yaml",
        "nginx_worker_connections: 1024",
        "nginx_worker_connections: 2048",
    ),
    "playbook": ("playbooks/configure.yml", "\n", "\n# edited after approval\n"),
    "inventory": ("inventories/lab/hosts.yml", "portal-l02: {}", "portal-l02: {x: 1}"),
}


@pytest.mark.parametrize("what", sorted(STALE_EDITS))
def test_approval_made_before_a_change_to_what_it_covers_is_stale(
    lab: Lab, capsys: pytest.CaptureFixture[str], what: str
) -> None:
    approve_owners(lab, capsys, "CHG-LAB-0001")
    before = lab.digest("CHG-LAB-0001")
    _edit(lab.root, *STALE_EDITS[what])
    commit_all(lab.root, f"edit the {what}")
    after = lab.digest("CHG-LAB-0001")
    assert before != after
    out = refused(
        lab,
        capsys,
        "CHG-LAB-0001",
        f"approved digest {before[:12]}, the change is "
        f"now at {after[:12]} (something it covers changed since)",
    )
    assert "owner:portal: no valid approval" in out


def test_expired_approval_is_refused(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    lab.approve(capsys, "CHG-LAB-0001", "owner-case-api")
    lab.forge(
        "CHG-LAB-0001",
        "owner-portal",
        issued="2026-01-01T00:00:00Z",
        expires="2026-01-02T00:00:00Z",
    )
    refused(lab, capsys, "CHG-LAB-0001", "expired at 2026-01-02T00:00:00Z")


def test_one_person_cannot_fill_two_roles(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    set_approvers(lab, {"owner-portal": "owner:case_api"})
    for role in ("owner:portal", "owner:case_api"):
        code, _, err = lab.approve(capsys, "CHG-LAB-0001", "owner-portal", "--role", role)
        assert code == 0, err
    refused(
        lab,
        capsys,
        "CHG-LAB-0001",
        "approved only by owner-portal, who already counts for "
        "owner:portal (each role needs a distinct person)",
    )


def test_role_not_held_is_refused(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = lab.approve(capsys, "CHG-LAB-0001", "cab-carol", "--role", "owner:portal")
    assert code == 1
    assert "cab-carol does not hold role 'owner:portal' in the approvers file" in err
    lab.forge("CHG-LAB-0001", "cab-carol", role="owner:portal")
    lab.approve(capsys, "CHG-LAB-0001", "owner-case-api")
    refused(
        lab,
        capsys,
        "CHG-LAB-0001",
        "cab-carol does not hold role 'owner:portal' in the approvers file",
    )


def test_prod_normal_change_without_change_board_is_refused(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    _retarget(lab, "CHG-LAB-0001", "CHG-PROD-0200", environment="prod")
    approve_owners(lab, capsys, "CHG-PROD-0200")
    out = refused(lab, capsys, "CHG-PROD-0200", "change-board: no approval")
    assert "CHG-PROD-0200 (prod, digest" in out
    lab.approve(capsys, "CHG-PROD-0200", "cab-carol")
    assert gate(lab, capsys, "CHG-PROD-0200")[0] == 0


def test_a_nonce_in_two_signed_statements_that_differ_flags_both(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    approve_owners(lab, capsys, "CHG-LAB-0001")
    original = next((lab.root / "approvals" / "CHG-LAB-0001").glob("*owner-portal*.json"))
    nonce = json.loads(original.read_text())["nonce"]
    earlier = utc_text(datetime.now(UTC) - timedelta(minutes=1))  # a file name of its own
    reworked = lab.forge(
        "CHG-LAB-0001", "owner-portal", nonce=nonce, comment="again", issued=earlier
    )
    out = refused(lab, capsys, "CHG-LAB-0001", "also in 1 other signed statement(s)")
    assert original.name in out and reworked.name in out


def test_a_copied_nonce_cannot_cancel_a_real_approval(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    # Anyone who can push under approvals/ could otherwise cancel approvals at will: a
    # byte-for-byte copy (the same approval), or an unsigned file with the same nonce.
    approve_owners(lab, capsys, "CHG-LAB-0001")
    original = next((lab.root / "approvals" / "CHG-LAB-0001").glob("*owner-portal*.json"))
    elsewhere = lab.root / "approvals" / "CHG-LAB-0003"
    elsewhere.mkdir()
    copy = elsewhere / original.name
    shutil.copy(original, copy)
    shutil.copy(original.with_name(original.name + ".sig"), copy.with_name(copy.name + ".sig"))
    junk = dict(json.loads(original.read_text()), comment="junk")
    (elsewhere / "junk.json").write_text(json.dumps(junk))
    (elsewhere / "junk.json.sig").write_text("not a signature")
    code, out = gate(lab, capsys, "CHG-LAB-0001")
    assert code == 0, out
    code, out = gate(lab, capsys, "CHG-LAB-0003")
    assert "approves CHG-LAB-0001, not CHG-LAB-0003" in out


def test_emergency_change_passes_on_one_approval_and_owes_a_review(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    _retarget(
        lab,
        "CHG-LAB-0001",
        "CHG-PROD-0300",
        environment="prod",
        type="emergency",
        incident="INC-2026-0042",
    )
    code, _, err = lab.approve(capsys, "CHG-PROD-0300", "cab-carol")
    assert code == 0, err
    code, out = gate(lab, capsys, "CHG-PROD-0300")
    assert code == 0, out
    change = load_change(lab.root, "CHG-PROD-0300")
    digest = lab.digest("CHG-PROD-0300")
    later = datetime.now(UTC) + timedelta(days=6)
    overdue = approvals.check_gate(lab.root, change, digest, now=later).review
    assert overdue is not None
    assert overdue.overdue
    assert "post-implementation review: due" in lab.run(capsys, "approvals", "CHG-PROD-0300")[1]
    code, _, err = lab.approve(capsys, "CHG-PROD-0300", "cab-dave", "--role", "review")
    assert code == 0, err
    done = approvals.check_gate(lab.root, change, digest, now=later).review
    assert done is not None
    assert (done.done_by, done.overdue) == ("cab-dave", False)


def test_expiry_beyond_policy_and_bad_durations_are_refused(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = lab.approve(capsys, "CHG-LAB-0001", "owner-portal", "--expires", "30d")
    assert code == 1
    assert "an expiry of 30 days exceeds the policy maximum of 14 days" in err
    code, _, err = lab.approve(capsys, "CHG-LAB-0001", "owner-portal", "--expires", "soon")
    assert code == 2
    assert "expected a positive duration like 30m, 12h, 3d, 2w" in err


@pytest.mark.parametrize(
    "hostile",
    [
        "deeply nested JSON elsewhere",
        "a folder named like a statement",
        "a huge file",
        "a link",
        "null",
        "a number",
    ],
)
def test_a_hostile_file_under_approvals_is_judged_never_a_crash(
    lab: Lab, capsys: pytest.CaptureFixture[str], hostile: str
) -> None:
    # Anyone can commit under approvals/ (a data-only merge request), and every gate reads all
    # of it for the replay check: one bad file must not stop every other change's apply.
    approve_owners(lab, capsys, "CHG-LAB-0001")
    own = lab.root / "approvals" / "CHG-LAB-0001"
    if hostile == "deeply nested JSON elsewhere":
        (lab.root / "approvals" / "ZZZ").mkdir()
        (lab.root / "approvals" / "ZZZ" / "deep.json").write_text("[" * 100_000)
        code, out = gate(lab, capsys, "CHG-LAB-0001")
        assert code == 0, out  # not this change's file: the others still pass
        return
    if hostile == "a folder named like a statement":
        (own / "a.json").mkdir()
    elif hostile == "null":
        (own / "a.json").write_text("null")
    elif hostile == "a number":
        (own / "a.json").write_text("1e999999")
    elif hostile == "a huge file":
        (own / "a.json").write_text("{" + " " * 100_000 + "}")
    else:
        (own / "a.json").symlink_to("/dev/zero")
    (own / "a.json.sig").write_text("x")
    code, out = gate(lab, capsys, "CHG-LAB-0001")
    assert code in (0, 1), out
    assert "approvals/CHG-LAB-0001/a.json" in out and "malformed" in out
    assert "internal error" not in out


def test_a_key_without_a_role_and_a_public_key_are_each_one_clear_line(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = lab.approve(capsys, "CHG-LAB-0001", "rm-alice")
    assert code == 1
    assert "rm-alice holds no approver role in the approvers file" in err
    public = lab.keys["owner-portal"].with_suffix(".pub")
    code, _, err = lab.run(capsys, "approve", "CHG-LAB-0001", "--key", str(public))
    assert code == 1
    assert f"{public}: a public key; --key takes your private key" in err
    assert "chmod" not in err
