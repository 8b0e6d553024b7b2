"""The plan digest moves with every input an approval covers, and with nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from gcmschange.apply import road
from gcmschange.plan.digest import change_digest

CHANGE = "CHG-LAB-0002"  # partner_gateway
HOSTS = """\
all:
  children:
    portal:
      hosts:
        portal-1: {ansible_host: 10.0.0.1}
    partner_gateway:
      hosts:
        gw-1: {ansible_host: 10.0.0.3}
        gw-2: {ansible_host: 10.0.0.4}
"""


@pytest.fixture
def root(estate_repo: Path) -> Path:
    (estate_repo / "inventories/lab/hosts.yml").write_text(HOSTS, encoding="utf-8")
    return estate_repo


def _digest(root: Path) -> str:
    return road.prepare(root, CHANGE, use_cache=False).digest


def _edit(path: str, old: str, new: str, count: int = 1) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        text = (root / path).read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {path}"
        (root / path).write_text(text.replace(old, new, count), encoding="utf-8")

    return edit


def _add(path: str, text: str) -> Callable[[Path], None]:
    def add(root: Path) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")

    return add


CHANGING = {
    "change field": _edit(f"changes/{CHANGE}.yaml", "accepts TLS 1.3 only", "accepts only TLS 1.3"),
    "change variable": _edit(
        f"changes/{CHANGE}.yaml", 'tls_protocols: "TLSv1.3"', 'tls_protocols: "TLSv1.2 TLSv1.3"'
    ),
    "template byte (comment)": _edit(
        "templates/partner_gateway/nginx.conf.j2", "# Managed", "#  Managed"
    ),
    "shared template byte": _edit(
        "templates/common/nginx.conf.j2", "user www-data;", "user  www-data;"
    ),
    "playbook byte": _edit("playbooks/configure.yml", "- name: Push", "- name:  Push"),
    "playbook spec byte": _edit(
        "playbooks/configure.meta.yml", "Worker connections", "Worker  connections"
    ),
    "target host inventory var": _edit("inventories/lab/hosts.yml", "10.0.0.3", "10.0.0.33"),
    "target group var": _edit(
        "inventories/lab/group_vars/all.yml", "gcms_log_level: info", "gcms_log_level: debug"
    ),
    "config destination": _edit(
        "estate.yml", "/etc/gcms/partner_gateway.yml", "/etc/gcms/gateway.yml"
    ),
    # Ansible and pytest load all of these, so a run reads them: the whole environment's
    # inventory and every template, test and plugin folder are covered.
    "another system's inventory host": _edit("inventories/lab/hosts.yml", "10.0.0.1", "10.0.0.11"),
    "another system's template": _edit("templates/portal/index.html.j2", "<main>", "<main >"),
    "host_vars file": _add("inventories/lab/host_vars/gw-1.yml", "gcms_note: x\n"),
    "group_vars folder": _add("inventories/lab/group_vars/partner_gateway/extra.yml", "a: 1\n"),
    "playbook group_vars": _add("playbooks/group_vars/all.yml", "a: 1\n"),
    "playbook library module": _add("playbooks/library/mine.py", "print('hi')\n"),
    "playbook filter plugin": _add("playbooks/filter_plugins/mine.py", "X = 1\n"),
    "role file": _add("roles/web/tasks/main.yml", "- debug: msg=x\n"),
    "verification test": _edit("verify/test_common.py", "def ", "def  ", count=1),
    "verification conftest": _add("verify/conftest.py", "import os\n"),
    "ansible.cfg": _add("ansible.cfg", "[defaults]\n"),
}

UNRELATED = {
    "another change": _edit("changes/CHG-LAB-0001.yaml", "1024", "2048"),
    "another environment's inventory": _add("inventories/dev/host_vars/x.yml", "a: 1\n"),
    "a document beside the estate": _add("README.md", "# notes\n"),
}


@pytest.mark.parametrize("edit", CHANGING.values(), ids=CHANGING.keys())
def test_each_covered_input_changes_the_digest(root: Path, edit: Callable[[Path], None]) -> None:
    before = _digest(root)
    edit(root)
    assert _digest(root) != before


@pytest.mark.parametrize("edit", UNRELATED.values(), ids=UNRELATED.keys())
def test_unrelated_inputs_leave_the_digest_alone(root: Path, edit: Callable[[Path], None]) -> None:
    before = _digest(root)
    edit(root)
    assert _digest(root) == before


def test_rendered_output_changes_the_digest(root: Path) -> None:
    prepared = road.prepare(root, CHANGE, use_cache=False)
    loaded = prepared.loaded
    first = prepared.rendered.files[0]
    other = replace(
        prepared.rendered,
        files=(replace(first, content=first.content + " "), *prepared.rendered.files[1:]),
    )
    digest = change_digest(loaded.change, other, loaded.sealed)
    assert digest != prepared.digest
    assert change_digest(loaded.change, prepared.rendered, loaded.sealed) == prepared.digest


def test_runs_read_the_sealed_copy_not_the_working_tree(root: Path) -> None:
    """An edit after sealing changes nothing a run reads: the copy is the hashed bytes."""
    loaded = road.prepare(root, CHANGE, use_cache=False).loaded
    sealed_test = loaded.content / "verify" / "test_common.py"
    before = sealed_test.read_bytes()
    (root / "verify" / "test_common.py").write_text("raise SystemExit('pwned')\n")
    assert sealed_test.read_bytes() == before
    assert loaded.inventory.path.is_relative_to(loaded.content)
    assert loaded.estate.root == loaded.content


def test_a_symbolic_link_in_what_runs_is_refused(root: Path) -> None:
    from gcmschange.errors import InvalidInputError

    (root / "templates" / "leak.j2").symlink_to("/etc/hostname")
    with pytest.raises(InvalidInputError, match=r"templates/leak\.j2: a symbolic link"):
        road.prepare(root, CHANGE, use_cache=False)


def test_included_template_is_covered(root: Path) -> None:
    (root / "templates/partner_gateway/extra.j2").write_text("# extra\n", encoding="utf-8")
    _edit(
        "templates/partner_gateway/nginx.conf.j2",
        "server {",
        "{% include 'partner_gateway/extra.j2' %}\nserver {",
    )(root)
    before = _digest(root)
    # A comment in the included file changes no rendered byte, only the template content.
    (root / "templates/partner_gateway/extra.j2").write_text(
        "# extra\n{# note #}", encoding="utf-8"
    )
    assert _digest(root) != before


def test_digest_is_stable_and_cache_neutral(root: Path) -> None:
    assert _digest(root) == _digest(root) == road.prepare(root, CHANGE).digest
    assert road.prepare(root, CHANGE).digest == _digest(root)  # a cache hit


def test_a_verification_test_that_runs_on_no_target_is_refused(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gcmschange.cli import main

    _edit(
        f"changes/{CHANGE}.yaml",
        "verification: [verify/test_common.py, verify/test_partner_gateway.py]",
        "verification: [verify/test_common.py, verify/test_portal.py]",
    )(root)
    assert main(["--repo", str(root), "render", CHANGE]) == 1
    err = capsys.readouterr().err
    assert "verify/test_portal.py runs on none of CHG-LAB-0002's hosts" in err
    assert "$.verification[1]" in err


def test_a_folder_the_repositorys_ansible_cfg_names_is_sealed_and_covered(root: Path) -> None:
    # roles_path = vendor_roles:roles: the run pins it inside the copy, so the copy holds it,
    # and an edit there after approval moves the digest.
    (root / "ansible.cfg").write_text("[defaults]\nroles_path = vendor_roles:roles\n")
    _add("vendor_roles/extra/tasks/main.yml", "- debug: msg=x\n")(root)
    before = road.prepare(root, CHANGE, use_cache=False)
    assert (before.loaded.content / "vendor_roles/extra/tasks/main.yml").is_file()
    _edit("vendor_roles/extra/tasks/main.yml", "msg=x", "msg=y")(root)
    assert _digest(root) != before.digest
