"""Argument specs in Ansible's format: a playbook's `<name>.meta.yml`, its roles'
`meta/argument_specs.yml`, `secret` and `no_log`, the retired `.spec.yml`, through the real CLI."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gcmschange.cli import main
from gcmschange.errors import ValidationError
from gcmschange.masking import secret_names
from gcmschange.rules import argspecs
from tests.conftest import vault_yaml

NOW = "2027-01-15T00:00:00-05:00"

PLAYBOOK = """\
- name: Serve the site
  hosts: all
  gather_facts: false
  roles:
    - role: site
  tasks:
    - name: Extra
      ansible.builtin.include_role:
        name: banner
        tasks_from: show.yml
"""
SITE_SPEC = """\
argument_specs:
  main:
    short_description: A site
    options:
      site_port:
        type: int
        choices: [8080, 8081]
      site_token:
        type: str
        no_log: true
      site_upstreams:
        type: list
        elements: dict
        options:
          host: {type: str, required: true}
          weight: {type: int}
"""
BANNER_SPEC = """\
argument_specs:
  main:
    options:
      never_used: {type: str}
  show:
    options:
      banner_text: {type: str, required: true}
"""
OWN_SPEC = """\
short_description: Site
description: The site playbook.
argument_specs:
  main:
    short_description: What a change may set
    examples: "site_owner: ops"
    options:
      site_owner: {type: str, required: true, secret: true}
"""


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def site_repo(estate_repo: Path) -> Path:
    _write(estate_repo, "playbooks/site.yml", PLAYBOOK)
    _write(estate_repo, "playbooks/site.meta.yml", OWN_SPEC)
    _write(estate_repo, "roles/site/meta/argument_specs.yml", SITE_SPEC)
    _write(estate_repo, "roles/site/tasks/main.yml", "[]\n")
    _write(estate_repo, "playbooks/roles/banner/meta/argument_specs.yml", BANNER_SPEC)
    return estate_repo


def _change(root: Path, variables: str) -> None:
    text = (root / "changes" / "CHG-LAB-0001.yaml").read_text(encoding="utf-8")
    head, _, tail = text.partition("variables:\n")
    rest = tail.split("\n")
    while rest and rest[0].startswith("  "):
        rest.pop(0)
    body = textwrap.indent(textwrap.dedent(variables).strip() + "\n", "  ")
    text = head.replace("playbook: configure", "playbook: site") + "variables:\n" + body
    (root / "changes" / "CHG-LAB-0001.yaml").write_text(text + "\n".join(rest), encoding="utf-8")


def _validate(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--repo", str(root), "validate", "--now", NOW, "changes/CHG-LAB-0001.yaml"])
    return code, capsys.readouterr().out


def test_the_playbook_and_its_roles_specs_judge_the_variables(
    site_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _change(
        site_repo,
        "site_port: 8081\nbanner_text: hello\nsite_upstreams: [{host: a, weight: 2}, {host: b}]\n"
        + vault_yaml("site_owner", "ops-vaulted", indent=0),  # a secret is only ever vaulted
    )
    code, out = _validate(site_repo, capsys)
    assert code == 0, out


def test_each_wrong_value_is_named_where_it_is_written(
    site_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _change(
        site_repo,
        """
        site_port: 9000
        never_used: x
        site_upstreams: [{weight: two}, 3]
        """,
    )
    code, out = _validate(site_repo, capsys)
    assert code == 1
    files = "playbooks/site.meta.yml nor roles/site/meta/argument_specs.yml nor "
    files += "playbooks/roles/banner/meta/argument_specs.yml"
    for expected in (
        "$.variables.site_port: variable 'site_port' must be one of 8080, 8081 (got 9000)",
        f"$.variables.never_used: unknown variable 'never_used' (not declared in {files})",
        "$.variables.site_upstreams[0].weight: variable 'site_upstreams.weight' must be int",
        "$.variables.site_upstreams[0]: site_upstreams: missing required key 'host'",
        "$.variables.site_upstreams[1]: site_upstreams[1] must be dict, not a number",
        "$.variables: missing required variable 'site_owner' (declared in playbooks/site.meta.yml)",
    ):
        assert expected in out, out


def test_secret_and_no_log_both_mask(site_repo: Path) -> None:
    assert secret_names(site_repo, "site") == ("site_owner", "site_token")
    assert secret_names(site_repo, "configure") == ("canary_token",)


def test_the_retired_spec_format_is_refused_with_the_way_forward(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(estate_repo, "playbooks/configure.spec.yml", "options: {}\n")
    with pytest.raises(ValidationError) as caught:
        argspecs.for_playbook(estate_repo, "configure")
    message = str(caught.value.problems[0])
    assert message.startswith("playbooks/configure.spec.yml: the .spec.yml format is retired")
    assert "playbooks/configure.meta.yml under argument_specs:" in message
    # Masking refuses it too: a skipped file could hold secret markers.
    with pytest.raises(ValidationError):
        secret_names(estate_repo, "configure")
    code, out = _validate(estate_repo, capsys)
    assert code == 1 and "format is retired" in out


def test_a_broken_spec_is_located(estate_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = estate_repo / "playbooks" / "configure.meta.yml"
    spec.write_text(spec.read_text().replace("type: int", "type: integer", 1))
    with pytest.raises(ValidationError) as caught:
        argspecs.for_playbook(estate_repo, "configure")
    where = str(caught.value.problems[0].location)
    assert where.startswith("playbooks/configure.meta.yml:")
    assert "nginx_worker_connections.type" in where
    code, out = _validate(estate_repo, capsys)
    assert code == 1
    assert "argument specs of playbooks/configure.yml are invalid" in out


def test_roles_are_found_in_plays_and_tasks_not_templated_names(site_repo: Path) -> None:
    _write(
        site_repo,
        "playbooks/more.yml",
        PLAYBOOK + "    - name: Templated\n      ansible.builtin.import_role:\n"
        "        name: '{{ which }}'\n",
    )
    assert argspecs.applied_roles(site_repo, "more") == (("site", "main"), ("banner", "show"))


def test_a_role_on_the_repositorys_roles_path_brings_its_spec(
    site_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Where Ansible finds the role (ansible.cfg roles_path), validation finds its spec.
    _write(site_repo, "ansible.cfg", "[defaults]\nroles_path = vendor_roles\n")
    (site_repo / "roles").rename(site_repo / "vendor_roles")
    _change(site_repo, "site_port: 8081\n" + vault_yaml("site_owner", "ops", indent=0))
    code, out = _validate(site_repo, capsys)
    assert code == 0, out
    _change(site_repo, "site_port: 9000\n" + vault_yaml("site_owner", "ops", indent=0))
    code, out = _validate(site_repo, capsys)
    assert code == 1 and "must be one of 8080, 8081 (got 9000)" in out, out


def test_a_number_or_boolean_written_as_text_gets_the_hint_to_unquote_it(
    site_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _change(site_repo, 'site_port: "8081"\n' + vault_yaml("site_owner", "ops", indent=0))
    code, out = _validate(site_repo, capsys)
    assert code == 1
    assert "'site_port' must be int, not a string (the text '8081': write it without quotes)" in out
