"""The run's ansible.cfg honours the repository's own, pins its paths, forces the rest."""

from __future__ import annotations

import configparser
import json
import os
import sys
from pathlib import Path

import pytest

from gcmschange import proc
from gcmschange.errors import InvalidInputError
from gcmschange.execution import ansiblecfg

OURS = {
    "defaults": {"forks": "20", "gathering": "explicit"},
    "ssh_connection": {"pipelining": "True"},
}
FORCED_SSH = {"control_path_dir": "/tmp/gcmschange-cp"}


def _parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_the_repositorys_settings_win_over_the_tuning(tmp_path: Path) -> None:
    (tmp_path / "ansible.cfg").write_text(
        "[defaults]\ngathering = implicit\nforks = 7\nroles_path = roles:vendor/roles\n"
        "host_key_checking = False\n"
    )
    cfg = _parse(ansiblecfg.compose(tmp_path, OURS, FORCED_SSH))
    assert cfg["defaults"]["gathering"] == "implicit"
    assert cfg["defaults"]["forks"] == "7"
    root = tmp_path.resolve()
    assert cfg["defaults"]["roles_path"] == f"{root}/roles:{root}/vendor/roles"
    assert cfg["defaults"]["host_key_checking"] == "True"  # never negotiable
    assert cfg["ssh_connection"]["control_path_dir"] == "/tmp/gcmschange-cp"


@pytest.mark.parametrize("value", ["/etc/ansible/roles", "../outside", "roles:/tmp/x"])
def test_a_path_leaving_the_repository_is_refused(tmp_path: Path, value: str) -> None:
    (tmp_path / "ansible.cfg").write_text(f"[defaults]\nfilter_plugins = {value}\n")
    with pytest.raises(InvalidInputError, match=r"filter_plugins .* is outside the repository"):
        ansiblecfg.compose(tmp_path, OURS, FORCED_SSH)


def test_without_a_repository_cfg_roles_and_collections_come_from_the_tree(tmp_path: Path) -> None:
    cfg = _parse(ansiblecfg.compose(tmp_path, OURS, FORCED_SSH))
    assert cfg["defaults"]["roles_path"] == str(tmp_path.resolve() / "roles")
    assert cfg["defaults"]["collections_path"] == str(tmp_path.resolve() / "collections")
    assert cfg["defaults"]["forks"] == "20"


def test_an_unreadable_cfg_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "ansible.cfg").write_text("forks = 3\n")  # no section header
    with pytest.raises(InvalidInputError, match=r"ansible\.cfg: cannot be read"):
        ansiblecfg.compose(tmp_path, OURS, FORCED_SSH)


def test_what_the_run_does_not_take_as_written_is_said(tmp_path: Path) -> None:
    (tmp_path / "ansible.cfg").write_text(
        "[defaults]\nhost_key_checking = False\nforks = 7\nroles_path = roles\n"
        "[ssh_connection]\ncontrol_path_dir = ~/.cp\npipelining = True\n",
        encoding="utf-8",
    )
    assert ansiblecfg.overrides(tmp_path) == (
        "[defaults] host_key_checking: False -> True (gcmschange owns it)",
        "[defaults] roles_path: pinned inside the approved copy",
        "[ssh_connection] control_path_dir: ~/.cp -> gcmschange's (it owns it)",
    )
    assert ansiblecfg.overrides(tmp_path / "none") == ()


def _ansible_sees(tmp_path: Path, text: str) -> dict[str, str]:
    """What ansible-config itself reads from the composed file: setting name -> value."""
    (tmp_path / "run.cfg").write_text(text, encoding="utf-8")
    tool = Path(sys.executable).parent / "ansible-config"
    done = proc.run(
        [str(tool), "dump", "--format", "json"],
        env={"ANSIBLE_CONFIG": str(tmp_path / "run.cfg"), "PATH": os.environ["PATH"]},
        cwd=tmp_path,
    )
    return {e["name"]: str(e["value"]) for e in json.loads(done.stdout) if "name" in e}


def test_settings_the_file_does_not_name_point_inside_the_tree_too(tmp_path: Path) -> None:
    # Ansible's defaults (~/.ansible/plugins, /usr/share/ansible/plugins) are never searched.
    seen = _ansible_sees(tmp_path, ansiblecfg.compose(tmp_path, OURS, FORCED_SSH))
    root = str(tmp_path.resolve())
    for name in (
        "DEFAULT_MODULE_PATH",
        "DEFAULT_CALLBACK_PLUGIN_PATH",
        "DEFAULT_VARS_PLUGIN_PATH",
        "DEFAULT_MODULE_UTILS_PATH",
        "DEFAULT_ACTION_PLUGIN_PATH",
    ):
        assert seen[name].startswith(f"['{root}/"), (name, seen[name])
    assert seen["HOST_KEY_CHECKING"] == "True"


def test_owned_settings_are_left_out_and_said(tmp_path: Path) -> None:
    (tmp_path / "ansible.cfg").write_text(
        "[defaults]\nvault_password_file = /tmp/pass.sh\nlog_path = /tmp/ansible.log\n"
        "inventory = /etc/ansible/hosts\nbecome_password_file = /tmp/evil.sh\n"
        "[ssh_connection]\nssh_executable = /tmp/evil.sh\n"
        "ssh_args = -o ControlPersist=60s\nhost_key_checking = False\n"
        "[callback_tree]\ndirectory = /tmp/tree\n",
        encoding="utf-8",
    )
    composed = ansiblecfg.compose(tmp_path, OURS, FORCED_SSH)
    seen = _ansible_sees(tmp_path, composed)
    assert seen["DEFAULT_VAULT_PASSWORD_FILE"] == "None"
    assert seen["DEFAULT_LOG_PATH"] == "None"
    assert "\ninventory = " not in composed  # the environment's comes on the command line
    assert seen["BECOME_PASSWORD_FILE"] == "None"
    assert "evil" not in composed and "/tmp/tree" not in composed
    left = "left out (not a setting a repository sets)"
    assert ansiblecfg.overrides(tmp_path) == (
        f"[defaults] vault_password_file: {left}",
        f"[defaults] log_path: {left}",
        f"[defaults] inventory: {left}",
        f"[defaults] become_password_file: {left}",
        f"[ssh_connection] ssh_executable: {left}",
        "[ssh_connection] ssh_args = -o ControlPersist=60s (every ssh connection uses it)",
        "[ssh_connection] host_key_checking: False -> True (gcmschange owns it)",
        f"[callback_tree] directory: {left}",
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # configparser reads the indented line as part of forks' value; written back one
        # per line, it would have become a library setting nobody pinned.
        (
            "[defaults]\nforks = 5\n  library = /tmp/lib\n",
            r"\[defaults\] forks: a value on several",
        ),
        # Ansible's keys are read in any case, as configparser lowers them.
        (
            "[defaults]\nCALLBACK_PLUGINS = /tmp/cb\n",
            r"callback_plugins = /tmp/cb: /tmp/cb is outside",
        ),
        ("[defaults]\nlibrary = $HOME/lib\n", r"\[defaults\] library = \$HOME/lib: a variable"),
        ("[defaults]\nlibrary = ~/lib\n", r"a variable in a path"),
        ("[defaults]\nfilter_plugins = {{CWD}}/f\n", r"a variable in a path"),
        (
            "[ssh_connection]\nssh_args = -o StrictHostKeyChecking=no\n",
            r"\[ssh_connection\] ssh_args: StrictHostKeyChecking: host keys are always",
        ),
        ("[ssh_connection]\nssh_args = -F /tmp/cfg\n", r"ssh_args: -F: host keys"),
        ("[ssh_connection]\nssh_common_args = -o ProxyCommand=x\n", r"ProxyCommand: host"),
        ("[ssh_connection]\nssh_extra_args = -i /root/.ssh/k\n", r"ssh_extra_args: -i: "),
        ("[defaults]\nforks = 1\nFORKS = 2\n", r"ansible\.cfg: cannot be read: .*forks"),
    ],
)
def test_a_setting_ansible_would_read_otherwise_is_refused(
    tmp_path: Path, text: str, reason: str
) -> None:
    (tmp_path / "ansible.cfg").write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=reason) as caught:
        ansiblecfg.compose(tmp_path, OURS, FORCED_SSH)
    assert "\n" not in caught.value.message


def test_the_folders_a_cfg_names_are_the_ones_to_seal() -> None:
    text = (
        "[defaults]\nroles_path = vendor_roles:./roles:/etc/ansible/roles:../up\n"
        "library = lib/modules\nforks = 5\n[other]\nfilter_plugins = .git/hooks:.\n"
    )
    assert ansiblecfg.folders_named(text) == ("vendor_roles", "roles", "lib/modules")
    assert ansiblecfg.folders_named(None) == ()
    assert ansiblecfg.folders_named("not ini") == ()
