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


def _edit(path: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        text = (root / path).read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {path}"
        (root / path).write_text(text.replace(old, new, 1), encoding="utf-8")

    return edit


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
        "playbooks/configure.spec.yml", "Worker connections", "Worker  connections"
    ),
    "target host inventory var": _edit("inventories/lab/hosts.yml", "10.0.0.3", "10.0.0.33"),
    "target group var": _edit(
        "inventories/lab/group_vars/all.yml", "gcms_log_level: info", "gcms_log_level: debug"
    ),
    "config destination": _edit(
        "estate.yml", "/etc/gcms/partner_gateway.yml", "/etc/gcms/gateway.yml"
    ),
}

UNRELATED = {
    "another system's inventory host": _edit("inventories/lab/hosts.yml", "10.0.0.1", "10.0.0.11"),
    "another system's template": _edit("templates/portal/index.html.j2", "<main>", "<main >"),
    "another change": _edit("changes/CHG-LAB-0001.yaml", "1024", "2048"),
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
    digest = change_digest(root, loaded.estate, loaded.inventory, loaded.change, other)
    assert digest != prepared.digest
    same = change_digest(root, loaded.estate, loaded.inventory, loaded.change, prepared.rendered)
    assert same == prepared.digest


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
