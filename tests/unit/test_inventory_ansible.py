"""Inventories are read by Ansible itself, so gcmschange and the playbooks never disagree:
INI as well as YAML, nested groups, inline group vars, and a branch's inventory that would
run code (a script, a plugin) is refused instead of run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gcmschange.errors import InvalidInputError
from gcmschange.rules.estate import load_inventory

INI = """\
[portal]
portal-1 ansible_host=10.0.0.1 gcms_port=8080
portal-2 ansible_host=10.0.0.2

[portal:vars]
tier=front

[edge:children]
portal
"""


def _env(root: Path, **files: str) -> Path:
    env = root / "inventories" / "dev"
    for name, text in files.items():
        path = env / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return env


def _ansible_view(env: Path, host: str) -> dict[str, object]:
    program = Path(sys.executable).parent / "ansible-inventory"
    config = env.parent.parent / "ansible.cfg"
    config.write_text("", encoding="utf-8")
    done = subprocess.run(
        [str(program), "-i", str(env), "--host", host],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(config)},
    )
    view = json.loads(done.stdout)
    assert isinstance(view, dict)
    return view


def test_an_ini_inventory_with_group_vars_reads_as_ansible_reads_it(tmp_path: Path) -> None:
    env = _env(tmp_path, **{"hosts.ini": INI, "group_vars__all.yml": "gcms_port: 80\n"})
    inventory = load_inventory(tmp_path, "dev")
    assert inventory.groups["portal"] == ("portal-1", "portal-2")
    assert inventory.groups["edge"] == ("portal-1", "portal-2")  # members of its child group
    host = inventory.hosts["portal-1"]
    assert host.system == "portal"
    assert host.vars == _ansible_view(env, "portal-1")
    assert host.vars["gcms_port"] == 8080 and host.vars["tier"] == "front"
    assert inventory.hosts["portal-2"].vars["gcms_port"] == 80


def test_yaml_group_vars_inline_and_nested_children_agree_with_ansible(tmp_path: Path) -> None:
    hosts = """\
all:
  vars: {gcms_log_level: info}
  children:
    prod:
      vars: {zone: a}
      children:
        case_api:
          hosts:
            api-1: {}
"""
    env = _env(tmp_path, **{"hosts.yml": hosts, "group_vars__case_api__x.yml": "zone: b\n"})
    inventory = load_inventory(tmp_path, "dev")
    assert inventory.hosts["api-1"].system == "case_api"
    assert inventory.hosts["api-1"].vars == _ansible_view(env, "api-1")
    assert inventory.hosts["api-1"].vars["zone"] == "b"


def test_an_executable_inventory_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    env = _env(tmp_path, **{"hosts.yml": "all: {hosts: {a: {}}}\n"})
    script = env / "dynamic.py"
    script.write_text(f"#!/bin/sh\ntouch {marker}\necho '{{}}'\n", encoding="utf-8")
    script.chmod(0o755)
    with pytest.raises(InvalidInputError, match=r"dynamic\.py"):
        load_inventory(tmp_path, "dev")
    assert not marker.exists()


def test_a_broken_inventory_is_one_line_naming_the_folder(tmp_path: Path) -> None:
    _env(tmp_path, **{"hosts.ini": "[portal\nportal-1\n"})
    with pytest.raises(InvalidInputError) as caught:
        load_inventory(tmp_path, "dev")
    assert "inventories/dev: Ansible cannot read this inventory" in caught.value.message
    assert "\n" not in caught.value.message


def test_a_missing_inventory_says_where_to_look(tmp_path: Path) -> None:
    (tmp_path / "inventories" / "lab" / "group_vars").mkdir(parents=True)
    with pytest.raises(InvalidInputError, match="run `gcmschange lab up` first"):
        load_inventory(tmp_path, "lab")
