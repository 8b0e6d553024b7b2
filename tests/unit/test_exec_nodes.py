"""Execution nodes: settings checked, hosts placed, and a real transmit -> worker -> process
round trip through a local "node" (a shell in place of ssh), whole and cut short."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gcmschange.errors import InvalidInputError
from gcmschange.execution import nodes, verifier
from gcmschange.execution.remote import WorkerLink, run_remote
from gcmschange.execution.runner import RunSpec
from gcmschange.model import Host

BIN = Path(sys.executable).parent
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Rendered file in place
      ansible.builtin.copy:
        src: "{{ gcms_rendered_dir }}/{{ inventory_hostname }}/x.txt"
        dest: "{{ out }}/{{ inventory_hostname }}.txt"
        mode: "0644"
"""


def _host(name: str, system: str, **hvars: object) -> Host:
    return Host(name=name, system=system, vars=dict(hvars))


def test_parse_checks_every_setting() -> None:
    found = nodes.parse({"dmz-1": {"ssh": "root@dmz1", "systems": ["portal"]}}, "estate.yml")
    assert found == (nodes.ExecNode("dmz-1", "root@dmz1", ("portal",)),)
    for bad, why in (
        ({"n": {"ssh": "-oProxyCommand=x"}}, "ssh"),
        ({"n": {"ssh": "a b"}}, "ssh"),
        ({"n": {"ssh": "a", "work_dir": "/tmp/$(id)"}}, "work_dir"),
        ({"n": {"ssh": "a", "work_dir": "/tmp/../etc"}}, "work_dir"),
        ({"n": {"ssh": "a", "colour": "red"}}, "colour"),
        ({"N!": {"ssh": "a"}}, "N!"),
    ):
        with pytest.raises(InvalidInputError, match=why):
            nodes.parse(bad, "estate.yml: execution_nodes.prod")


def test_hosts_are_dealt_across_the_nodes_that_reach_them() -> None:
    a, b = nodes.ExecNode("a", "a"), nodes.ExecNode("b", "b", ("portal",))
    hosts = [
        _host("p1", "portal"),
        _host("c1", "case"),
        _host("p2", "portal"),
        _host("p3", "portal"),
    ]
    placed = nodes.place([a, b], hosts)
    assert {h: n.name if n else None for h, n in placed.items()} == {
        "p1": "a",
        "c1": "a",
        "p2": "b",
        "p3": "a",
    }
    assert nodes.place([b], [_host("c1", "case")]) == {"c1": None}


def test_inventory_nodes_win_over_the_estate() -> None:
    from_inventory = {"x": {"ssh": "x"}}
    hosts = [_host("h1", "portal", gcms_execution_nodes=from_inventory)]
    assert [n.name for n in nodes.of_environment([nodes.ExecNode("e", "e")], hosts)] == ["x"]
    assert [n.name for n in nodes.of_environment([nodes.ExecNode("e", "e")], [])] == ["e"]


def test_the_worker_command_is_quoted_and_works_in_its_own_folder() -> None:
    link = nodes.link(
        nodes.ExecNode("n1", "n1", ansible_runner="/opt/venv/bin/ansible-runner"),
        "r1",
    )
    assert link.argv[:2] == ("ssh", "-o")
    assert link.argv[-2] == "n1"
    assert "--private-data-dir /dev/shm/gcmschange-worker/r1 --delete" in link.argv[-1]
    assert link.work_dir == "/dev/shm/gcmschange-worker/r1"


def _fixture(tmp_path: Path) -> tuple[RunSpec, Path]:
    content = tmp_path / "content"
    (content / "playbooks").mkdir(parents=True)
    (content / "playbooks" / "p.yml").write_text(PLAYBOOK)
    inv = content / "inventories" / "t"
    inv.mkdir(parents=True)
    py = sys.executable
    hosts = {
        h: {"ansible_connection": "local", "ansible_python_interpreter": py} for h in ("h1", "h2")
    }
    (inv / "hosts.yml").write_text(json.dumps({"all": {"hosts": hosts}}))
    rendered = tmp_path / "rendered"
    for h in ("h1", "h2"):
        (rendered / h).mkdir(parents=True)
        (rendered / h / "x.txt").write_text(f"for {h}\n")
    out = tmp_path / "out"
    out.mkdir()
    spec = RunSpec(
        playbook=content / "playbooks" / "p.yml",
        inventory=inv,
        work_dir=tmp_path / "work",
        extravars={"out": str(out), "probe": "{{ lookup('pipe', 'id') }}"},
        limit=("h1", "h2"),
        diff=True,
        content=content,
        files=rendered,
    )
    return spec, out


def _local_link(tmp_path: Path, tail: str = "") -> WorkerLink:
    folder = tmp_path / "node" / "run-1"
    worker = f"PATH={BIN}:$PATH {BIN}/ansible-runner worker --private-data-dir {folder} --delete"
    return WorkerLink("local-node", ("sh", "-c", worker + tail), str(folder), str(tmp_path / "cp"))


def test_a_run_goes_through_transmit_worker_and_process(tmp_path: Path) -> None:
    spec, out = _fixture(tmp_path)
    seen: list[tuple[str, str]] = []
    result = run_remote(spec, _local_link(tmp_path), lambda h, t, s: seen.append((h, s)))
    assert result.status == "successful", result
    assert (out / "h1.txt").read_text() == "for h1\n"
    assert sorted(result.changed_hosts) == ["h1", "h2"]
    assert ("h1", "changed") in seen  # events came back live, through the same collector
    # The diff names the rendered file where the controller has it, not the node's copy.
    assert all(str(spec.files) in c.diff for c in result.changes if spec.files)
    assert not (tmp_path / "node" / "run-1").exists()  # the worker's folder is gone (--delete)
    assert list(result.artifacts.glob("*/job_events/*.json"))


def test_the_payload_names_no_path_of_the_controller(tmp_path: Path) -> None:
    from ansible_runner.utils.streaming import unstream_dir

    from gcmschange.execution import remote

    spec, _out = _fixture(tmp_path)
    spec.work_dir.mkdir()
    folder = tmp_path / "t"
    folder.mkdir()
    payload = remote._transmit(spec, _local_link(tmp_path), "id1", folder)
    assert not (folder / "pdd").exists()  # extra vars are not left behind on the controller
    unpacked = tmp_path / "unpacked"
    with payload.open("rb") as stream:
        kwargs = stream.readline().decode()
        unstream_dir(stream, json.loads(stream.readline())["zipfile"], str(unpacked))
    texts = [kwargs] + [p.read_text() for p in unpacked.rglob("*") if p.is_file()]
    assert (unpacked / "project" / "playbooks" / "p.yml").is_file()  # the sealed tree itself
    for controller_path in (spec.work_dir, spec.content, spec.files):
        assert not any(str(controller_path) in text for text in texts), controller_path


def test_a_node_lost_mid_stream_makes_its_hosts_unreachable(tmp_path: Path) -> None:
    spec, _out = _fixture(tmp_path)
    result = run_remote(spec, _local_link(tmp_path, " | head -n 2"), None)
    assert result.status == "failed"
    assert set(result.unreachable) == {"h1", "h2"}
    assert all("execution node local-node lost" in why for why in result.failures.values())


def _resolved(config: Path, host: str) -> dict[str, str]:
    """What ssh itself makes of `config` for `host` (`ssh -G`: nothing is connected)."""
    done = subprocess.run(
        ["ssh", "-G", "-F", str(config), host], capture_output=True, text=True, check=True
    )
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)


def test_checks_of_a_host_placed_on_a_node_go_through_it_and_others_do_not(
    tmp_path: Path,
) -> None:
    base = tmp_path / "ssh_config"
    base.write_text(
        "Host portal-1\n  HostName 10.9.9.11\n  ControlMaster auto\n"
        "  ControlPath /elsewhere/%C\n  ControlPersist 60s\n"
        "Host case-api-1\n  HostName 10.9.9.12\n"
    )
    node = nodes.ExecNode("exec-node-1", "exec-node-1", ssh_config=str(base))
    config = tmp_path / "proxied"
    config.write_text(verifier.proxied_config(base, {"portal-1": node}, tmp_path / "sockets"))
    placed = _resolved(config, "portal-1")
    assert placed["hostname"] == "10.9.9.11"  # still from the estate's own config
    assert placed["proxycommand"].startswith(f"ssh -F {base} ")
    assert placed["proxycommand"].endswith("-W %h:%p -- exec-node-1")
    assert placed["controlpath"].startswith(str(tmp_path / "sockets"))  # not a direct master
    assert placed["controlpersist"] == "5"
    direct = _resolved(config, "case-api-1")
    assert "proxycommand" not in direct and direct["hostname"] == "10.9.9.12"


def test_a_host_name_ssh_config_would_read_as_a_pattern_is_refused(tmp_path: Path) -> None:
    node = nodes.ExecNode("exec-node-1", "exec-node-1")
    with pytest.raises(InvalidInputError, match="not a name ssh_config can match"):
        verifier.proxied_config(None, {"portal-*": node}, tmp_path)
