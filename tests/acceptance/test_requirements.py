"""requirements.yml installed offline into the sealed run, with real ansible-galaxy, a real
local git repository, a real tarball, a collection directory and a collection shipped by a
Python package; versions and hashes in the digest and the evidence; network and unpinned
entries refused in one line naming requirements.yml and the entry."""

from __future__ import annotations

import hashlib
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gcmschange import proc
from gcmschange.apply import road
from gcmschange.audit.evidence import build_bundle
from gcmschange.cli import main
from gcmschange.errors import InvalidInputError
from gcmschange.execution import ansiblecfg
from gcmschange.execution.runner import RunResult
from gcmschange.plan import report, requirements
from gcmschange.plan.check import build_plan

CHANGE = "CHG-LAB-0002"
HOSTS = """\
all:
  children:
    partner_gateway:
      hosts:
        gw-1: {ansible_host: 10.0.0.3}
"""
PYTHON_COLLECTION = "ansible.posix"  # small, shipped by the `ansible` package (dev lock)


def _git(repo: Path, *args: str) -> str:
    ident = ["-c", "user.name=Role Author", "-c", "user.email=author@roles.example"]
    return proc.run(["git", *ident, *args], cwd=repo).stdout.strip()


def _role(folder: Path, message: str) -> Path:
    (folder / "tasks").mkdir(parents=True)
    (folder / "meta").mkdir()
    (folder / "tasks" / "main.yml").write_text(
        f"---\n- name: Say\n  ansible.builtin.debug:\n    msg: {message}\n", encoding="utf-8"
    )
    (folder / "meta" / "main.yml").write_text(
        "galaxy_info:\n  author: someone\n  description: x\n  license: MIT\n"
        "  min_ansible_version: '2.15'\n  platforms: []\ndependencies: []\n",
        encoding="utf-8",
    )
    return folder


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    # The controller's operator allows this folder; the repository never can.
    monkeypatch.setenv(requirements.SOURCES_ENV, str(tmp_path / "src"))
    repo = _role(tmp_path / "src" / "site_role", "one")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "v1")
    _git(repo, "tag", "v1.0.0")
    tarball = tmp_path / "src" / "banner-2.0.0.tar.gz"
    banner = _role(tmp_path / "build" / "banner", "banner")
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(banner, arcname="banner")
    collection = tmp_path / "src" / "acme_tools"
    (collection / "plugins" / "modules").mkdir(parents=True)
    (collection / "galaxy.yml").write_text(
        "namespace: acme\nname: tools\nversion: 1.2.3\nreadme: README.md\nauthors: [x]\n",
        encoding="utf-8",
    )
    (collection / "README.md").write_text("tools\n", encoding="utf-8")
    return {"git": repo, "tarball": tarball, "collection": collection}


def _requirements(root: Path, sources: dict[str, Path], python: str = "") -> None:
    if not python:
        found = requirements.python_collection(PYTHON_COLLECTION)
        if found is None:
            pytest.skip(f"{PYTHON_COLLECTION} is not installed (the `ansible` dev dependency)")
        python = f"  - name: {PYTHON_COLLECTION}\n    version: {requirements.version_of(found)}\n"
    (root / "requirements.yml").write_text(
        "---\nroles:\n"
        f"  - name: site_role\n    src: git+file://{sources['git']}\n    version: v1.0.0\n"
        f"  - name: banner\n    src: {sources['tarball']}\n    version: 2.0.0\n"
        "collections:\n"
        f"  - name: {sources['collection']}\n    type: dir\n    version: 1.2.3\n" + python,
        encoding="utf-8",
    )
    (root / "inventories/lab/hosts.yml").write_text(HOSTS, encoding="utf-8")


def test_requirements_install_into_the_seal_recorded_and_hashed(
    estate_repo: Path, sources: dict[str, Path]
) -> None:
    _requirements(estate_repo, sources)
    first = road.prepare(estate_repo, CHANGE, use_cache=False)
    sealed = first.loaded.sealed.root
    assert (sealed / ".gcms-requirements/roles/site_role/tasks/main.yml").is_file()
    assert (sealed / ".gcms-requirements/roles/banner/tasks/main.yml").is_file()
    acme = sealed / ".gcms-requirements/collections/ansible_collections/acme/tools"
    assert json.loads((acme / "MANIFEST.json").read_text())["collection_info"]["version"] == "1.2.3"
    namespace, name = PYTHON_COLLECTION.split(".")
    assert (
        sealed / f".gcms-requirements/collections/ansible_collections/{namespace}/{name}"
    ).is_dir()
    records = {r.name: r for r in requirements.installed(sealed)}
    assert set(records) == {"site_role", "banner", "acme.tools", PYTHON_COLLECTION}
    assert records["site_role"].version == "v1.0.0"
    assert records["banner"].source_sha256 == _sha256(sources["tarball"])
    assert len(records["acme.tools"].tree_sha256) == 64
    # Approvers read what was installed in the plan they sign, in every form of it.
    result = RunResult("successful", 0, {}, (), {}, (), Path(), 0.0)
    plan = build_plan(first, result, sealed, created=datetime.now(UTC), run_dir="")
    assert any(
        line.startswith(f"role site_role v1.0.0 from git+file://{sources['git']} (tree sha256 ")
        for line in plan.requirements
    )
    assert "requirements.yml installed role banner 2.0.0 from" in report.text(plan)
    assert "Installed from requirements.yml" in report.markdown(plan)
    assert len(json.loads(report.as_json(plan))["requirements"]) == 4
    # Galaxy's install date is not content: sealing again gives the same digest.
    again = road.prepare(estate_repo, CHANGE, use_cache=False)
    assert again.digest == first.digest
    assert again.loaded.sealed.root == sealed
    # Moving the tag to other bytes moves the digest: approvals of the old bytes go stale.
    (sources["git"] / "tasks" / "main.yml").write_text("---\n[]\n", encoding="utf-8")
    _git(sources["git"], "commit", "-qam", "v1 again")
    _git(sources["git"], "tag", "-f", "v1.0.0")
    moved = road.prepare(estate_repo, CHANGE, use_cache=False)
    assert moved.digest != first.digest
    # The run's ansible.cfg finds them after the repository's own, and nothing on sys.path.
    cfg = ansiblecfg.compose(sealed, {}, {})
    assert f"{sealed.resolve()}/.gcms-requirements/roles" in cfg
    assert f"{sealed.resolve()}/.gcms-requirements/collections" in cfg
    assert "collections_scan_sys_path = False" in cfg


def test_the_evidence_carries_what_each_sealed_run_installed(
    estate_repo: Path, sources: dict[str, Path], tmp_path: Path
) -> None:
    _requirements(estate_repo, sources)
    prepared = road.prepare(estate_repo, CHANGE, use_cache=False)
    recorded = requirements.recorded(estate_repo, CHANGE)
    assert list(recorded) == [prepared.loaded.sealed.root.name]
    bundle = build_bundle(estate_repo, CHANGE, tmp_path / "evidence.tar.gz")
    assert "requirements.json" in bundle.members
    with tarfile.open(bundle.path) as tar:
        member = tar.extractfile(f"evidence-{CHANGE}/requirements.json")
        assert member is not None
        names = {r["name"] for rs in json.load(member).values() for r in rs}
    assert names == {"site_role", "banner", "acme.tools", PYTHON_COLLECTION}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


REFUSED = {
    "galaxy role": (
        "roles:\n  - name: geerlingguy.nginx\n    version: 3.1.0\n",
        "requirements.yml: roles[0] (geerlingguy.nginx): no src: a Galaxy role",
    ),
    "https role": (
        "roles:\n  - name: r\n    src: https://github.com/x/r.git\n    version: v1\n",
        "requirements.yml: roles[0] (r): a network source",
    ),
    "ssh git role": (
        "roles:\n  - name: r\n    src: git+ssh://git@example.org/r.git\n    version: v1\n",
        "requirements.yml: roles[0] (r): a network source",
    ),
    "scp-like role": (
        "roles:\n  - name: r\n    src: git@example.org:x/r.git\n    scm: git\n    version: v1\n",
        "requirements.yml: roles[0] (r): a network source",
    ),
    "role name leaving the folder": (
        "roles:\n  - name: ../../../root/.ansible/plugins/vars\n    src: r.tar.gz\n"
        "    version: 1.0.0\n",
        "requirements.yml: roles[0] (../../../root/.ansible/plugins/vars): name '../../../root",
    ),
    "role name with a slash": (
        "roles:\n  - name: a/b\n    src: r.tar.gz\n    version: 1.0.0\n",
        "requirements.yml: roles[0] (a/b): name 'a/b': a role installs as one folder",
    ),
    "unpinned role": (
        "roles:\n  - name: r\n    src: /srv/roles/r.tar.gz\n",
        "requirements.yml: roles[0] (r): not pinned",
    ),
    "galaxy server": (
        "collections:\n  - name: a.b\n    version: 1.0.0\n    source: https://galaxy.example\n",
        "requirements.yml: collections[0] (a.b): a network source",
    ),
    "url collection": (
        "collections:\n  - name: /x/a-b-1.0.0.tar.gz\n    type: url\n    version: 1.0.0\n",
        "requirements.yml: collections[0] (/x/a-b-1.0.0.tar.gz): a network source",
    ),
    "range": (
        "collections:\n  - name: a.b\n    version: '>=1.0.0'\n",
        "requirements.yml: collections[0] (a.b): version '>=1.0.0' is a range",
    ),
    "unpinned collection": (
        "collections:\n  - community.general\n",
        "requirements.yml: collections[0] (community.general): not pinned",
    ),
    "not installed": (
        "collections:\n  - name: nobody.here\n    version: 1.0.0\n",
        "requirements.yml: collections[0] (nobody.here): not installed in this Python environment",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_network_and_unpinned_entries_are_refused_in_one_line(
    estate_repo: Path, tmp_path: Path, case: str
) -> None:
    text, message = REFUSED[case]
    (estate_repo / "requirements.yml").write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInputError) as caught:
        requirements.install(estate_repo, estate_repo)
    assert str(caught.value.message).startswith(message), caught.value.message
    assert "\n" not in caught.value.message
    assert not (estate_repo / ".gcms-requirements").exists() or case == "not installed"


def test_a_pinned_version_the_source_does_not_hold_is_refused(
    estate_repo: Path, sources: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    found = requirements.python_collection(PYTHON_COLLECTION)
    if found is None:
        pytest.skip(f"{PYTHON_COLLECTION} is not installed (the `ansible` dev dependency)")
    _requirements(
        estate_repo, sources, python=f"  - name: {PYTHON_COLLECTION}\n    version: 0.0.1\n"
    )
    code = main(["--repo", str(estate_repo), "render", CHANGE])
    err = capsys.readouterr().err
    assert code == 1
    assert f"requirements.yml: collections[1] ({PYTHON_COLLECTION}): pinned 0.0.1 but " in err
    assert not list((estate_repo / ".gcmschange" / "sealed" / CHANGE).glob("*/.gcms-requirements"))


def test_a_tag_the_repository_does_not_have_names_the_entry(
    estate_repo: Path, sources: dict[str, Path]
) -> None:
    (estate_repo / "requirements.yml").write_text(
        f"roles:\n  - name: site_role\n    src: git+file://{sources['git']}\n    version: v9.9.9\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidInputError) as caught:
        requirements.install(estate_repo, estate_repo)
    assert caught.value.message.startswith(
        "requirements.yml: roles[0] (site_role): ansible-galaxy could not install it: "
        "site_role was NOT installed successfully"
    )
    assert "v9.9.9" in caught.value.message


ESCAPES = {
    "the controller's keys": "roles:\n  - name: keys\n    src: /root/.ssh\n    version: 1.0.0\n",
    "up out of the repository": "roles:\n  - name: up\n    src: ../../etc\n    version: 1.0.0\n",
    "a git repository elsewhere": (
        "roles:\n  - name: other\n    src: git+file:///srv/other.git\n    version: v1\n"
    ),
    "a file URL": "roles:\n  - name: f\n    src: file:///etc/x.tar.gz\n    version: 1.0.0\n",
    "percent-encoded dots": (
        "roles:\n  - name: s\n    src: git+file:///tmp/x/%2e%2e/secret.git\n    version: v1\n"
    ),
    "a collection folder": (
        "collections:\n  - name: /usr/share\n    type: dir\n    version: 1.0.0\n"
    ),
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_a_source_outside_the_repository_and_the_allowed_folders_is_refused(
    estate_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    monkeypatch.setenv(requirements.SOURCES_ENV, str(tmp_path / "allowed"))
    (estate_repo / "requirements.yml").write_text(ESCAPES[case], encoding="utf-8")
    (estate_repo / "inventories/lab/hosts.yml").write_text(HOSTS, encoding="utf-8")
    code = main(["--repo", str(estate_repo), "render", CHANGE])
    assert code == 1
    err = capsys.readouterr().err
    assert "is outside the repository" in err or "percent-encoding in a source" in err
    assert not list((estate_repo / ".gcmschange" / "sealed" / CHANGE).glob("*/.gcms-requirements"))


def test_the_refusal_names_the_entry_the_path_and_what_the_operator_can_do(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(requirements.SOURCES_ENV, raising=False)
    (estate_repo / "requirements.yml").write_text(ESCAPES["the controller's keys"], "utf-8")
    (estate_repo / "inventories/lab/hosts.yml").write_text(HOSTS, encoding="utf-8")
    assert main(["--repo", str(estate_repo), "render", CHANGE]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "requirements.yml: roles[0] (keys): /root/.ssh is outside the repository" in err
    assert "GCMS_REQUIREMENTS_SOURCES=unset" in err


def test_a_link_inside_an_allowed_folder_is_judged_where_it_leads(
    estate_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "keys").symlink_to("/root/.ssh")
    monkeypatch.setenv(requirements.SOURCES_ENV, str(allowed))
    (estate_repo / "requirements.yml").write_text(
        f"roles:\n  - name: keys\n    src: {allowed / 'keys'}\n    version: 1.0.0\n", "utf-8"
    )
    with pytest.raises(InvalidInputError) as caught:
        requirements.install(estate_repo, estate_repo)
    assert "is outside the repository" in caught.value.message
