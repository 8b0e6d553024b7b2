"""A later change of the same playbook that leaves out a variable an applied change set puts
the default back: by Ansible's rules, and easy to miss in a diff. The plan names it."""

from __future__ import annotations

from pathlib import Path

from gcmschange.audit import trail
from gcmschange.plan import earlier
from gcmschange.validate.load import load_change


def _finished(root: Path, change: str, outcome: str, kind: str = "apply") -> None:
    trail.record(root, f"{kind}.finished", outcome=outcome, change=change, details={})


def test_a_variable_an_applied_change_set_and_this_one_leaves_out_is_named(
    estate_repo: Path,
) -> None:
    _finished(estate_repo, "CHG-LAB-0001", "applied")
    # Another lab change of the same playbook that sets none of CHG-LAB-0001's variables.
    later = load_change(estate_repo, "CHG-LAB-0002")
    lines = earlier.reverted(estate_repo, later)
    assert [line.split(":")[0] for line in lines] == [
        "maintenance_banner_en",
        "maintenance_banner_fr",
        "nginx_worker_connections",
    ]
    assert "set by CHG-LAB-0001 (applied); CHG-LAB-0002 does not set it" in lines[0]
    # The change itself, planned again, reverts nothing of its own.
    assert earlier.reverted(estate_repo, load_change(estate_repo, "CHG-LAB-0001")) == ()


def test_a_change_rolled_back_since_or_never_applied_is_not_in_force(estate_repo: Path) -> None:
    _finished(estate_repo, "CHG-LAB-0001", "rolled_back")
    later = load_change(estate_repo, "CHG-LAB-0002")
    assert earlier.reverted(estate_repo, later) == ()
    _finished(estate_repo, "CHG-LAB-0001", "applied")
    _finished(estate_repo, "CHG-LAB-0001", "rolled_back", kind="rollback")
    assert earlier.in_force(estate_repo) == []
