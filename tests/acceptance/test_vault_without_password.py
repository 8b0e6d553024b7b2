"""Validation needs no vault password: the people and CI jobs that validate change requests
need the hosts and groups of an inventory, not the operator's secret. What needs the values
(render, plan, apply) still asks for the password, in one line naming every way to give it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gcmschange.cli import main
from tests.conftest import PORTAL_AND_CASE_API, vault_text


@pytest.fixture
def vaulted_repo(estate_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    lab = estate_repo / "inventories" / "lab"
    (lab / "hosts.yml").write_text(PORTAL_AND_CASE_API, encoding="utf-8")
    (lab / "group_vars" / "portal").mkdir(parents=True)
    (lab / "group_vars" / "portal" / "vault.yml").write_text(
        vault_text("portal_db_password: s3cr3t-in-a-vault\n"), encoding="utf-8"
    )
    monkeypatch.delenv("GCMS_VAULT_PASSWORD", raising=False)
    return estate_repo


def test_validate_reads_the_inventorys_shape_without_the_password(
    vaulted_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--repo", str(vaulted_repo), "validate", "changes/CHG-LAB-0001.yaml"])
    out = capsys.readouterr()
    assert code == 0, out
    assert "s3cr3t" not in out.out + out.err


def test_a_missing_file_is_named_before_any_vault_question(
    vaulted_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--repo", str(vaulted_repo), "validate", "changes/nope.yaml"])
    err = capsys.readouterr()
    assert code != 0
    assert "nope.yaml" in err.out + err.err
    assert "vault" not in (err.out + err.err).lower()


def test_rendering_still_asks_for_the_password_in_one_line(
    vaulted_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--repo", str(vaulted_repo), "render", "CHG-LAB-0001"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "vault.yml: encrypted with Ansible Vault, and no vault password was given" in err
    assert "ANSIBLE_VAULT_PASSWORD_FILE" in err and "\n" not in err


def test_an_approver_without_the_password_signs_the_digest_the_plan_shows(
    vaulted_repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import shutil

    from gcmschange.resources import reference_estate

    key = tmp_path / "owner-portal"
    shutil.copy(reference_estate() / "lab" / "keys" / "owner-portal", key)
    key.chmod(0o600)
    args = ["--repo", str(vaulted_repo), "approve", "CHG-LAB-0001", "--key", str(key)]
    # Computing the digest here would need the vault's values: refused, saying how.
    assert main(args) == 2
    assert "no vault password was given" in capsys.readouterr().err
    assert main([*args, "--digest", "not-a-digest"]) == 2
    assert "expected the plan's 64 hex digits" in capsys.readouterr().err
    planned = "ab" * 32
    assert main([*args, "--digest", planned, "--output", "json"]) == 0, capsys.readouterr()
    assert planned in capsys.readouterr().out
