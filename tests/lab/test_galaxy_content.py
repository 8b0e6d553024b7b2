"""Bring your own content, on the real lab (issue 14, "Show"): a role written like a Galaxy
role (argument specs, defaults, handlers, templates, a template validated with `nginx -t`),
kept in its own git repository and pinned by tag in requirements.yml, plus a module from a
collection nobody here wrote (community.general's ini_file, from the `ansible` Python package),
both installed offline into the sealed run. A playbook of the repository applies the role with
the change's variables, declared in its argument spec. Driven through validate -> plan (the
role's diff) -> approve -> apply -> verify -> a second change of a variable -> rollback, and
a value that passes the spec but not `nginx -t`, reading the hosts' real state each time.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gcmschange import lab
from gcmschange.apply import road, verbs
from gcmschange.approvals import sign
from gcmschange.cli import main
from gcmschange.plan import requirements
from tests.conftest import copy_estate
from tests.lab.conftest import _isolated_env, give_origin_and_keys, require_lab, ssh

pytestmark = [pytest.mark.lab, pytest.mark.slow]
NOW = "2027-01-15T00:00:00-05:00"
COLLECTION = "community.general"
HOSTS = ("portal-1", "portal-2")
PAGE = "/opt/gcms/nginx_site/index.html"
INI = "/etc/gcms/nginx_site.ini"
SITE = "curl -fsS --max-time 5 http://127.0.0.1:8090/"

# The role, as its authors publish it: nothing in it knows about gcmschange.
ROLE = {
    "README.md": "nginx_site: one static nginx site, its page and its settings file.\n",
    "meta/main.yml": """\
        galaxy_info:
          author: Web Team
          description: One static nginx site
          license: MIT
          min_ansible_version: "2.15"
          platforms:
            - name: Debian
              versions: [all]
        dependencies: []
        """,
    "meta/argument_specs.yml": """\
        argument_specs:
          main:
            short_description: One static nginx site
            options:
              nginx_site_name:
                type: str
                description: Name of the site (its files are named after it).
              nginx_site_port:
                type: int
                description: Port the site listens on.
              nginx_site_message:
                type: str
                required: true
                description: What the page says.
              nginx_site_owner:
                type: str
                choices: [operations, partners]
                description: Team answering for the site.
        """,
    "defaults/main.yml": """\
        nginx_site_name: nginx_site
        nginx_site_port: 8090
        nginx_site_owner: operations
        """,
    "handlers/main.yml": """\
        - name: Reload nginx
          ansible.builtin.shell:
            cmd: nginx -t && service nginx reload
          changed_when: true
        """,
    "tasks/main.yml": """\
        - name: Site folder exists
          ansible.builtin.file:
            path: /opt/gcms/{{ nginx_site_name }}
            state: directory
            mode: "0755"

        - name: Site settings are recorded
          community.general.ini_file:
            path: /etc/gcms/{{ nginx_site_name }}.ini
            section: site
            option: "{{ item.key }}"
            value: "{{ item.value }}"
            mode: "0644"
            backup: true
          loop:
            - {key: port, value: "{{ nginx_site_port }}"}
            - {key: owner, value: "{{ nginx_site_owner }}"}

        - name: Site page is in place
          ansible.builtin.template:
            src: index.html.j2
            dest: /opt/gcms/{{ nginx_site_name }}/index.html
            mode: "0644"
            backup: true

        - name: Site is served
          ansible.builtin.template:
            src: site.conf.j2
            dest: /etc/nginx/conf.d/{{ nginx_site_name }}.conf
            mode: "0644"
            backup: true
            # Only a configuration nginx accepts is ever put in place.
            validate: >-
              sh -c 'c=$(mktemp) && printf "events {}\\nhttp { include %s; }\\n" > "$c"
              && nginx -t -q -c "$c"; r=$?; rm -f "$c"; exit $r'
          notify: Reload nginx
        """,
    "templates/index.html.j2": "<!doctype html>\n<p>{{ nginx_site_message }}</p>\n",
    "templates/site.conf.j2": """\
        # {{ ansible_managed }}
        server {
            listen {{ nginx_site_port }};
            root /opt/gcms/{{ nginx_site_name }};
            location / {
                index index.html;
            }
        }
        """,
}
REPO = {
    "playbooks/site.yml": """\
        ---
        - name: Serve the partner information site on the portal hosts
          hosts: portal
          gather_facts: false
          roles:
            - role: nginx_site
        """,
    "playbooks/site.meta.yml": """\
        ---
        short_description: The partner information site
        description: Applies the nginx_site role (requirements.yml) to the portal hosts.
        argument_specs:
          main:
            short_description: What a change may set
            examples: "nginx_site_message: Maintenance on Saturday"
            options:
              nginx_site_message: {type: str, required: true, description: What the page says.}
              nginx_site_port: {type: int, description: Port the site listens on.}
              nginx_site_owner:
                type: str
                choices: [operations, partners]
                description: Team answering for the site.
        """,
    # The rollback an Ansible engineer writes for a role that keeps backups: put back the
    # newest one of each file. The change's variables reach it too, so it must not use them.
    "playbooks/site_rollback.yml": """\
        ---
        - name: Put the partner information site back as it was
          hosts: portal
          gather_facts: false
          tasks:
            - name: Backups the role kept
              ansible.builtin.find:
                paths: "{{ item | dirname }}"
                patterns: "{{ item | basename }}.*~"
              loop:
                - /etc/gcms/nginx_site.ini
                - /opt/gcms/nginx_site/index.html
                - /etc/nginx/conf.d/nginx_site.conf
              register: backups

            - name: The newest backup is back in place
              ansible.builtin.copy:
                src: "{{ (item.files | sort(attribute='mtime') | last).path }}"
                dest: "{{ item.item }}"
                remote_src: true
                mode: "0644"
              loop: "{{ backups.results }}"
              loop_control:
                label: "{{ item.item }}"
              when: item.files | length > 0
              notify: Reload nginx

          handlers:
            - name: Reload nginx
              ansible.builtin.shell:
                cmd: nginx -t && service nginx reload
              changed_when: true
        """,
    "verify/test_site.py": '''\
        """The partner information site: served, from a configuration nginx accepts."""


        def test_site_is_served(host):
            assert "<p>" in host.check_output("curl -fsS --max-time 3 http://127.0.0.1:8090/")


        def test_nginx_accepts_its_configuration(host):
            assert host.run("nginx -t").rc == 0
        ''',
}


def _write(base: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    return done.stdout.decode().strip()


def _role_repository(base: Path) -> Path:
    role = base / "nginx_site"
    _write(role, ROLE)
    git(role, "init", "-q", "-b", "main")
    git(role, "add", "-A")
    git(role, "commit", "-qm", "nginx_site 1.0.0")
    git(role, "tag", "v1.0.0")
    return role


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_lab()
    collection = requirements.python_collection(COLLECTION)
    if collection is None:
        pytest.skip(f"{COLLECTION} is not installed (the `ansible` package, dev lock)")
    base = tmp_path_factory.mktemp("galaxy-lab")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolated_env(monkeypatch, base / "home")
        root = copy_estate(base / "estate")
        role = _role_repository(base / "roles-src")
        monkeypatch.setenv(requirements.SOURCES_ENV, str(base / "roles-src"))
        _write(root, REPO)
        (root / "requirements.yml").write_text(
            "---\nroles:\n"
            f"  - name: nginx_site\n    src: git+file://{role}\n    version: v1.0.0\n"
            "collections:\n"
            f"  - name: {COLLECTION}\n    version: {requirements.version_of(collection)}\n",
            encoding="utf-8",
        )
        estate = root / "estate.yml"
        estate.write_text(
            estate.read_text().replace(
                "verify: [verify/test_common.py, verify/test_portal.py]",
                "verify: [verify/test_common.py, verify/test_portal.py, verify/test_site.py]",
            )
        )
        git(root, "add", "-A")
        git(root, "commit", "-qm", "The partner information site (nginx_site role)")
        give_origin_and_keys(root, base)
        try:
            lab.up(root, ("portal", "case_api"), hosts_per_system=2)
            yield root
        finally:
            lab.down(root)


def change(root: Path, change_id: str, variables: dict[str, Any]) -> str:
    doc = yaml.safe_load((root / "changes" / "CHG-LAB-0001.yaml").read_text())
    doc.update(
        id=change_id,
        title=f"Partner information site, {change_id}",
        systems=["portal"],
        playbook="site",
        variables=variables,
        rollout={"canary": 1, "waves": ["100%"], "failure_threshold": 0},
        rollback={"strategy": "playbook", "playbook": "site_rollback"},
        verification=["verify/test_site.py"],
        analysis={"use": []},  # no Prometheus in this lab: the tests read the hosts
    )
    (root / "changes" / f"{change_id}.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    git(root, "add", "changes")
    git(root, "commit", "-qm", f"add {change_id}")
    return change_id


def validate(root: Path, change_id: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--repo", str(root), "validate", "--now", NOW, f"changes/{change_id}.yaml"])
    return code, capsys.readouterr().out


def plan(root: Path, change_id: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code = main(["--repo", str(root), "plan", change_id, "--output", "json"])
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert code == 0, out.get("error") or [
        (h["host"], h["status"], h["message"]) for h in out["hosts"]
    ]
    return out


def approve(root: Path, change_id: str) -> None:
    prepared = road.prepare(root, change_id)
    sign.approve(root, prepared.loaded.change, prepared.digest, root.parent / "keys/owner-portal")


def on_hosts(root: Path, command: str) -> dict[str, str]:
    found = {}
    for host in HOSTS:
        done = ssh(root, host, command)
        found[host] = done.stdout if done.returncode == 0 else f"exit {done.returncode}"
    return found


def diffs(planned: dict[str, Any], host: str) -> str:
    (entry,) = [h for h in planned["hosts"] if h["host"] == host]
    return "\n".join(t["diff"] for t in entry["tasks"])


def test_a_galaxy_role_and_a_foreign_collection_through_the_whole_road(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = change(repo, "CHG-LAB-0101", {"nginx_site_message": "Maintenance on Saturday"})
    # validate: the playbook's argument spec judges the variables before anything runs.
    code, out = validate(repo, first, capsys)
    assert code == 0, out
    bad = change(repo, "CHG-LAB-0199", {"nginx_site_message": "x", "nginx_site_owner": "web"})
    code, out = validate(repo, bad, capsys)
    assert code == 1
    assert "variable 'nginx_site_owner' must be one of operations, partners (got 'web')" in out
    git(repo, "rm", "-q", f"changes/{bad}.yaml")
    git(repo, "commit", "-qm", f"drop {bad}")

    # plan: the role's diff on each host, the collection's module included; nothing touched.
    planned = plan(repo, first, capsys)
    for host in HOSTS:
        shown = diffs(planned, host)
        assert "+<p>Maintenance on Saturday</p>" in shown, shown
        assert "+listen 8090;" in shown.replace("    ", ""), shown
        assert "+port = 8090" in shown, shown  # community.general.ini_file's diff
    assert set(on_hosts(repo, f"cat {PAGE}").values()) == {"exit 1"}
    sealed = requirements.recorded(repo, first)
    installed = {r["name"]: r["version"] for rs in sealed.values() for r in rs}
    assert installed["nginx_site"] == "v1.0.0" and COLLECTION in installed

    # approve -> apply -> verify: the hosts serve the page and hold the settings.
    approve(repo, first)
    result = verbs.apply(repo, first)
    assert result.outcome == "applied", result
    assert result.findings == ()  # the idempotence check ran the role again: no change
    assert all("<p>Maintenance on Saturday</p>" in t for t in on_hosts(repo, SITE).values())
    for text in on_hosts(repo, f"cat {INI}").values():
        assert "[site]" in text and "port = 8090" in text and "owner = operations" in text
    assert verbs.verify_change(repo, first).ok

    # A second change of variables: planned as a diff against the first, applied, then
    # rolled back by the repository's rollback playbook to exactly the first's state.
    before = on_hosts(repo, f"sha256sum {PAGE} {INI}")
    second = change(
        repo,
        "CHG-LAB-0102",
        {"nginx_site_message": "Maintenance moved to Sunday", "nginx_site_owner": "partners"},
    )
    planned = plan(repo, second, capsys)
    shown = diffs(planned, "portal-1")
    assert "-<p>Maintenance on Saturday</p>" in shown
    assert "+<p>Maintenance moved to Sunday</p>" in shown
    assert "-owner = operations" in shown and "+owner = partners" in shown
    approve(repo, second)
    assert verbs.apply(repo, second).outcome == "applied"
    assert all("<p>Maintenance moved to Sunday</p>" in t for t in on_hosts(repo, SITE).values())
    back = verbs.rollback(repo, second)
    assert back.outcome == "rolled_back", back
    assert on_hosts(repo, f"sha256sum {PAGE} {INI}") == before
    assert all("<p>Maintenance on Saturday</p>" in t for t in on_hosts(repo, SITE).values())


def served_site(repo: Path) -> None:
    """The site as the first test leaves it, applied here when this test runs alone (a
    pytest-xdist split, or -k): no test relies on another having run."""
    if set(on_hosts(repo, f"test -f {PAGE} && echo yes").values()) == {"yes\n"}:
        return
    first = change(repo, "CHG-LAB-0100", {"nginx_site_message": "Maintenance on Saturday"})
    approve(repo, first)
    assert verbs.apply(repo, first).outcome == "applied"


def test_a_value_the_spec_allows_but_nginx_refuses_never_reaches_nginx(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served_site(repo)
    served = on_hosts(repo, SITE)
    conf = on_hosts(repo, "sha256sum /etc/nginx/conf.d/nginx_site.conf")
    broken = change(
        repo, "CHG-LAB-0103", {"nginx_site_message": "Never shown", "nginx_site_port": 70000}
    )
    code, out = validate(repo, broken, capsys)
    assert code == 0, out  # an int, as the spec says: only nginx knows 70000 is no port
    approve(repo, broken)
    result = verbs.apply(repo, broken)
    assert result.outcome == "rolled_back" and int(result.exit_code) == 4, result
    (failed,) = result.steps[0].failed.values()
    assert "Site is served" in failed, failed
    assert on_hosts(repo, "sha256sum /etc/nginx/conf.d/nginx_site.conf") == conf
    assert on_hosts(repo, SITE) == served
