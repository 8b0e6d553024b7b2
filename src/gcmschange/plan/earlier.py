"""What earlier changes set that this one leaves out, for the plan to say.

A change's `variables` are extra vars of its own runs: Ansible does not remember them. So a
later change of the same playbook that does not set a variable an earlier, still applied
change set puts the playbook's default (or the inventory's value) back, and a rollback by
`restore` goes back to the base commit's content without any change's variables. Both are
right by Ansible's rules and easy to miss in a diff; the plan names each such variable and
the change that set it, so approvers see the revert before they sign. Values that must last
belong in the inventory (group_vars), where every later run reads them.
"""

from __future__ import annotations

from pathlib import Path

from gcmschange.audit import trail
from gcmschange.errors import GcmsError
from gcmschange.model import ChangeRequest
from gcmschange.validate.load import load_change

FINISHED = frozenset({"apply.finished", "resume.finished", "rollback.finished"})
IN_FORCE, UNDONE = "applied", frozenset({"rolled_back"})


def in_force(root: Path) -> list[str]:
    """Changes whose last run ended applied (not rolled back since), oldest first."""
    order: dict[str, int] = {}
    try:
        events = trail.read_events(root)
    except GcmsError:
        return []  # `audit verify` reports a damaged log; a plan does not stop for it
    for number, event in enumerate(events):
        if event.event not in FINISHED or not event.change:
            continue
        if event.outcome == IN_FORCE:
            order[event.change] = number
        elif event.outcome in UNDONE:
            order.pop(event.change, None)
    return sorted(order, key=order.__getitem__)


def reverted(root: Path, change: ChangeRequest) -> tuple[str, ...]:
    """One line per variable an applied change of the same playbook and environment set,
    which `change` does not: its run puts the default or the inventory's value back."""
    if not change.playbook:
        return ()
    latest: dict[str, str] = {}
    for earlier_id in in_force(root):
        if earlier_id == change.id:
            continue
        try:
            earlier = load_change(root, earlier_id)
        except GcmsError:
            continue  # a change file since removed or broken: nothing it says can be read
        if (earlier.playbook, earlier.environment) != (change.playbook, change.environment):
            continue
        for name in earlier.variables:
            latest[name] = earlier.id
    return tuple(
        f"{name}: set by {by} (applied); {change.id} does not set it, so the playbook's "
        "default or the inventory's value applies again (keep lasting values in group_vars)"
        for name, by in sorted(latest.items())
        if name not in change.variables
    )
