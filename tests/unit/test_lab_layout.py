"""Names a lab gives to kernel objects, its record, and the checks `lab up` makes first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gcmschange.errors import LabError
from gcmschange.lab import preflight, registry
from gcmschange.lab.layout import (
    HostRecord,
    LabRecord,
    Layout,
    host_name,
    lab_id,
    load_record,
    save_record,
)
from gcmschange.rules.estate import load_estate

IFNAMSIZ = 15


def test_interface_names_fit_the_kernel_limit(tmp_path: Path) -> None:
    layout = Layout.of(tmp_path)
    assert len(layout.bridge) <= IFNAMSIZ
    assert len(layout.veth(preflight.MAX_HOSTS - 1)) <= IFNAMSIZ
    assert layout.veth(3).startswith(layout.veth_prefix)
    assert layout.netns("portal-1").startswith(layout.netns_prefix)


def test_control_socket_paths_fit_a_unix_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 200)
    socket = Layout.of(deep).control_dir / ("0" * 40)  # %C is a 40-hex hash
    assert len(str(socket)) + len(".XXXXXXXXXXXXXXXX") < 108  # ssh adds a temporary suffix


def test_each_repository_copy_gets_its_own_lab(tmp_path: Path) -> None:
    one, two = Layout.of(tmp_path / "a"), Layout.of(tmp_path / "b")
    assert one.id != two.id
    assert one.bridge != two.bridge
    assert one.veth_prefix != two.veth_prefix
    assert one.control_dir != two.control_dir
    assert lab_id(tmp_path / "a") == lab_id(tmp_path / "a" / ".." / "a")


def test_host_names_use_dashes() -> None:
    assert host_name("case_api", 2) == "case-api-2"
    assert host_name("portal", 1) == "portal-1"


def test_record_round_trip_and_unknown_host(tmp_path: Path) -> None:
    layout = Layout.of(tmp_path)
    host = HostRecord("portal-1", "portal", 0, "10.77.5.11", 10, 11, 12, partitioned=True)
    record = LabRecord(layout.id, str(tmp_path), "netns", "10.77.5.0/24", (host,))
    save_record(layout, record)
    assert load_record(layout) == record
    with pytest.raises(LabError, match=r"unknown lab host 'nope' \(lab hosts: portal-1\)"):
        record.host("nope")


def test_no_record_means_no_lab(tmp_path: Path) -> None:
    assert load_record(Layout.of(tmp_path)) is None


def test_systems_default_all_and_unknown(estate_repo: Path) -> None:
    estate = load_estate(estate_repo)
    assert preflight.systems_of(estate, None) == ("portal", "case_api", "partner_gateway")
    assert preflight.systems_of(estate, ["all"]) == tuple(estate.systems)
    assert preflight.systems_of(estate, ["batch", "batch"]) == ("batch",)
    with pytest.raises(LabError, match="unknown system 'nope'"):
        preflight.systems_of(estate, ["portal", "nope"])


def test_size_limits() -> None:
    with pytest.raises(LabError, match="at least 1"):
        preflight.check_size(["portal"], 0)
    with pytest.raises(LabError, match="at most"):
        preflight.check_size(["portal", "batch"], preflight.MAX_HOSTS)


def test_missing_tools_are_named_with_their_package(tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"sshd is not installed \(apt-get install openssh-server\)"):
        preflight.require_tools(str(tmp_path))


def test_not_root_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root"):
        preflight.require_root()


def test_unknown_mode() -> None:
    with pytest.raises(LabError, match="unknown lab mode 'vm'"):
        preflight.resolve_mode("vm")


def test_network_choice_skips_what_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layout = Layout.of(tmp_path)
    first = registry.choose_network(layout, "netns")
    monkeypatch.setattr(registry, "_interface_networks", lambda: {first})
    second = registry.choose_network(layout, "netns")
    assert second != first
    assert second.startswith("10.77.")
    assert registry.choose_network(layout, "loopback").startswith("127.")
