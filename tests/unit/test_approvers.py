"""The approvers file: strict parsing with precise errors, and still ssh-keygen's own format."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gcmschange import resources
from gcmschange.errors import ValidationError
from gcmschange.rules.approvers import load_approvers, parse_approvers

PROJECT = resources.reference_estate()
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHXrrKEeFqcGRDOwj7UF0ad/twMRl4YIIRSPZUTE3Isy"
KEY2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3QfgWAKxQRVLoWk9Jvhzw9cBiiLOYRoGvuAbF5PYgO"
NS = 'namespaces="gcmschange-approval"'


def test_roles_aliases_and_plain_comments() -> None:
    parsed = parse_approvers(
        f"# a comment\n\n# roles: cab-carol change-board,owner:portal\n"
        f"cab-carol,carol@gcms.example {NS} {KEY} trailing comment\n"
        f"rm-alice {KEY2}\n"
    )
    carol = parsed.by_alias("carol@gcms.example")
    assert carol is not None
    assert (carol.principal, carol.roles, carol.line) == (
        "cab-carol",
        ("change-board", "owner:portal"),
        4,
    )
    assert parsed.holds("cab-carol", "owner:portal")
    assert not parsed.holds("rm-alice", "change-board")
    assert parsed.identify("nobody", "carol@gcms.example") == "cab-carol"
    assert parsed.by_key(KEY2) is not None


BAD = {
    "role as a key option": (
        f'cab-carol {NS},roles="change-board" {KEY}\n',
        "approvers:1: key option 'roles' is not one ssh-keygen accepts",
    ),
    "role syntax": (
        f"# roles: cab-carol Change Board\ncab-carol {NS} {KEY}\n",
        "approvers:1: role 'Change Board' is not a role",
    ),
    "owner of an unknown system": (
        f"# roles: x owner:mainframe\nx {NS} {KEY}\n",
        "approvers:1: role 'owner:mainframe' names system 'mainframe', not in estate.yml",
    ),
    "duplicate principal": (
        f"a,x@e {NS} {KEY}\nb,x@e {NS} {KEY2}\n",
        "approvers:2: duplicate principal 'x@e' (already on line 1)",
    ),
    "duplicate key": (
        f"a {NS} {KEY}\nb {NS} {KEY}\n",
        "approvers:2: this key is already listed for 'a' on line 1; one key, one person",
    ),
    "unparsable key line": ("just-a-name\n", "approvers:1: key line unparsable"),
    "unknown key type": (
        "a ssh-foo AAAA\n",
        "approvers:1: 'ssh-foo' is not an SSH public key type",
    ),
    "bad base64": (f"a {NS} ssh-ed25519 !!!\n", "approvers:1: the public key is not valid base64"),
    "key of another type": (
        f"a ssh-rsa {KEY.split()[1]}\n",
        "approvers:1: the public key does not encode a ssh-rsa key",
    ),
    "namespace excludes approvals": (
        f'a namespaces="git" {KEY}\n',
        "approvers:1: namespaces='git' excludes 'gcmschange-approval'",
    ),
    "roles line not above its key": (
        f"# roles: a change-board\n\na {NS} {KEY}\n",
        "approvers:1: roles line for 'a' is not directly above its key line",
    ),
    "roles line for someone else": (
        f"# roles: a change-board\nb {NS} {KEY}\n",
        "approvers:1: roles line names 'a' but the key line below it (line 2) is 'b'",
    ),
    "roles line at the end": (
        "# roles: a change-board\n",
        "approvers:1: roles line for 'a' has no key line below it",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_problem_has_a_precise_message(case: str) -> None:
    text, expected = BAD[case]
    with pytest.raises(ValidationError) as caught:
        parse_approvers(text, systems=frozenset({"portal"}))
    assert expected in caught.value.message
    assert all(p.location.file == "approvers" for p in caught.value.problems)


def test_every_problem_is_collected() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_approvers(f"# roles: a BAD\na {NS} {KEY}\nb {NS} {KEY}\nnonsense\n")
    assert len(caught.value.problems) == 3
    assert "(and 2 more)" in caught.value.message


def test_the_shipped_file_parses_and_matches_the_lab_keys() -> None:
    systems = frozenset(
        {"portal", "case_api", "partner_gateway", "eta", "db_proxy", "batch", "log_shipper"}
    )
    shipped = load_approvers(PROJECT, systems)
    assert {e.principal for e in shipped.entries} >= {"rm-alice", "owner-portal", "cab-carol"}
    for entry in shipped.entries:
        pub = (PROJECT / "lab" / "keys" / f"{entry.principal}.pub").read_text().split()
        assert entry.key == " ".join(pub[:2])


def test_ssh_keygen_verifies_against_a_file_with_roles(tmp_path: Path) -> None:
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = " ".join(key.with_suffix(".pub").read_text().split()[:2])
    allowed = tmp_path / "approvers"
    allowed.write_text(f"# roles: cab-carol change-board\ncab-carol,c@e {NS} {pub}\n")
    parse_approvers(allowed.read_text())
    sig = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", "gcmschange-approval"],
        input="hello",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp_path / "m.sig").write_text(sig)
    done = subprocess.run(
        [
            "ssh-keygen",
            "-Y",
            "verify",
            "-f",
            str(allowed),
            "-I",
            "cab-carol",
            "-n",
            "gcmschange-approval",
            "-s",
            str(tmp_path / "m.sig"),
        ],
        input="hello",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
