"""Execution nodes on the lab (issue 18, "Show"): a change applied through two nodes, each
wave's hosts split between them, verified; then a node crashed mid-wave, its hosts counted
unreachable, the wave stopped and rolled back through the node that is left.

One lab for the module: portal x 2, case_api x 2 and two execution nodes (exec-node-1, -2),
which the lab inventory names in `gcms_execution_nodes`.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gcmschange import lab
from gcmschange.apply import locks, verbs
from gcmschange.apply.converge import converge
from gcmschange.audit import trail
from gcmschange.execution import nodes
from gcmschange.lab.layout import Layout
from tests.conftest import copy_estate
from tests.lab.conftest import _isolated_env, give_origin_and_keys, require_lab, ssh
from tests.lab.test_apply import CLI, Recorder, approved

pytestmark = [pytest.mark.lab, pytest.mark.slow]
NODES = ("exec-node-1", "exec-node-2")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_lab()
    base = tmp_path_factory.mktemp("exec-nodes-lab")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolated_env(monkeypatch, base / "home")
        root = copy_estate(base / "estate")
        give_origin_and_keys(root, base)
        try:
            lab.up(root, ("portal", "case_api"), hosts_per_system=2, exec_nodes=2)
            yield root
        finally:
            lab.down(root)


@pytest.fixture
def fleet(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every node and host up, at the baseline (pushed through the nodes), no lock held."""
    _isolated_env(monkeypatch, repo.parent / "home")
    for host in lab.status(repo).hosts:
        if host.state == "down":
            lab.start(repo, host.name)
    converge(repo, "lab")
    for held in locks.Store(repo).list():
        locks.Store(repo).force_unlock(held.name, "test reset")
    shutil.rmtree(repo / ".gcmschange" / "changes", ignore_errors=True)
    return repo


def _shares(root: Path, change: str, folder: str) -> set[str]:
    """The nodes a wave's push ran on, from the run folders they left."""
    runs = root / ".gcmschange" / "changes" / change
    found = runs.rglob("runner/node-*")
    return {p.name.removeprefix("node-") for p in found if p.parent.parent.name == folder}


def _accepted_from(root: Path, host: str) -> list[str]:
    """The address of every ssh connection the host's sshd has accepted, oldest first."""
    log = (Layout.of(root).host_dir(host) / "sshd.log").read_text(errors="replace")
    return re.findall(r"Accepted publickey for root from (\S+)", log)


def test_applied_through_two_nodes_and_verified(fleet: Path) -> None:
    assert [h.reachable for h in nodes.health_of(lab.exec_nodes(fleet))] == [True, True]
    state = lab.status(fleet)
    via_nodes = {h.address for h in state.hosts if h.exec_node}
    targets = [h.name for h in state.hosts if not h.exec_node]
    for socket in Layout.of(fleet).control_dir.glob("*"):  # no direct master to reuse
        subprocess.run(["ssh", "-S", str(socket), "-O", "exit", "lab"], check=False, timeout=10)
    seen_before = {h: len(_accepted_from(fleet, h)) for h in targets}
    change = approved(fleet, "CHG-LAB-0001")
    seen = Recorder()
    result = verbs.apply(fleet, change, verbs.Options(reporter=seen))
    assert result.outcome == "applied", result
    assert [s.hosts for s in result.steps][-1] == ("portal-2", "case-api-2")
    assert all(set(s.verified) == set(s.hosts) for s in result.steps)
    assert _shares(fleet, change, "wave-3") == set(NODES)  # the last wave split between them
    assert ("portal-2", "Rendered files are in place", "changed") in seen.tasks  # came back
    assert result.findings == ()  # idempotence, through the nodes too
    assert verbs.verify_change(fleet, change).ok
    if state.mode == "netns":  # only there does a connection say where it came from
        # Playbooks and checks alike reached every host from a node, never from here: as
        # where the controller cannot reach the hosts' zone at all.
        for host in targets:
            new = _accepted_from(fleet, host)[seen_before[host] :]
            assert new and set(new) <= via_nodes, (host, new)
    assert "Scheduled maintenance tonight" in ssh(fleet, "portal-2", "curl -fsS 127.0.0.1/").stdout
    assert trail.verify_chain(fleet).ok
    # The controller ran no playbook of its own: every share went to a node.
    assert not list((fleet / ".gcmschange" / "changes" / change).rglob("runner/controller"))


def test_a_node_lost_mid_wave_is_contained_and_rolled_back(fleet: Path) -> None:
    change = approved(fleet, "CHG-LAB-0001")
    before = ssh(fleet, "case-api-2", "sha256sum /etc/nginx/conf.d/gcms-case_api.conf").stdout

    class Crasher(Recorder):
        """Crashes exec-node-2 (a power cut: its worker and playbook die with it) as soon as
        the last wave's events show it running case-api-2."""

        def task(self, host: str, task: str, status: str) -> None:
            super().task(host, task, status)
            if host == "case-api-2" and not any(s == "crashed" for s in self.stages):
                self.stages.append("crashed")
                lab.crash(fleet, "exec-node-2")

    seen = Crasher()
    result = verbs.apply(fleet, change, verbs.Options(reporter=seen))
    assert "crashed" in seen.stages
    assert result.outcome == "rolled_back" and int(result.exit_code) == 4, result
    last = result.steps[-1]
    assert "case-api-2" in last.unreachable
    assert "execution node exec-node-2 lost" in last.failed["case-api-2"]
    assert result.rollback is not None
    assert set(result.rollback.verified) == {"portal-1", "case-api-1", "portal-2", "case-api-2"}
    # The rollback went through the node that was left.
    assert _shares(fleet, change, "rollback") == {"exec-node-1"}
    after = ssh(fleet, "case-api-2", "sha256sum /etc/nginx/conf.d/gcms-case_api.conf").stdout
    assert after == before
    assert locks.Store(fleet).list() == ()
    journal_text = json.dumps(verbs.status(fleet, change).hosts)
    assert "case-api-2" in journal_text


def _node_playbooks(root: Path) -> list[int]:
    """ansible-playbook processes running inside this lab's execution nodes (each node is a PID
    namespace of its own, which this machine's /proc shows too)."""
    spaces = set()
    for host in lab.status(root).hosts:
        if host.exec_node and host.pid is not None:
            with contextlib.suppress(OSError):
                spaces.add(Path(f"/proc/{host.pid}/ns/pid").readlink())
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if (
                entry.name.isdigit()
                and b"ansible-playbook" in (entry / "cmdline").read_bytes()
                and (entry / "ns" / "pid").readlink() in spaces
            ):
                found.append(int(entry.name))
    return found


def test_ctrl_c_stops_the_playbook_on_the_node_and_keeps_the_record(fleet: Path) -> None:
    change = approved(fleet, "CHG-LAB-0001")
    child = subprocess.Popen(
        [*CLI, "--repo", str(fleet), "apply", change],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the SIGINT goes to it alone, as a terminal's would
    )
    try:
        deadline = time.monotonic() + 300
        while not _node_playbooks(fleet) and time.monotonic() < deadline:
            assert child.poll() is None, child.communicate()
            time.sleep(0.1)
        assert _node_playbooks(fleet), "no playbook ever ran on a node"
        child.send_signal(signal.SIGINT)
        _out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err
    assert "SIGINT received: the playbooks on exec-node-" in err, err
    deadline = time.monotonic() + 15
    while _node_playbooks(fleet) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _node_playbooks(fleet) == []  # stopped on the node, not left running there
    assert verbs.status(fleet, change).state == "interrupted"
    assert {h.name for h in locks.Store(fleet).list()} == {"lab/case_api", "lab/portal"}
