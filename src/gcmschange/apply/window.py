"""May a change run now? Inside its approved window and outside every freeze.

Emergency changes may run outside both; they are let through and recorded as such, so the
post-implementation review sees it. The clock is a parameter: tests pass the moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gcmschange.audit import trail
from gcmschange.errors import GateRefusedError
from gcmschange.model import ChangeRequest
from gcmschange.rules.policy import Policy, in_freeze, load_policy


@dataclass(frozen=True)
class WindowCheck:
    change: str
    now: datetime  # UTC
    inside_window: bool
    freeze: str | None  # the freeze covering now, if any
    emergency_override: bool  # refused for a normal change, let through as an emergency

    @property
    def passed(self) -> bool:
        return (self.inside_window and self.freeze is None) or self.emergency_override

    def reasons(self, change: ChangeRequest) -> tuple[str, ...]:
        out = []
        if not self.inside_window:
            start = change.window.start.isoformat()
            end = change.window.end.isoformat()
            out.append(
                f"now ({self.now.isoformat(timespec='seconds')}) is outside the "
                f"approved window {start} .. {end} ({change.window.timezone})"
            )
        if self.freeze is not None:
            out.append(f"{change.environment} is in the freeze {self.freeze!r}")
        return tuple(out)


def check(policy: Policy, change: ChangeRequest, now: datetime | None = None) -> WindowCheck:
    """A pure decision: no audit, no side effect."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    inside = change.window.start <= moment < change.window.end
    frozen = in_freeze(policy, change.environment, moment)
    blocked = not inside or frozen is not None
    return WindowCheck(
        change=change.id,
        now=moment,
        inside_window=inside,
        freeze=frozen.name if frozen else None,
        emergency_override=blocked and change.type == "emergency",
    )


def require(
    root: Path,
    change: ChangeRequest,
    digest: str,
    now: datetime | None = None,
    policy: Policy | None = None,
) -> WindowCheck:
    """`check`, recorded; raise `GateRefusedError` unless the change may run now. `policy`:
    the one in force (the gate's); the working tree's only where no gate was asked."""
    result = check(policy or load_policy(root), change, now)
    reasons = result.reasons(change)
    details = {"now": result.now.isoformat(), "reasons": list(reasons)}
    if not result.passed:
        trail.record(
            root,
            "window.refused",
            outcome="refused",
            change=change.id,
            digest=digest,
            details=details,
        )
        raise GateRefusedError(f"{change.id}: refused: " + "; ".join(reasons))
    if result.emergency_override:
        trail.record(
            root,
            "window.emergency_override",
            outcome="ok",
            change=change.id,
            digest=digest,
            details=details,
        )
    return result
