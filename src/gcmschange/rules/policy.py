"""The change policy (`policy.yml`): approvals, freezes, window limits, emergency rules, and
what an inconclusive canary analysis does.

Only reading and querying live here; the checks that turn policy into problems are in
`validate.py`, and the approval gate (`approvals.py`) asks `required_roles` what to demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gcmschange import resources, yamlsafe
from gcmschange.errors import InvalidInputError, ValidationError
from gcmschange.model import ChangeRequest
from gcmschange.validate.schema import checker

OWNER_ROLE = "owner"
# Calendar conflicts block changes where an overlap can hurt people; in dev and the lab,
# long-lived demo windows overlap on purpose, so there they only warn.
DEFAULT_CONFLICT_SEVERITY = {"prod": "error", "staging": "error"}


@dataclass(frozen=True)
class Freeze:
    name: str
    start: datetime  # timezone-aware
    end: datetime  # timezone-aware
    environments: tuple[str, ...]

    def covers(self, env: str, when: datetime) -> bool:
        return env in self.environments and self.start <= when < self.end

    def overlaps(self, env: str, start: datetime, end: datetime) -> bool:
        return env in self.environments and start < self.end and self.start < end


@dataclass(frozen=True)
class WindowRules:
    max_hours: dict[str, float] = field(default_factory=dict)
    min_notice_hours: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EmergencyRules:
    requires_incident: bool = True
    review_due_days: int = 5


@dataclass(frozen=True)
class GovernanceRules:
    """Who approves a change to the rules themselves, under the rules before it."""

    role: str = "change-board"
    approvals: int = 2


class Inconclusive(StrEnum):
    """What an inconclusive analysis does to a change."""

    FAIL = "fail"  # stop and roll back, as a failed check does: fail closed
    PROCEED = "proceed"  # go on, recorded


@dataclass(frozen=True)
class AnalysisRules:
    inconclusive: Inconclusive = Inconclusive.FAIL
    prometheus: dict[str, str] = field(default_factory=dict)  # environment -> URL
    required: tuple[str, ...] = ()  # environments that must have a Prometheus to judge changes


@dataclass(frozen=True)
class Policy:
    # environment -> change type -> roles ("owner" is expanded per target system)
    approvals: dict[str, dict[str, tuple[str, ...]]]
    freezes: tuple[Freeze, ...]
    windows: WindowRules
    emergency: EmergencyRules
    approval_expiry_days: int
    governance: GovernanceRules = field(default_factory=GovernanceRules)
    clock_skew: timedelta = timedelta(minutes=5)
    untrusted_plans: tuple[str, ...] = ()
    conflict_severity: dict[str, str] = field(
        default_factory=lambda: dict(DEFAULT_CONFLICT_SEVERITY)
    )
    analysis: AnalysisRules = field(default_factory=AnalysisRules)

    def max_window(self, env: str) -> timedelta | None:
        hours = self.windows.max_hours.get(env)
        return None if hours is None else timedelta(hours=hours)

    def min_notice(self, env: str) -> timedelta | None:
        hours = self.windows.min_notice_hours.get(env)
        return None if hours is None else timedelta(hours=hours)

    def conflict_level(self, env: str) -> str:
        return self.conflict_severity.get(env, "warning")


def expand_roles(roles: tuple[str, ...], systems: tuple[str, ...]) -> tuple[str, ...]:
    """`owner` becomes `owner:<system>` for each target system, in order, without repeats."""
    out: list[str] = []
    for role in roles:
        if role == OWNER_ROLE:
            out.extend(f"{OWNER_ROLE}:{s}" for s in systems)
        else:
            out.append(role)
    return tuple(dict.fromkeys(out))


def required_roles(policy: Policy, change: ChangeRequest) -> tuple[str, ...]:
    """The roles that must each be satisfied by a distinct approver of `change`."""
    roles = policy.approvals.get(change.environment, {}).get(change.type, ())
    return expand_roles(roles, change.systems)


def in_freeze(policy: Policy, env: str, when: datetime) -> Freeze | None:
    """The freeze covering `when` (timezone-aware) in `env`, if any."""
    return next((f for f in policy.freezes if f.covers(env, when)), None)


def freezes_overlapping(
    policy: Policy, env: str, start: datetime, end: datetime
) -> tuple[Freeze, ...]:
    return tuple(f for f in policy.freezes if f.overlaps(env, start, end))


def _aware(value: Any, tz: str, where: str) -> datetime:
    try:
        zone = ZoneInfo(tz)
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInputError(f"{where}: {exc}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _freeze(raw: dict[str, Any], index: int, where: str) -> Freeze:
    at = f"{where}: $.freezes[{index}]"
    tz = str(raw.get("timezone", "UTC"))
    return Freeze(
        name=str(raw.get("name", f"freeze {index + 1}")),
        start=_aware(raw["start"], tz, at),
        end=_aware(raw["end"], tz, at),
        environments=tuple(str(e) for e in raw.get("environments", ())),
    )


def _approvals(raw: dict[str, Any]) -> dict[str, dict[str, tuple[str, ...]]]:
    return {
        str(env): {str(kind): tuple(str(r) for r in roles or ()) for kind, roles in types.items()}
        for env, types in (raw or {}).items()
    }


def _analysis(raw: dict[str, Any]) -> AnalysisRules:
    return AnalysisRules(
        inconclusive=Inconclusive(str(raw.get("inconclusive", Inconclusive.FAIL.value))),
        prometheus={str(k): str(v) for k, v in (raw.get("prometheus") or {}).items()},
        required=tuple(str(e) for e in raw.get("required") or ()),
    )


def from_document(doc: dict[str, Any], where: str = "policy.yml") -> Policy:
    """Build the policy from a parsed `policy.yml` (shape checked by its schema)."""
    try:
        windows = doc.get("windows") or {}
        emergency = doc.get("emergency") or {}
        conflicts = (doc.get("calendar") or {}).get("conflicts")
        return Policy(
            approvals=_approvals(doc.get("approvals") or {}),
            freezes=tuple(_freeze(f, i, where) for i, f in enumerate(doc.get("freezes") or ())),
            windows=WindowRules(
                max_hours={str(k): float(v) for k, v in (windows.get("max_hours") or {}).items()},
                min_notice_hours={
                    str(k): float(v) for k, v in (windows.get("min_notice_hours") or {}).items()
                },
            ),
            emergency=EmergencyRules(
                requires_incident=bool(emergency.get("requires_incident", True)),
                review_due_days=int(emergency.get("review_due_days", 5)),
            ),
            approval_expiry_days=int((doc.get("approval_expiry") or {}).get("max_days", 14)),
            governance=GovernanceRules(
                role=str((doc.get("governance") or {}).get("role", "change-board")),
                approvals=int((doc.get("governance") or {}).get("approvals", 2)),
            ),
            clock_skew=timedelta(minutes=int(doc.get("clock_skew_minutes", 5))),
            untrusted_plans=tuple(str(e) for e in doc.get("untrusted_plans", ())),
            conflict_severity=(
                {str(k): str(v) for k, v in conflicts.items()}
                if isinstance(conflicts, dict)
                else dict(DEFAULT_CONFLICT_SEVERITY)
            ),
            analysis=_analysis(doc.get("analysis") or {}),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InvalidInputError(
            f"{where}: not a valid policy ({type(exc).__name__}: {exc})"
        ) from exc


def load_policy(root: Path, *, check: bool = True) -> Policy:
    """Read `policy.yml` at the repository root: hardened loader, then (unless known good,
    `check=False`) its schema."""
    doc = yamlsafe.load_file(root / "policy.yml", "policy.yml", root=root)
    schema = checker(resources.schema("policy"))
    problems = schema.problems(doc) if check else []
    if problems:
        raise ValidationError("policy.yml is invalid", tuple(problems))
    return from_document(doc.data, "policy.yml")
