"""Ansible Vault: values and files opened with the operator's password, made by the real
`ansible-vault`; every opened value is masked everywhere; the password never comes from the
branch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gcmschange import vault, yamlsafe
from gcmschange.errors import InvalidInputError, UsageError
from gcmschange.execution import runner
from gcmschange.masking import MASK, mask_text
from gcmschange.model import Host
from gcmschange.render.configs import render_hosts
from gcmschange.rules.estate import ConfigFile, Estate, Inventory, System, load_inventory
from tests.conftest import VAULT_PASSWORD, vault_text, vault_yaml

VAULT_PROGRAM = str(Path(sys.executable).parent / "ansible-vault")


def test_a_value_made_by_ansible_vault_opens_and_is_registered() -> None:
    text = vault_text("opened-by-gcmschange-1")
    assert vault.decrypt(text, "x") == "opened-by-gcmschange-1"
    assert "opened-by-gcmschange-1" in vault.revealed()
    assert mask_text("pw=opened-by-gcmschange-1", vault.revealed()) == f"pw={MASK}"


def test_the_wrong_password_and_a_damaged_text_are_one_line_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = vault_text("never-shown-2")
    monkeypatch.setenv("GCMS_VAULT_PASSWORD", "not-the-password")
    with pytest.raises(InvalidInputError, match=r"^where: vault text does not open"):
        vault.decrypt(text + " ", "where")  # another key, so no opened value is reused
    monkeypatch.setenv("GCMS_VAULT_PASSWORD", VAULT_PASSWORD)
    with pytest.raises(InvalidInputError, match="damaged vault text"):
        vault.decrypt("$ANSIBLE_VAULT;1.1;AES256\nzz\n", "where")
    monkeypatch.delenv("GCMS_VAULT_PASSWORD")
    with pytest.raises(UsageError, match="no vault password was given"):
        vault.decrypt(vault_text("never-shown-3"), "where")


def test_a_password_file_inside_the_repository_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    inside = tmp_path / "vault-pass.sh"
    inside.write_text("#!/bin/sh\necho x\n", encoding="utf-8")
    inside.chmod(0o755)
    monkeypatch.delenv("GCMS_VAULT_PASSWORD")
    monkeypatch.setenv("GCMS_VAULT_PASSWORD_FILE", str(inside))
    with pytest.raises(UsageError, match="inside the repository"):
        vault.password(tmp_path / "sub")


def test_an_executable_password_file_prints_it_as_for_ansible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "client.sh"
    script.write_text(f"#!/bin/sh\necho '{VAULT_PASSWORD}'\n", encoding="utf-8")
    script.chmod(0o700)
    monkeypatch.delenv("GCMS_VAULT_PASSWORD")
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(script))
    assert vault.password(None) == VAULT_PASSWORD.encode()


def test_vault_tag_is_read_and_anything_else_under_it_refused() -> None:
    doc = yamlsafe.load_bytes(("x:\n" + vault_yaml("s", "tagged-4")).encode(), "f.yml").data
    assert isinstance(doc["x"]["s"], yamlsafe.VaultText)
    with pytest.raises(InvalidInputError, match="must be an Ansible vault text"):
        yamlsafe.load_bytes(b"s: !vault not-a-vault\n", "f.yml")


def test_inventory_vault_values_and_files_reach_rendering_and_masking(tmp_path: Path) -> None:
    env = tmp_path / "inventories" / "dev"
    (env / "group_vars" / "portal").mkdir(parents=True)
    (env / "hosts.yml").write_text("all: {children: {portal: {hosts: {p1: {}}}}}\n")
    (env / "group_vars" / "all.yml").write_text(vault_yaml("db_password", "inline-5", indent=0))
    whole = env / "group_vars" / "portal" / "vault.yml"
    whole.write_text("api_key: whole-file-6\nport: 8443\n", encoding="utf-8")
    password = tmp_path / "pw"
    password.write_text(VAULT_PASSWORD, encoding="utf-8")
    subprocess.run(
        [VAULT_PROGRAM, "encrypt", str(whole), "--vault-password-file", str(password)],
        check=True,
        capture_output=True,
    )
    host = load_inventory(tmp_path, "dev").hosts["p1"]
    assert isinstance(host.vars["db_password"], yamlsafe.VaultText)  # still closed
    assert host.vars["api_key"] == "whole-file-6" and host.vars["port"] == 8443
    assert "whole-file-6" in vault.revealed()  # every text of a vaulted file is masked
    assert vault.opened(host.vars)["db_password"] == "inline-5"
    cached = list((Path.home() / ".cache" / "gcmschange" / "inventory").glob("*.json"))
    assert not any(b"whole-file-6" in p.read_bytes() for p in cached)


def test_extra_vars_hand_vault_values_to_ansible_still_encrypted() -> None:
    value = yamlsafe.VaultText(vault_text("for-ansible-7"))
    dumped = runner.extravars_text({"v": value, "t": "{{ x }}"})
    assert "v: !vault |" in dumped and "for-ansible-7" not in dumped
    assert "t: !unsafe '{{ x }}'" in dumped


def test_runner_keeps_no_process_environment(tmp_path: Path) -> None:
    command = tmp_path / "artifacts" / "x" / "command"
    command.parent.mkdir(parents=True)
    command.write_text(json.dumps({"command": ["a"], "cwd": "/", "env": {"TOKEN": "t0k"}}))
    runner.drop_environment(tmp_path / "artifacts")
    assert json.loads(command.read_text()) == {"command": ["a"], "cwd": "/"}


def test_the_playbook_gets_no_credential_of_the_controller() -> None:
    blanked = runner.blanked_credentials(
        {
            "GCMS_VAULT_PASSWORD": "p",
            "CI_JOB_TOKEN": "t",
            "GCMS_GITLAB_TOKEN": "t",
            "ANSIBLE_VAULT_PASSWORD_FILE": "/run/pw",
            "VAULT_TOKEN": "a playbook's own",
            "PATH": "/bin",
        }
    )
    assert blanked == {"GCMS_VAULT_PASSWORD": "", "CI_JOB_TOKEN": "", "GCMS_GITLAB_TOKEN": ""}


def test_a_link_in_the_inventory_is_refused_before_ansible_follows_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "all"
    outside.mkdir(parents=True)
    (outside / "config").write_text("stolen: from-outside-8\n", encoding="utf-8")
    env = tmp_path / "repo" / "inventories" / "dev"
    (env / "group_vars").mkdir(parents=True)
    (env / "hosts.yml").write_text("all: {children: {portal: {hosts: {p1: {}}}}}\n")
    (env / "group_vars" / "all").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInputError, match="a link; an inventory holds regular files only"):
        load_inventory(tmp_path / "repo", "dev")
    cache = Path.home() / ".cache" / "gcmschange" / "inventory"
    assert not any(b"from-outside-8" in p.read_bytes() for p in cache.glob("*.json"))


def test_a_file_that_read_a_vault_value_is_secret_even_transformed(tmp_path: Path) -> None:
    root = tmp_path
    (root / "templates").mkdir()
    (root / "templates" / "t.j2").write_text("rev={{ db_password | reverse | join }}\n")
    (root / "templates" / "plain.j2").write_text("port={{ port }}\n")
    host = Host(
        "p1", "portal", {"db_password": yamlsafe.VaultText(vault_text("rev-9-x")), "port": 1}
    )
    inventory = Inventory("dev", root, {"p1": host}, {"portal": ("p1",)})
    system = System(
        "portal", "P", "P", "o", (), (ConfigFile("t.j2", "/a"), ConfigFile("plain.j2", "/b")), ()
    )
    estate = Estate(root, "", "", "", ("dev",), {"portal": system}, {})
    files = {f.dest: f for f in render_hosts(estate, inventory, [host], {}).files}
    assert files["/a"].content == "rev=x-9-ver\n" and files["/a"].secret
    assert not files["/b"].secret


def test_base64_spellings_are_masked_and_the_registered_repository_guards_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mask_text("auth=cGFzcy13b3JkLTEw", ["pass-word-10"]) == f"auth={MASK}"
    (tmp_path / ".git").mkdir()
    inside = tmp_path / "pw.txt"
    inside.write_text("x", encoding="utf-8")
    vault.guard_repository(tmp_path)
    monkeypatch.delenv("GCMS_VAULT_PASSWORD")
    monkeypatch.setenv("GCMS_VAULT_PASSWORD_FILE", str(inside))
    with pytest.raises(UsageError, match="inside the repository"):
        vault.password(None)  # no root given: the checkout the CLI works on still counts
