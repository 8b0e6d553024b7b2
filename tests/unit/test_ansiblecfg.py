"""The run's ansible.cfg honours the repository's own, pins its paths, forces the rest."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

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
