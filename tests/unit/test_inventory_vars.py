"""gcmschange reads an inventory's group_vars and host_vars as Ansible does, so both see the
same variables: a folder hides a same-named file, folder files merge in name order, and a
host's own host_vars win over its group's."""

from __future__ import annotations

from pathlib import Path

from gcmschange.rules.estate import load_inventory

HOSTS = """\
all:
  children:
    portal:
      hosts:
        portal-1: {inline: from-hosts-file, gcms_port: 80}
"""


def _inventory(root: Path) -> Path:
    env = root / "inventories" / "lab"
    (env / "group_vars").mkdir(parents=True)
    (env / "hosts.yml").write_text(HOSTS, encoding="utf-8")
    return env


def test_a_folder_hides_the_same_named_file_as_for_ansible(tmp_path: Path) -> None:
    env = _inventory(tmp_path)
    (env / "group_vars" / "portal.yml").write_text("level: file\n", encoding="utf-8")
    folder = env / "group_vars" / "portal"
    (folder / "nested").mkdir(parents=True)
    (folder / "b.yml").write_text("level: b\nonly_b: 1\n", encoding="utf-8")
    (folder / "a.yaml").write_text("level: a\n", encoding="utf-8")
    (folder / "nested" / "c.json").write_text('{"level": "c"}', encoding="utf-8")
    (folder / ".hidden.yml").write_text("level: hidden\n", encoding="utf-8")
    (folder / "notes.txt").write_text("not vars\n", encoding="utf-8")
    host = load_inventory(tmp_path, "lab").hosts["portal-1"]
    assert host.vars["level"] == "c" and host.vars["only_b"] == 1


def test_host_vars_win_over_the_group_and_the_hosts_file(tmp_path: Path) -> None:
    env = _inventory(tmp_path)
    (env / "group_vars" / "all.yml").write_text("gcms_port: 8080\nlevel: all\n", encoding="utf-8")
    (env / "host_vars").mkdir()
    (env / "host_vars" / "portal-1.yml").write_text("gcms_port: 8443\n", encoding="utf-8")
    found = load_inventory(tmp_path, "lab").hosts["portal-1"].vars
    assert found == {"gcms_port": 8443, "level": "all", "inline": "from-hosts-file"}
