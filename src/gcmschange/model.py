"""The frozen data that flows between the stages of the road.

change request -> validation -> rendered set -> plan -> approvals -> run -> verification.
Stage-specific results that only one module produces may live beside that module; what
crosses module boundaries lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ChangeType = Literal["standard", "normal", "emergency"]
ImpactLevel = Literal["none", "degraded", "outage"]


@dataclass(frozen=True)
class Window:
    start: datetime  # timezone-aware
    end: datetime  # timezone-aware
    timezone: str  # IANA name, as written in the request


@dataclass(frozen=True)
class Rollout:
    canary: int = 1
    waves: tuple[str, ...] = ("100%",)  # "N" hosts or "P%" of the targets, cumulative
    failure_threshold: int = 0  # failed + unreachable hosts tolerated per wave


@dataclass(frozen=True)
class Rollback:
    strategy: Literal["restore", "playbook"] = "restore"
    playbook: str | None = None


@dataclass(frozen=True)
class Impact:
    level: ImpactLevel = "none"
    description_en: str = ""
    description_fr: str = ""


@dataclass(frozen=True)
class ChangeRequest:
    id: str
    title: str
    type: ChangeType
    requester: str
    environment: str
    systems: tuple[str, ...]
    playbook: str
    variables: dict[str, Any]
    window: Window
    rollout: Rollout
    rollback: Rollback
    verification: tuple[str, ...]
    impact: Impact
    path: str = ""  # the file it was loaded from, relative to the repository
    template: str | None = None  # standard changes: the catalogue entry instantiated
    parameters: dict[str, Any] = field(default_factory=dict)
    incident: str | None = None  # emergency changes: the incident this answers
    raw: dict[str, Any] = field(default_factory=dict)  # the document as loaded


@dataclass(frozen=True)
class Host:
    name: str
    system: str
    vars: dict[str, Any]


@dataclass(frozen=True)
class BlastRadius:
    systems: tuple[str, ...]  # the targets and everything downstream of them
    partners: tuple[str, ...]  # partners consuming any of those systems
