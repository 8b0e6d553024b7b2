"""The lab fleet against the real machine: real namespaces, real sshd, real ssh."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from gcmschange import lab, proc
from gcmschange.cli import main
from gcmschange.errors import LabError
from gcmschange.lab import hostproc, netns
from gcmschange.lab.layout import Layout, load_record
from gcmschange.rules import estate

pytestmark = pytest.mark.lab

Ssh = Callable[[Path, str, str], proc.Completed]
LabFactory = Callable[..., Path]


def _cli(root: Path, *args: str) -> int:
    return main(["--repo", str(root), *args])


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_every_host_answers_with_its_own_name(lab_repo: Path, lab_ssh: Ssh) -> None:
    state = lab.status(lab_repo)
    assert [h.name for h in state.hosts] == [
        "portal-1",
        "portal-2",
        "case-api-1",
        "case-api-2",
        "partner-gateway-1",
        "partner-gateway-2",
    ]
    for host in state.hosts:
        assert host.state == "up"
        assert lab_ssh(lab_repo, host.name, "hostname").stdout.strip() == host.name


def test_inventory_is_the_lab_environment(lab_repo: Path) -> None:
    inventory = estate.load_inventory(lab_repo, "lab")
    state = lab.status(lab_repo)
    assert inventory.groups["case_api"] == ("case-api-1", "case-api-2")
    for host in state.hosts:
        assert inventory.hosts[host.name].vars["ansible_host"] == host.address
        assert inventory.hosts[host.name].system == host.system
    # Connection settings for Ansible, in the file `lab up` writes (all.vars).
    variables = yaml.safe_load((inventory.path / "hosts.yml").read_text())["all"]["vars"]
    assert variables["ansible_ssh_common_args"] == f"-F {lab.ssh_config_path(lab_repo)}"
    assert variables["ansible_user"] == "root"


def test_a_file_written_on_one_host_is_not_visible_on_another(lab_repo: Path, lab_ssh: Ssh) -> None:
    for path in ("/etc/gcms", "/opt/gcms", "/var/log/gcms", "/etc/nginx", "/run"):
        probe = f"{path}/isolation-probe"
        assert lab_ssh(lab_repo, "portal-1", f"echo one > {probe}").returncode == 0
        assert lab_ssh(lab_repo, "portal-2", f"test ! -e {probe}").returncode == 0, path
        assert not Path(probe).exists(), f"{probe} leaked to the machine"
        lab_ssh(lab_repo, "portal-1", f"rm {probe}")


def test_hosts_reach_each_other_over_the_bridge(lab_repo: Path, lab_ssh: Ssh) -> None:
    state = lab.status(lab_repo)
    target = next(h for h in state.hosts if h.name == "case-api-1")
    connect = f"socket.create_connection(('{target.address}', 22), 3).recv(7).decode()"
    probe = f'python3 -c "import socket; print({connect})"'
    assert lab_ssh(lab_repo, "portal-1", probe).stdout.strip() == "SSH-2.0"


def test_status_as_json(lab_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(lab_repo, "lab", "status", "--output", "json") == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["up"] is True
    assert {h["state"] for h in payload["hosts"]} == {"up"}


def test_crash_makes_a_host_unreachable_and_start_brings_it_back(
    fresh_lab: LabFactory, lab_ssh: Ssh
) -> None:
    root = fresh_lab(("portal",), 2)
    assert lab_ssh(root, "portal-1", "echo kept > /etc/gcms/survives").returncode == 0
    assert _cli(root, "lab", "crash", "portal-1") == 0
    assert lab_ssh(root, "portal-1", "true").returncode != 0
    assert lab_ssh(root, "portal-2", "true").returncode == 0
    assert [h.state for h in lab.status(root).hosts] == ["down", "up"]

    assert _cli(root, "lab", "start", "portal-1") == 0
    assert lab_ssh(root, "portal-1", "cat /etc/gcms/survives").stdout.strip() == "kept"


def test_partition_cuts_a_host_off_and_heal_restores_it(
    fresh_lab: LabFactory, lab_ssh: Ssh
) -> None:
    root = fresh_lab(("portal",), 2)
    if lab.status(root).mode != "netns":
        pytest.skip("partition needs network namespaces")
    assert _cli(root, "lab", "partition", "portal-1") == 0
    assert lab_ssh(root, "portal-1", "true").returncode != 0
    assert lab_ssh(root, "portal-2", "true").returncode == 0
    assert lab.status(root).hosts[0].state == "partitioned"
    assert _cli(root, "lab", "heal", "portal-1") == 0
    assert lab_ssh(root, "portal-1", "true").returncode == 0

    # A partitioned host with a live ssh master once kept its veth for minutes after down.
    assert _cli(root, "lab", "partition", "portal-1") == 0
    lab.down(root)
    assert netns.links(Layout.of(root)) == []
    assert netns.namespaces(Layout.of(root)) == []


def _mounted_anywhere(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "mountinfo").read_text():
                found.append(entry.name)
        except OSError:
            continue
    return found


def test_down_leaves_nothing_behind_and_is_safe_twice(fresh_lab: LabFactory, lab_ssh: Ssh) -> None:
    root = fresh_lab(("portal", "case_api"), 2)
    layout = Layout.of(root)
    record = load_record(layout)
    assert record is not None
    assert lab_ssh(root, "portal-1", "true").returncode == 0  # leaves a ControlMaster
    pids = [hostproc.Pid(h.sshd_pid, h.sshd_start) for h in record.hosts]

    assert _cli(root, "lab", "down") == 0
    assert not any(hostproc.alive(p) for p in pids)
    assert hostproc.leftovers(layout.hosts_dir) == []
    assert _mounted_anywhere(str(layout.hosts_dir)) == []
    assert netns.namespaces(layout) == []
    assert netns.links(layout) == []
    assert not layout.base.exists()
    assert not layout.control_dir.exists()
    assert not layout.inventory.exists()
    assert _cli(root, "lab", "down") == 0


def test_a_lab_that_fails_to_come_up_leaves_nothing_behind(fresh_lab: LabFactory) -> None:
    root = fresh_lab(up=False)
    layout = Layout.of(root)
    with pytest.raises(LabError, match="not ready within"):
        lab.up(root, ["portal"], 2, ready_timeout=0)
    assert hostproc.leftovers(layout.hosts_dir) == []
    assert netns.links(layout) == []
    assert netns.namespaces(layout) == []
    assert not layout.base.exists()
    assert not lab.status(root).is_up


def test_two_labs_coexist_and_one_going_down_leaves_the_other(
    fresh_lab: LabFactory, lab_ssh: Ssh
) -> None:
    first, second = fresh_lab(("portal",), 1), fresh_lab(("portal",), 1)
    assert lab.status(first).network != lab.status(second).network
    assert Layout.of(first).bridge != Layout.of(second).bridge
    lab.down(first)
    assert lab_ssh(second, "portal-1", "test -d /etc/gcms").returncode == 0
    assert lab.status(second).hosts[0].state == "up"


def test_loopback_mode_gives_each_host_its_own_address(fresh_lab: LabFactory, lab_ssh: Ssh) -> None:
    root = fresh_lab(("portal",), 2, mode="loopback")
    state = lab.status(root)
    assert state.mode == "loopback"
    assert all(h.address.startswith("127.") for h in state.hosts)
    assert lab_ssh(root, "portal-2", "hostname").stdout.strip() == "portal-2"
    with pytest.raises(LabError, match="network-namespace mode"):
        lab.partition(root, "portal-1")


def test_bring_up_is_fast(fresh_lab: LabFactory) -> None:
    began = time.monotonic()
    root = fresh_lab(("portal", "case_api", "partner_gateway", "eta", "batch"), 4)
    assert len(lab.status(root).hosts) == 20
    assert time.monotonic() - began < 10


class TestBadInput:
    def test_lab_already_up(self, lab_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert _cli(lab_repo, "lab", "up") == 1
        assert "already up" in _one_line_error(capsys)
        assert lab.status(lab_repo).is_up

    def test_unknown_system(
        self, fresh_lab: LabFactory, capsys: pytest.CaptureFixture[str]
    ) -> None:
        root = fresh_lab(up=False)
        assert _cli(root, "lab", "up", "--systems", "portal,nope") == 1
        assert "unknown system 'nope'" in _one_line_error(capsys)
        assert not lab.status(root).is_up

    def test_unknown_host(self, lab_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert _cli(lab_repo, "lab", "crash", "nope-9") == 1
        assert "unknown lab host 'nope-9'" in _one_line_error(capsys)

    def test_no_lab_up(self, fresh_lab: LabFactory, capsys: pytest.CaptureFixture[str]) -> None:
        root = fresh_lab(up=False)
        assert _cli(root, "lab", "start", "portal-1") == 1
        assert "no lab is up" in _one_line_error(capsys)


def test_each_host_has_a_home_of_its_own(lab_repo: Path, lab_ssh: Ssh) -> None:
    # Not the controller's /root: its dotfiles (a pyenv init) ran on every ssh command.
    assert lab_ssh(lab_repo, "portal-1", "echo mine > /root/probe").returncode == 0
    assert lab_ssh(lab_repo, "portal-2", "test ! -e /root/probe").returncode == 0
    assert not Path("/root/probe").exists()
    listing = lab_ssh(lab_repo, "portal-1", "ls -A /root").stdout.split()
    assert ".pyenv" not in listing and ".bashrc" not in listing
    lab_ssh(lab_repo, "portal-1", "rm /root/probe")
