"""The client files `lab up` writes: inventory, ssh_config, known_hosts (real ssh-keygen)."""

from __future__ import annotations

from pathlib import Path

from gcmschange.execution import nodes
from gcmschange.lab import clientfiles, fleet, hostproc
from gcmschange.lab.layout import HostRecord, LabRecord, Layout
from gcmschange.rules.estate import load_inventory

HOSTS = (
    HostRecord("portal-1", "portal", 0, "10.77.9.11"),
    HostRecord("case-api-1", "case_api", 1, "10.77.9.12"),
    HostRecord("case-api-2", "case_api", 2, "10.77.9.13"),
)


def _write(root: Path) -> Layout:
    layout = Layout.of(root)
    record = LabRecord(layout.id, str(root), "netns", "10.77.9.0/24", HOSTS)
    clientfiles.ensure_client_key(layout)
    for host in HOSTS:
        spec = hostproc.HostSpec(host.name, layout.host_dir(host.name), host.address, None)
        hostproc.host_key(spec)
    clientfiles.write_all(layout, record)
    return layout


def test_inventory_is_read_as_the_lab_environment(estate_repo: Path) -> None:
    layout = _write(estate_repo)
    try:
        inventory = load_inventory(estate_repo, "lab")
    finally:
        clientfiles.remove(layout)
        layout.control_dir.rmdir()
    assert inventory.groups == {"portal": ("portal-1",), "case_api": ("case-api-1", "case-api-2")}
    assert inventory.hosts["case-api-2"].vars["ansible_host"] == "10.77.9.13"
    assert inventory.hosts["case-api-2"].vars["gcms_environment"] == "lab"  # group_vars merged


def test_ssh_config_checks_host_keys_strictly_and_reuses_connections(estate_repo: Path) -> None:
    layout = _write(estate_repo)
    layout.control_dir.rmdir()
    clientfiles.remove(layout)
    config = layout.ssh_config.read_text()
    for line in (
        "Host case-api-1\n  HostName 10.77.9.12",
        f"UserKnownHostsFile {layout.known_hosts}",
        "StrictHostKeyChecking yes",
        "BatchMode yes",
        f"ControlPath {layout.control_dir}/%C",
        "ControlMaster auto",
        "ControlPersist 60s",
        "ServerAliveInterval 5",
        "ServerAliveCountMax 3",
        "KexAlgorithms curve25519-sha256",
        f"IdentityFile {layout.key}",
    ):
        assert line in config
    known = layout.known_hosts.read_text().splitlines()
    assert [k.split()[0] for k in known] == [
        "portal-1,10.77.9.11",
        "case-api-1,10.77.9.12",
        "case-api-2,10.77.9.13",
    ]
    assert all(k.split()[1] == "ssh-ed25519" for k in known)
    assert layout.authorized_keys.read_text() == layout.key.with_suffix(".pub").read_text()


def test_exec_nodes_are_in_no_group_and_named_for_every_host(estate_repo: Path) -> None:
    layout = Layout.of(estate_repo)
    node = HostRecord("exec-node-1", "", 3, "10.77.9.14", exec_node=True)
    record = LabRecord(layout.id, str(estate_repo), "netns", "10.77.9.0/24", (*HOSTS, node))
    clientfiles.ensure_client_key(layout)
    for host in record.hosts:
        hostproc.host_key(hostproc.HostSpec(host.name, layout.host_dir(host.name), "", None))
    clientfiles.write_all(layout, record)
    try:
        inventory = load_inventory(estate_repo, "lab")
    finally:
        clientfiles.remove(layout)
        layout.control_dir.rmdir()
    assert "exec-node-1" not in inventory.hosts  # never a target
    found = nodes.of_environment((), tuple(inventory.hosts.values()))
    assert [(n.name, n.ssh, n.work_dir) for n in found] == [
        ("exec-node-1", "exec-node-1", clientfiles.EXEC_NODE_WORK_DIR)
    ]
    assert "Host portal-1 case-api-1 case-api-2 exec-node-1" in layout.ssh_config.read_text()
    assert fleet.parse_latency("30ms") == 30
    assert fleet.parse_latency("0.05s") == 50
