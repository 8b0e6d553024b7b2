"""The apply engine against the real lab fleet (issue 6, "Show").

One lab per module (portal x 2, case_api x 2), brought to the estate's baseline before each
test. Changes are approved with the lab-only demo keys, as the demo does; the locks live on a
local bare repository, the repository's `origin`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from gcmschange import lab
from gcmschange.apply import journal, locks, push, road, verbs, waves
from gcmschange.approvals import sign
from gcmschange.audit import trail
from gcmschange.lab.layout import Layout
from tests.conftest import copy_estate, vault_yaml, vaulted
from tests.lab.conftest import _isolated_env, give_origin_and_keys, require_lab, ssh

pytestmark = [pytest.mark.lab, pytest.mark.slow]
OWNERS = {"portal": "owner-portal", "case_api": "owner-case-api"}
CLI = [sys.executable, "-m", "gcmschange"]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_lab()
    base = tmp_path_factory.mktemp("apply-lab")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolated_env(monkeypatch, base / "home")
        root = copy_estate(base / "estate")
        give_origin_and_keys(root, base)
        try:
            lab.up(root, ("portal", "case_api"), hosts_per_system=2)
            yield root
        finally:
            lab.down(root)


@pytest.fixture
def fleet(repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The lab at the estate's baseline, with no lock held and no journal left over."""
    _isolated_env(monkeypatch, repo.parent / "home")
    for host in lab.status(repo).hosts:
        if host.state == "down":
            lab.start(repo, host.name)
        elif host.state == "partitioned":
            lab.heal(repo, host.name)
    result = push.push(
        repo,
        repo / "inventories/lab/hosts.yml",
        road.baseline(repo, "lab"),
        tmp_path / "baseline",
    )
    assert not result.failures, result.failures
    for held in locks.Store(repo).list():
        locks.Store(repo).force_unlock(held.name, "test reset")
    shutil.rmtree(repo / ".gcmschange" / "changes", ignore_errors=True)
    return repo


def approved(root: Path, ref: str) -> str:
    prepared = road.prepare(root, ref)
    change = prepared.loaded.change
    for system in change.systems:
        key = root.parent / "keys" / OWNERS[system]
        sign.approve(root, change, prepared.digest, key)
    return change.id


def govern(root: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """A policy change the governance way: on a branch, approved by two change-board members
    under the rules before it, merged."""
    git(root, "checkout", "-qb", name)
    policy = yaml.safe_load((root / "policy.yml").read_text())
    edit(policy)
    (root / "policy.yml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    git(root, "commit", "-qam", name)
    for member in ("cab-carol", "cab-dave"):
        sign.approve_governance(root, root.parent / "keys" / member)
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", f"Merge {name}", name)


def new_change(root: Path, change_id: str, template: str, **fields: object) -> str:
    doc = yaml.safe_load((root / "changes" / f"{template}.yaml").read_text())
    doc.update(id=change_id, **fields)
    (root / "changes" / f"{change_id}.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    git(root, "add", "changes")
    git(root, "commit", "-qm", f"add {change_id}")
    return change_id


def file_state(root: Path, host: str, path: str) -> str:
    done = ssh(root, host, f"stat -c %Y {path}; sha256sum {path}")
    assert done.returncode == 0, done.stderr
    return done.stdout


class Recorder:
    def __init__(self) -> None:
        self.stages: list[str] = []
        self.tasks: list[tuple[str, str, str]] = []

    def stage(self, text: str) -> None:
        self.stages.append(text)

    def task(self, host: str, task: str, status: str) -> None:
        self.tasks.append((host, task, status))


def test_chg_lab_0001_applied_in_waves_and_verified(fleet: Path) -> None:
    change = approved(fleet, "CHG-LAB-0001")
    seen = Recorder()
    result = verbs.apply(fleet, change, verbs.Options(reporter=seen))
    assert result.outcome == "applied", result
    assert [s.hosts for s in result.steps] == [
        ("portal-1",),
        ("case-api-1",),
        ("portal-2", "case-api-2"),
    ]
    assert all(set(s.verified) == set(s.hosts) for s in result.steps)
    assert result.findings == ()  # a check-mode run afterwards changes nothing
    assert seen.stages[0] == "wave 1/3 (canary): portal-1"
    assert ("portal-1", "Rendered files are in place", "changed") in seen.tasks
    assert locks.Store(fleet).list() == ()
    assert verbs.verify_change(fleet, change).ok
    banner = ssh(fleet, "portal-2", "curl -fsS http://127.0.0.1/")
    assert "Scheduled maintenance tonight" in banner.stdout
    assert trail.verify_chain(fleet).ok
    assert verbs.status(fleet, change).state == "applied"
    entries = [json.loads(x) for x in journal.path_of(fleet, change).read_text().splitlines()]
    began = {e["step"]: e["data"] for e in entries if e["status"] == "begin"}
    # Every wave checked its hosts' files against the rendering, so the check-mode re-run
    # went to one host per system only, the first each system had touched.
    assert all(waves.MANAGED_CHECK in began[f"wave-{n}-verify"]["tests"] for n in (1, 2, 3))
    assert began["idempotence"]["hosts"] == ["portal-1", "case-api-1"]


def test_a_managed_file_rewritten_behind_the_push_fails_its_wave(fleet: Path) -> None:
    """A second writer (here a hand edit right after the push, before the check) is caught by
    the wave's own verification, not left for an advisory finding: the wave is rolled back."""
    change = approved(fleet, "CHG-LAB-0001")
    victim, page = "portal-2", "/opt/gcms/portal/index.html"

    class Tamperer(Recorder):
        def task(self, host: str, task: str, status: str) -> None:
            super().task(host, task, status)
            done = host == victim and task == "Nginx is running" and status in ("ok", "changed")
            if done and not any(s.startswith("rolling back") for s in self.stages):
                assert ssh(fleet, victim, f"echo '<!-- edited -->' >> {page}").returncode == 0

    result = verbs.apply(fleet, change, verbs.Options(reporter=Tamperer()))
    assert result.outcome == "rolled_back" and int(result.exit_code) == 4, result
    assert "test_managed_files_are_the_approved_rendering" in result.steps[-1].failed[victim]
    assert result.rollback is not None and victim in result.rollback.verified
    assert "edited" not in ssh(fleet, victim, f"cat {page}").stdout


def test_chg_lab_0003_stopped_at_the_canary_and_rolled_back(fleet: Path) -> None:
    change = approved(fleet, "CHG-LAB-0003")
    untouched = file_state(fleet, "case-api-2", "/etc/nginx/conf.d/gcms-case_api.conf")
    result = verbs.apply(fleet, change)
    assert result.outcome == "rolled_back" and int(result.exit_code) == 4
    assert [s.hosts for s in result.steps] == [("case-api-1",)]
    assert "verification failed" in result.steps[0].failed["case-api-1"]
    assert result.rollback is not None and result.rollback.verified == ("case-api-1",)
    assert file_state(fleet, "case-api-2", "/etc/nginx/conf.d/gcms-case_api.conf") == untouched
    for portal in ("portal-1", "portal-2"):
        through = ssh(fleet, portal, "curl -fsS --max-time 5 http://127.0.0.1/api/v1/status")
        assert through.returncode == 0 and json.loads(through.stdout)["system"] == "case_api"
    assert locks.Store(fleet).list() == ()


@pytest.mark.parametrize("fault", ["crash", pytest.param("partition", marks=pytest.mark.extended)])
def test_a_host_lost_mid_wave_fails_the_wave_and_is_reported(fleet: Path, fault: str) -> None:
    change = approved(fleet, "CHG-LAB-0001")
    victim = "case-api-2"

    class Breaker(Recorder):
        def task(self, host: str, task: str, status: str) -> None:
            super().task(host, task, status)
            if host == victim and not any(s.startswith("broke") for s in self.stages):
                self.stages.append(f"broke {victim}")
                (lab.crash if fault == "crash" else lab.partition)(fleet, victim)

    result = verbs.apply(fleet, change, verbs.Options(reporter=Breaker()))
    assert result.outcome == "rollback_failed" and int(result.exit_code) == 5
    assert victim in result.steps[-1].bad
    assert result.rollback is not None
    assert victim in result.rollback.bad
    assert set(result.rollback.verified) == {"portal-1", "case-api-1", "portal-2"}
    assert result.locks_kept == ("lab/case_api", "lab/portal")
    states = verbs.status(fleet, change).hosts
    assert states[victim].startswith("unreachable")
    (lab.start if fault == "crash" else lab.heal)(fleet, victim)
    again = verbs.rollback(fleet, change)
    assert again.outcome == "rolled_back" and int(again.exit_code) == 0
    assert locks.Store(fleet).list() == ()


def test_outside_the_window_or_in_a_freeze_nothing_is_touched(fleet: Path) -> None:
    past = {
        "start": "2025-01-01T00:00:00",
        "end": "2025-01-02T00:00:00",
        "timezone": "America/Toronto",
    }
    late = approved(fleet, new_change(fleet, "CHG-LAB-0901", "CHG-LAB-0003", window=past))
    before = file_state(fleet, "case-api-1", "/etc/nginx/conf.d/gcms-case_api.conf")
    done = subprocess.run(
        [*CLI, "--repo", str(fleet), "apply", late], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "outside the approved window" in done.stderr or "validation failed" in done.stderr
    # Approved before the freeze is declared. A freeze is a policy change, so it takes effect
    # as a governance change: two change-board members approve it on its branch, then it is
    # merged; it is lifted the same way.
    frozen = approved(fleet, "CHG-LAB-0003")
    now = datetime.now(UTC)
    freeze = {
        "name": "Lab test freeze",
        "timezone": "UTC",
        "environments": ["lab"],
        "start": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        "end": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
    }
    govern(fleet, "freeze", lambda policy: policy["freezes"].append(freeze))
    try:
        done = subprocess.run(
            [*CLI, "--repo", str(fleet), "apply", frozen],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 1
        assert "freeze" in done.stderr.lower(), done.stderr
    finally:
        govern(fleet, "unfreeze", lambda policy: policy["freezes"].remove(freeze))
    assert file_state(fleet, "case-api-1", "/etc/nginx/conf.d/gcms-case_api.conf") == before
    assert not journal.episode(journal.read(journal.path_of(fleet, late))).touched


def test_the_canary_secret_is_never_written(fleet: Path) -> None:
    """Vault values, one in the change and one in the inventory's group_vars, both rendered
    into a host's configuration: they reach the host, and no file on this machine outside
    the hosts' own holds them (run folders, artifacts, events, journal, cache, /tmp,
    /dev/shm), nor does anything the CLI prints."""
    token = "canary-" + hashlib.sha256(os.urandom(16)).hexdigest()[:20]
    inline = "inventory-" + hashlib.sha256(os.urandom(16)).hexdigest()[:20]
    conf = "templates/case_api/nginx.conf.j2"
    before = (fleet / conf).read_text(encoding="utf-8")
    group_vars = fleet / "inventories/lab/group_vars/case_api.yml"
    (fleet / conf).write_text(
        before + "# token {{ canary_token | default('none') }} {{ gcms_db_password }}\n"
    )
    group_vars.write_text(vault_yaml("gcms_db_password", inline, indent=0), encoding="utf-8")
    git(fleet, "add", "-A", "templates", "inventories")
    git(fleet, "commit", "-qm", "case API config carries two vault values")
    try:
        variables = {"gcms_log_level": "debug", "canary_token": vaulted(token)}
        change = approved(
            fleet,
            new_change(
                fleet,
                "CHG-LAB-0902",
                "CHG-LAB-0003",
                systems=["case_api"],
                variables=variables,
                title="Debug logging on the case API",
            ),
        )
        done = subprocess.run(
            [*CLI, "--repo", str(fleet), "apply", change, "--output", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        for secret in (token, inline):
            assert secret not in done.stdout and secret not in done.stderr
            on_host = ssh(fleet, "case-api-1", "cat /etc/nginx/conf.d/gcms-case_api.conf")
            assert f"# token {token} {inline}" in on_host.stdout  # it did reach the host
        hosts_dir = Layout.of(fleet).hosts_dir.resolve()
        places = [fleet, Path("/dev/shm"), *Path(tempfile.gettempdir()).glob("gc*")]
        leaks = [
            p
            for place in places
            for p in place.rglob("*")
            if p.is_file()
            and not p.resolve().is_relative_to(hosts_dir)
            and (token.encode() in p.read_bytes() or inline.encode() in p.read_bytes())
        ]
        assert leaks == []
    finally:
        (fleet / conf).write_text(before, encoding="utf-8")
        group_vars.unlink()
        git(fleet, "add", "-A", "templates", "inventories")
        git(fleet, "commit", "-qm", "case API config without vault values again")


def playbooks_of(root: Path) -> list[int]:
    """ansible-playbook processes of runs under `root` (their ANSIBLE_CONFIG is in there)."""
    marker = f"ANSIBLE_CONFIG={root / '.gcmschange'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes():
                found.append(int(entry.name))
    return found


def _kill_at(root: Path, change: str, step: str) -> int:
    """SIGKILL the orchestrator alone (its ansible-playbook lives on, as after a real crash),
    then end what it left behind in its session so the machine stays clean."""
    proc = subprocess.Popen(
        [*CLI, "--repo", str(root), "apply", change],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    path = journal.path_of(root, change)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any(str(e.step) == step and e.status == "begin" for e in journal.read(path)):
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


@pytest.mark.parametrize(
    ("template", "step", "outcome"),
    [
        ("CHG-LAB-0003", "lock", "rolled_back"),
        ("CHG-LAB-0001", "wave-1-push", "applied"),
        pytest.param("CHG-LAB-0001", "wave-2-verify", "applied", marks=pytest.mark.extended),
        pytest.param("CHG-LAB-0001", "idempotence", "applied", marks=pytest.mark.extended),
        ("CHG-LAB-0003", "rollback-push", "rolled_back"),
    ],
)
def test_kill_9_at_a_journal_step_then_resume(
    fleet: Path, template: str, step: str, outcome: str
) -> None:
    change = approved(fleet, template)
    code = _kill_at(fleet, change, step)
    assert code == -signal.SIGKILL
    assert verbs.status(fleet, change).state == "interrupted"
    held = {lk.holder.change for lk in locks.Store(fleet).list() if lk.holder}
    # Killed as the lock step begins, the push may not have happened yet: then no lock is
    # held and resume must take it itself. After that step, the crashed change keeps its lock.
    assert held == {change} or (step == "lock" and not held)
    done = subprocess.run(
        [*CLI, "--repo", str(fleet), "resume", change, "--output", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    result = json.loads(done.stdout)
    assert result["outcome"] == outcome, done.stderr
    assert playbooks_of(fleet) == []  # a playbook the kill left was stopped, not run beside
    assert locks.Store(fleet).list() == ()
    assert trail.verify_chain(fleet).ok
    states = verbs.status(fleet, change).hosts
    assert all(s.endswith("verified") or s == "pending" for s in states.values()), states
