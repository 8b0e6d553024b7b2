"""The gate trusts no branch it judges: each attack class through the real CLI, with real keys
and real git branches, refused with exit 1 and a reason that names it.

The rules (approvers, policy.yml, catalogue/) come from the trust ref: for a branch, its merge
base with main; a change to them takes effect only when two change-board members approve it
under the rules before it (`approve --governance`).
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gcmschange.apply import road
from gcmschange.approvals.statements import Statement, new_nonce, utc_text, write_signed
from gcmschange.audit import trail
from gcmschange.cli import main
from tests.conftest import KEYS

CHANGE = "CHG-LAB-0002"  # partner_gateway, normal, lab: owner:partner_gateway must approve
LAB_INVENTORY = "all:\n  children:\n    partner_gateway:\n      hosts:\n        gateway-l01: {}\n"


@pytest.fixture
def estate_repo(estate_repo: Path) -> Path:
    """The reference estate with a lab inventory (written by `lab up` in real use)."""
    (estate_repo / "inventories" / "lab" / "hosts.yml").write_text(LAB_INVENTORY, encoding="utf-8")
    git(estate_repo, "add", "-A")
    git(estate_repo, "commit", "-qm", "lab inventory")
    return estate_repo


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def key(tmp: Path, name: str) -> Path:
    """A private lab key with the mode ssh-keygen insists on."""
    target = tmp / "keys" / name
    target.parent.mkdir(exist_ok=True)
    shutil.copy(KEYS / name, target)
    target.chmod(0o600)
    return target


def new_key(tmp: Path, name: str) -> Path:
    path = tmp / "keys" / name
    path.parent.mkdir(exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return path


def run(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str]:
    code = main(["--repo", str(root), *args])
    out, err = capsys.readouterr()
    return code, out + err


def branch(root: Path, name: str = "attack") -> None:
    git(root, "checkout", "-q", "-b", name)


def commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


def refused_for(out: str, rules_file: str) -> bool:
    """The gate's refusal names the rules file first, and says the rules in force differ."""
    reasons = out.partition("gate refused: ")[2]
    return reasons.startswith(f"{rules_file} in ") and "differs from the rules in force" in reasons


def gate(capsys: pytest.CaptureFixture[str], root: Path) -> tuple[int, str]:
    return run(capsys, root, "approvals", CHANGE, "--gate")


def approve(capsys: pytest.CaptureFixture[str], root: Path, who: Path) -> tuple[int, str]:
    return run(capsys, root, "approve", CHANGE, "--key", str(who))


def add_approver(root: Path, pub: Path, principal: str, roles: str) -> None:
    line = " ".join(pub.read_text().split()[:2])
    with (root / "approvers").open("a", encoding="utf-8") as handle:
        handle.write(
            f'# roles: {principal} {roles}\n{principal} namespaces="gcmschange-approval" {line}\n'
        )


def test_the_reference_change_passes_when_its_owner_approves(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = approve(capsys, estate_repo, key(tmp_path, "owner-partner-gateway"))
    assert code == 0, out
    code, out = gate(capsys, estate_repo)
    assert code == 0, out
    assert "rules from:" in run(capsys, estate_repo, "approvals", CHANGE)[1]


def test_a_branch_that_adds_its_authors_key_is_refused(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mallory = new_key(tmp_path, "mallory")
    branch(estate_repo)
    add_approver(
        estate_repo, mallory.with_suffix(".pub"), "mallory", "owner:partner_gateway,change-board"
    )
    commit(estate_repo, "approvers: a new colleague")
    code, out = approve(capsys, estate_repo, mallory)
    assert code == 1 and "is not in the approvers" in out
    # Forged past `approve`: the gate judges with the trusted approvers all the same.
    prepared = road.prepare(estate_repo, CHANGE)
    now = datetime.now(UTC)
    statement = Statement(
        CHANGE,
        prepared.digest,
        "lab",
        "mallory",
        "owner:partner_gateway",
        utc_text(now),
        utc_text(now + timedelta(days=1)),
        new_nonce(),
    )
    write_signed(estate_repo, statement, mallory)
    code, out = gate(capsys, estate_repo)
    assert code == 1
    assert refused_for(out, "approvers")
    assert "not in the approvers file" in out
    assert trail.read_events(estate_repo)[-1].event == "gate.refused"


def test_a_branch_that_swaps_an_approvers_key_is_refused(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mallory = new_key(tmp_path, "mallory")
    branch(estate_repo)
    text = (estate_repo / "approvers").read_text(encoding="utf-8").splitlines()
    pub = " ".join(mallory.with_suffix(".pub").read_text().split()[:2])
    swapped = [
        f'owner-partner-gateway,gateway-owner@gcms.example namespaces="gcmschange-approval" {pub}'
        if line.startswith("owner-partner-gateway,")
        else line
        for line in text
    ]
    (estate_repo / "approvers").write_text("\n".join(swapped) + "\n", encoding="utf-8")
    commit(estate_repo, "approvers: rotate the gateway owner's key")
    code, out = approve(capsys, estate_repo, mallory)
    assert code == 1, out
    code, out = gate(capsys, estate_repo)
    assert code == 1 and refused_for(out, "approvers")


def test_a_branch_that_lowers_the_policy_is_refused(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    branch(estate_repo)
    policy = estate_repo / "policy.yml"
    policy.write_text(
        policy.read_text(encoding="utf-8").replace(
            "  lab:\n    normal: [owner]", "  lab:\n    normal: []"
        ),
        encoding="utf-8",
    )
    commit(estate_repo, "policy: lab needs no approval")
    code, out = gate(capsys, estate_repo)
    assert code == 1
    assert refused_for(out, "policy.yml")
    assert "owner:partner_gateway" in out  # judged by the trusted policy: still required


def test_a_branch_that_makes_its_change_standard_is_refused(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    branch(estate_repo)
    entry = (estate_repo / "catalogue" / "raise-log-level.yml").read_text(encoding="utf-8")
    (estate_repo / "catalogue" / "anything-goes.yml").write_text(
        entry.replace("name: raise-log-level", "name: anything-goes"), encoding="utf-8"
    )
    commit(estate_repo, "catalogue: one more standard change")
    code, out = gate(capsys, estate_repo)
    assert code == 1 and refused_for(out, "catalogue/anything-goes.yml")


def test_an_uncommitted_edit_to_the_rules_is_refused_too(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert approve(capsys, estate_repo, key(tmp_path, "owner-partner-gateway"))[0] == 0
    with (estate_repo / "policy.yml").open("a", encoding="utf-8") as handle:
        handle.write("# harmless?\n")
    code, out = gate(capsys, estate_repo)
    assert code == 1 and "policy.yml in the working tree differs" in out


def _governance_branch(estate_repo: Path, tmp_path: Path) -> Path:
    """A branch that gives a new person the gateway owner's role."""
    newcomer = new_key(tmp_path, "owner-new")
    branch(estate_repo, "governance")
    add_approver(estate_repo, newcomer.with_suffix(".pub"), "owner-new", "owner:partner_gateway")
    commit(estate_repo, "approvers: a second gateway owner")
    return newcomer


def test_a_governance_change_takes_effect_once_two_change_board_members_approve_it(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newcomer = _governance_branch(estate_repo, tmp_path)
    code, out = approve(capsys, estate_repo, newcomer)
    assert code == 1, out  # not yet in force
    carol, dave = key(tmp_path, "cab-carol"), key(tmp_path, "cab-dave")
    code, out = run(capsys, estate_repo, "approve", "--governance", "--key", str(carol))
    assert code == 0, out
    code, out = approve(capsys, estate_repo, newcomer)
    assert code == 1 and "not in the approvers" in out
    code, out = gate(capsys, estate_repo)
    assert code == 1 and "it has 1 of the 2 distinct change-board approvals it needs" in out
    code, out = run(capsys, estate_repo, "approve", "--governance", "--key", str(dave))
    assert code == 0, out
    code, out = approve(capsys, estate_repo, newcomer)
    assert code == 0, out
    code, out = gate(capsys, estate_repo)
    assert code == 0, out
    events = [e.event for e in trail.read_events(estate_repo)]
    assert events.count("governance.approved") == 2


def test_a_governance_change_approved_by_an_owner_does_not_take_effect(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _governance_branch(estate_repo, tmp_path)
    owner = key(tmp_path, "owner-portal")
    code, out = run(capsys, estate_repo, "approve", "--governance", "--key", str(owner))
    assert code == 1 and "does not hold the governance role 'change-board'" in out


def test_the_author_of_a_rules_change_cannot_approve_it(
    estate_repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "carol@gcms.example")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "carol@gcms.example")
    _governance_branch(estate_repo, tmp_path)
    code, out = run(
        capsys, estate_repo, "approve", "--governance", "--key", str(key(tmp_path, "cab-carol"))
    )
    assert code == 1 and "self-approval: cab-carol authored" in out


def forge_owner_approval(root: Path, tmp: Path, issued: datetime, valid: timedelta) -> None:
    """The gateway owner's approval with chosen times, signed past `approve`'s own checks."""
    prepared = road.prepare(root, CHANGE)
    statement = Statement(
        CHANGE,
        prepared.digest,
        "lab",
        "owner-partner-gateway",
        "owner:partner_gateway",
        utc_text(issued),
        utc_text(issued + valid),
        new_nonce(),
    )
    write_signed(root, statement, key(tmp, "owner-partner-gateway"))


def test_an_approval_from_the_future_is_refused(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    later = datetime.now(UTC) + timedelta(days=365)
    forge_owner_approval(estate_repo, tmp_path, later, timedelta(days=6))
    code, out = gate(capsys, estate_repo)
    assert code == 1 and "in the future (clock skew allowed" in out


def test_an_approval_valid_beyond_the_cap_from_now_is_refused(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forge_owner_approval(estate_repo, tmp_path, datetime.now(UTC), timedelta(days=60))
    code, out = gate(capsys, estate_repo)
    assert code == 1 and "more than 14 days from now" in out


def test_no_trust_ref_fails_closed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gcmschange.lab import workspace
    from tests.conftest import ESTATE

    root = workspace.create(tmp_path / "estate", ESTATE, origin=False).root
    (root / "inventories" / "lab" / "hosts.yml").write_text(LAB_INVENTORY, encoding="utf-8")
    git(root, "branch", "-m", "main", "trunk")  # no main, no origin/main: nothing to trust
    code, out = gate(capsys, root)
    assert code == 1 and "no trust ref" in out and "--trust-ref" in out


def test_a_reverted_rules_change_leaves_no_trace(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert approve(capsys, estate_repo, key(tmp_path, "owner-partner-gateway"))[0] == 0
    policy = estate_repo / "policy.yml"
    original = policy.read_text(encoding="utf-8")
    policy.write_text(original.replace("normal: [owner]", "normal: []"), encoding="utf-8")
    commit(estate_repo, "policy: oops")
    assert gate(capsys, estate_repo)[0] == 1
    policy.write_text(original, encoding="utf-8")
    commit(estate_repo, "policy: revert")
    code, out = gate(capsys, estate_repo)
    assert code == 0, out
