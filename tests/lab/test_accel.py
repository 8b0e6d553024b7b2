"""The opt-in Mitogen accelerator on real lab hosts: used when present, a clean fallback when not.

Functional only: what lands on the hosts and what the run result says, never how fast.
The fallback path is a real partial install - an `ansible_mitogen` package without its
Ansible strategy plugins, first on the import path - so detection, the generated
ansible.cfg and the run itself all meet the situation a machine without Mitogen gives.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gcmschange import proc
from gcmschange.apply import push, road
from gcmschange.execution import accel
from gcmschange.execution.runner import RunResult
from gcmschange.rules.estate import load_inventory

pytestmark = pytest.mark.lab

Ssh = Callable[[Path, str, str], proc.Completed]
LabFactory = Callable[..., Path]


def _push(root: Path, work: Path, *, check: bool = False) -> RunResult:
    inventory = load_inventory(root, "lab")
    rendered = road.baseline(root, "lab")
    return push.push(root, inventory.path, rendered, work, check=check, accelerate=True)


def _assert_configured(root: Path, result: RunResult, lab_ssh: Ssh) -> None:
    assert result.rc == 0, result.failures
    assert not result.failures and not result.unreachable
    rendered = road.baseline(root, "lab")
    assert set(result.changed_hosts) == set(rendered.hosts())
    for item in rendered.files:
        on_host = lab_ssh(root, item.host, f"cat {item.dest}")
        assert on_host.returncode == 0, on_host.stderr
        assert on_host.stdout == item.content, f"{item.host}:{item.dest}"


def _config_of(work: Path) -> str:
    return (work / "runner" / "ansible.cfg").read_text(encoding="utf-8")


def test_accelerated_push_configures_hosts_and_is_idempotent(
    fresh_lab: LabFactory, lab_ssh: Ssh, tmp_path: Path
) -> None:
    if not accel.available():
        pytest.skip("Mitogen is not installed in this environment")
    root = fresh_lab(systems=("portal", "case_api"), hosts_per_system=1)
    applied = _push(root, tmp_path / "apply")
    assert applied.accelerated and applied.notice == ""
    assert f"strategy = {accel.STRATEGY}" in _config_of(tmp_path / "apply")
    _assert_configured(root, applied, lab_ssh)
    again = _push(root, tmp_path / "check", check=True)
    assert again.accelerated and again.rc == 0
    assert again.changes == () and not again.failures


def test_without_mitogen_the_push_falls_back_to_native_and_says_why(
    fresh_lab: LabFactory, lab_ssh: Ssh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    partial = tmp_path / "site"
    (partial / "ansible_mitogen").mkdir(parents=True)
    (partial / "ansible_mitogen" / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(partial))
    assert not accel.available()
    root = fresh_lab(systems=("portal", "case_api"), hosts_per_system=1)
    result = _push(root, tmp_path / "apply")
    assert not result.accelerated
    assert result.notice == accel.MISSING
    assert "\nstrategy = " not in _config_of(tmp_path / "apply")  # no Mitogen strategy set
    _assert_configured(root, result, lab_ssh)
