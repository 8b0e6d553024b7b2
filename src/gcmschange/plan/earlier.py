"""What earlier changes set that this one leaves out, for the plan to say.

A change's `variables` are extra vars of its own runs: Ansible does not remember them, so
what a system's hosts hold now is what the last change applied to that system (and not
rolled back since) set. A later change that does not set one of those variables puts the
default (or the inventory's value) back: right by Ansible's rules and easy to miss in a
diff, so the plan names each such variable and the change that set it. A `restore`
rollback returns each host to that last change's state: the base content rendered and run
with that change's variables (`rollout.restore_set`), so a canary rolled back matches the
hosts the wave never reached. Values that must last belong in the inventory (group_vars).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gcmschange.apply.push import STANDARD_PLAYBOOK
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


def applied_before(root: Path, change: ChangeRequest) -> list[ChangeRequest]:
    """The changes in force in `change`'s environment, other than `change`, oldest first:
    read once (the audit log, each change file), then asked per system by `last_on`."""
    found = []
    for earlier_id in in_force(root):
        if earlier_id == change.id:
            continue
        try:
            earlier = load_change(root, earlier_id)
        except GcmsError:
            continue  # a change file since removed or broken: nothing it says can be read
        if earlier.environment == change.environment:
            found.append(earlier)
    return found


def last_on(
    applied: Sequence[ChangeRequest], system: str, playbook: str | None = None
) -> ChangeRequest | None:
    """Of `applied` (`applied_before`), the change whose run last configured `system` (with
    `playbook`: the last that ran that playbook there). Every change runs the standard
    configuration with its own variables, so its variables are what the hosts of `system`
    hold now: the state a rollback returns them to."""
    touched = [
        c for c in applied if system in c.systems and (playbook is None or c.playbook == playbook)
    ]
    return touched[-1] if touched else None


def reverted(root: Path, change: ChangeRequest) -> tuple[str, ...]:
    """One line per variable the change that last configured one of `change`'s systems set,
    which `change` does not: its run puts the default or the inventory's value back."""
    applied = applied_before(root, change)
    latest: dict[str, str] = {}
    for system in change.systems:
        earlier = last_on(applied, system)
        # What this run runs again: the standard playbook always, its own playbook if the
        # earlier change ran the same one. Another playbook's state it leaves alone.
        if earlier is None or earlier.playbook not in (STANDARD_PLAYBOOK, change.playbook):
            continue
        for name in earlier.variables:
            latest[name] = earlier.id
    return tuple(
        f"{name}: set by {by} (applied); {change.id} does not set it, so the playbook's "
        "default or the inventory's value applies again (keep lasting values in group_vars)"
        for name, by in sorted(latest.items())
        if name not in change.variables
    )
