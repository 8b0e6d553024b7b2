"""A later change of the same playbook that leaves out a variable an applied change set puts
the default back: by Ansible's rules, and easy to miss in a diff. The plan names it."""

from __future__ import annotations

from pathlib import Path

from gcmschange.audit import trail
from gcmschange.plan import earlier
from gcmschange.validate.load import load_change
from tests.conftest import PORTAL_AND_CASE_API


def _finished(root: Path, change: str, outcome: str, kind: str = "apply") -> None:
    trail.record(root, f"{kind}.finished", outcome=outcome, change=change, details={})


def test_a_variable_an_applied_change_set_and_this_one_leaves_out_is_named(
    estate_repo: Path,
) -> None:
    _finished(estate_repo, "CHG-LAB-0001", "applied")
    # CHG-LAB-0002 is on another system: what CHG-LAB-0001 set there stays.
    assert earlier.reverted(estate_repo, load_change(estate_repo, "CHG-LAB-0002")) == ()
    # CHG-LAB-0003 configures the case API again without CHG-LAB-0001's variables.
    later = load_change(estate_repo, "CHG-LAB-0003")
    lines = earlier.reverted(estate_repo, later)
    names = [line.split(":")[0] for line in lines]
    assert names == ["maintenance_banner_en", "maintenance_banner_fr", "nginx_worker_connections"]
    assert "set by CHG-LAB-0001 (applied); CHG-LAB-0003 does not set it" in lines[0]
    assert earlier.last_on(earlier.applied_before(estate_repo, later), "case_api") is not None
    # The change itself, planned again, reverts nothing of its own.
    assert earlier.reverted(estate_repo, load_change(estate_repo, "CHG-LAB-0001")) == ()


def test_a_change_rolled_back_since_or_never_applied_is_not_in_force(estate_repo: Path) -> None:
    _finished(estate_repo, "CHG-LAB-0001", "rolled_back")
    later = load_change(estate_repo, "CHG-LAB-0003")
    assert earlier.reverted(estate_repo, later) == ()
    _finished(estate_repo, "CHG-LAB-0001", "applied")
    _finished(estate_repo, "CHG-LAB-0001", "rolled_back", kind="rollback")
    assert earlier.in_force(estate_repo) == []


def test_a_restore_returns_each_host_to_what_the_last_change_on_its_system_left(
    estate_repo: Path,
) -> None:
    from gcmschange.apply import road, rollout
    from gcmschange.render.configs import render_hosts

    (estate_repo / "inventories/lab/hosts.yml").write_text(PORTAL_AND_CASE_API, "utf-8")
    loaded = road.load(estate_repo, "CHG-LAB-0003")
    # Nothing applied before: the base's own configuration.
    bare = rollout.restore_set(estate_repo, loaded, None)
    # CHG-LAB-0001 configured the case API since: a rollback of CHG-LAB-0003 returns there,
    # so a rolled-back canary matches the hosts its wave never reached.
    _finished(estate_repo, "CHG-LAB-0001", "applied")
    restored = rollout.restore_set(estate_repo, loaded, None)
    first = load_change(estate_repo, "CHG-LAB-0001")
    hosts = [loaded.inventory.hosts["case-api-1"]]
    expected = render_hosts(loaded.estate, loaded.inventory, hosts, dict(first.variables))
    assert {(f.dest, f.sha256) for f in restored.rendered.files} == {
        (f.dest, f.sha256) for f in expected.files
    }
    assert restored.rendered.files != bare.rendered.files
    assert restored.variables == dict(first.variables)  # same playbook: its variables too
