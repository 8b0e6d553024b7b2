"""Approvals and the gate: signed, role-based, bound to the exact plan.

`approve` signs a statement binding a person, a role, a change, its environment and its
digest; `check_gate` decides from the evidence alone (it never trusts that `approve`
refused anything); `require_gate` records the decision and raises when it refuses.
Sources of approvals are pluggable (`ApprovalSource`); the file source needs no server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from gcmschange import gitrepo
from gcmschange.apply.reviews import ReviewStatus, owe_review, owed_reviews, review_status
from gcmschange.approvals import governance
from gcmschange.approvals.statements import (
    BENIGN,
    VALID,
    Expectation,
    FileSource,
    Verdict,
)
from gcmschange.audit import trail
from gcmschange.errors import GateRefusedError
from gcmschange.model import ChangeRequest
from gcmschange.rules import trusted
from gcmschange.rules.approvers import Approvers
from gcmschange.rules.estate import load_estate
from gcmschange.rules.policy import Policy, required_roles


class ApprovalSource(Protocol):
    """Where approvals come from; each returns one verdict per approval it knows."""

    @property
    def name(self) -> str: ...

    def collect(
        self, root: Path, approvers: Approvers, want: Expectation
    ) -> tuple[Verdict, ...]: ...


SOURCES: dict[str, ApprovalSource] = {"file": FileSource()}


@dataclass(frozen=True)
class GateResult:
    change: str
    environment: str
    digest: str
    trust_ref: str  # the commit the rules were read from, and why it is trusted
    passed: bool
    required: tuple[str, ...]
    satisfied: dict[str, str]  # role -> the principal counted for it
    missing: tuple[str, ...]
    verdicts: tuple[Verdict, ...]
    reasons: tuple[str, ...]  # why it refused, one precise line each
    review_due_days: int | None  # emergency: a post-implementation review will be owed
    review: ReviewStatus | None  # a review already owed for this change
    policy: Policy | None = None  # the policy in force: windows, freezes and analysis use it


def now_utc(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def rules_in_force(
    root: Path, change_path: str | None, now: datetime, trust_ref: str | None = None
) -> governance.Outcome:
    """The rules to judge with: the trust ref's, then each governance-approved version."""
    trust = trusted.resolve(root, change_path, trust_ref)
    return governance.in_force(root, trust, frozenset(load_estate(root).systems), now)


def requesters(root: Path, change: ChangeRequest, approvers: Approvers) -> dict[str, str]:
    """Who counts as the requester, and so may not approve: the named requester, and every
    author and committer of every commit that touched the change file (a commit made under
    another person's name still has its committer, and nobody can approve their own edit)."""
    found = {change.requester: f"{change.requester} requested {change.id}"}
    named = approvers.identify(change.requester)
    if named:
        found[named] = found.pop(change.requester)
    if change.path and gitrepo.is_repo(root) and gitrepo.resolve_commit(root, "HEAD"):
        governance.add_people(found, approvers, gitrepo.people_of(root, "HEAD", change.path))
    return found


def expectation(
    root: Path, change: ChangeRequest, digest: str, now: datetime, rules: trusted.Rules
) -> Expectation:
    return Expectation(
        change=change.id,
        environment=change.environment,
        digest=digest,
        now=now,
        max_days=rules.policy.approval_expiry_days,
        requesters=requesters(root, change, rules.approvers),
        skew=rules.policy.clock_skew,
    )


def collect(
    root: Path,
    change: ChangeRequest,
    digest: str,
    rules: trusted.Rules,
    *,
    now: datetime | None = None,
    sources: tuple[ApprovalSource, ...] | None = None,
) -> tuple[Verdict, ...]:
    """Every approval of `change` from every source, each with its verdict."""
    want = expectation(root, change, digest, now_utc(now), rules)
    chosen = sources if sources is not None else tuple(SOURCES.values())
    return tuple(v for source in chosen for v in source.collect(root, rules.approvers, want))


def _match(required: tuple[str, ...], verdicts: tuple[Verdict, ...]) -> dict[str, str]:
    """Assign each role a distinct principal with a valid approval for it (max matching)."""
    offers = {
        role: [v.principal for v in verdicts if v.status == VALID and role in v.roles]
        for role in required
    }
    owner: dict[str, str] = {}  # principal -> role

    def place(role: str, seen: set[str]) -> bool:
        for who in offers[role]:
            if who is None or who in seen:
                continue
            seen.add(who)
            if who not in owner or place(owner[who], seen):
                owner[who] = role
                return True
        return False

    for role in required:
        place(role, set())
    return {role: who for who, role in owner.items()}


def _why_missing(role: str, verdicts: tuple[Verdict, ...], satisfied: dict[str, str]) -> str:
    mine = [v for v in verdicts if role in v.roles]
    if not mine:
        return f"{role}: no approval"
    counted = {who: r for r, who in satisfied.items()}
    valid = [v for v in mine if v.status == VALID and v.principal in counted]
    if valid:
        who = valid[0].principal or ""
        return (
            f"{role}: approved only by {who}, who already counts for {counted[who]} "
            "(each role needs a distinct person)"
        )
    return f"{role}: no valid approval (" + "; ".join(f"{v.ref}: {v.reason}" for v in mine) + ")"


def _decide(
    required: tuple[str, ...], verdicts: tuple[Verdict, ...]
) -> tuple[dict[str, str], tuple[str, ...], tuple[str, ...]]:
    satisfied = _match(required, verdicts)
    missing = tuple(r for r in required if r not in satisfied)
    reasons = [_why_missing(r, verdicts, satisfied) for r in missing]
    cited = {v.ref for v in verdicts for r in missing if r in v.roles}
    reasons += [
        f"{v.ref}: {v.status}: {v.reason}"
        for v in verdicts
        if v.status not in BENIGN and v.ref not in cited
    ]
    return satisfied, missing, tuple(reasons)


def check_gate(
    root: Path,
    change: ChangeRequest,
    digest: str,
    *,
    now: datetime | None = None,
    sources: tuple[ApprovalSource, ...] | None = None,
    trust_ref: str | None = None,
) -> GateResult:
    """Decide whether `change` at `digest` may run; a pure check, nothing is recorded.

    The approvers and policy are the rules in force (`rules_in_force`), never the working
    tree's unless a governance approval put them in force."""
    moment = now_utc(now)
    in_force = rules_in_force(root, change.path or None, moment, trust_ref)
    policy = in_force.rules.policy
    required = required_roles(policy, change)
    verdicts = collect(root, change, digest, in_force.rules, now=moment, sources=sources)
    satisfied, missing, decided = _decide(required, verdicts)
    reasons = (*in_force.reasons, *decided)
    owed = owed_reviews(root).get(change.id)
    return GateResult(
        change=change.id,
        environment=change.environment,
        digest=digest,
        trust_ref=in_force.trust.describe(),
        passed=not reasons,
        required=required,
        satisfied=satisfied,
        missing=missing,
        verdicts=verdicts,
        reasons=reasons,
        review_due_days=policy.emergency.review_due_days if change.type == "emergency" else None,
        review=review_status(owed, verdicts, moment) if owed else None,
        policy=policy,
    )


def refusal_message(result: GateResult) -> str:
    head = f"{result.change} ({result.environment}, digest {result.digest[:12]}): gate refused"
    return f"{head}: " + "; ".join(result.reasons)


def require_gate(
    root: Path,
    change: ChangeRequest,
    digest: str,
    *,
    now: datetime | None = None,
    sources: tuple[ApprovalSource, ...] | None = None,
    trust_ref: str | None = None,
) -> GateResult:
    """`check_gate`, recorded in the audit log; raise `GateRefusedError` when refused."""
    result = check_gate(root, change, digest, now=now, sources=sources, trust_ref=trust_ref)
    details = {
        "trust_ref": result.trust_ref,
        "required": list(result.required),
        "satisfied": result.satisfied,
        "missing": list(result.missing),
        "reasons": list(result.reasons),
        "approvals": {v.ref: v.status for v in result.verdicts},
    }
    if not result.passed:
        trail.record(
            root,
            "gate.refused",
            outcome="refused",
            change=change.id,
            digest=digest,
            details=details,
        )
        raise GateRefusedError(refusal_message(result))
    if result.review_due_days is not None:
        review = owe_review(root, change.id, now_utc(now), result.review_due_days)
        details["review_due"] = review.due
    trail.record(root, "gate.passed", change=change.id, digest=digest, details=details)
    return result
