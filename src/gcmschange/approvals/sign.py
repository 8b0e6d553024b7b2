"""`approve`: sign a statement for a change at its current digest, and commit it.

It refuses what the gate would refuse (unknown key, role not held, self-approval, an
expiry beyond policy), so people learn early; the gate still checks everything itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from gcmschange import gitrepo
from gcmschange.approvals import governance, sshsig
from gcmschange.approvals.gate import now_utc, requesters, rules_in_force
from gcmschange.approvals.statements import (
    REVIEW_ROLE,
    REVIEWER_ROLE,
    Statement,
    new_nonce,
    utc_text,
    write_signed,
)
from gcmschange.audit import trail
from gcmschange.errors import GateRefusedError, InvalidInputError, UsageError
from gcmschange.model import ChangeRequest
from gcmschange.rules import trusted
from gcmschange.rules.approvers import Approver, Approvers
from gcmschange.rules.policy import required_roles

DEFAULT_EXPIRY = timedelta(days=3)


@dataclass(frozen=True)
class Granted:
    statement: Statement
    file: str  # relative to the repository
    signature: str
    commit: str


def _refuse(root: Path, change: ChangeRequest, digest: str, why: str) -> GateRefusedError:
    trail.record(
        root,
        "approval.refused",
        outcome="refused",
        change=change.id,
        digest=digest,
        details={"reason": why},
    )
    return GateRefusedError(f"{change.id}: approval refused: {why}")


def _signer(approvers: Approvers, key: Path) -> Approver | None:
    return approvers.by_key(sshsig.public_key(key))


def _role(who: Approver, role: str | None, required: tuple[str, ...]) -> str:
    if role is not None:
        return role
    if not who.roles:
        raise InvalidInputError(
            f"{who.principal} holds no approver role in the approvers file: only a key with a "
            "role (# roles: NAME ROLE,...) can approve"
        )
    wanted = [r for r in who.roles if r in required] or list(who.roles)
    if len(wanted) != 1:
        held = ", ".join(who.roles)
        raise UsageError(f"{who.principal} holds roles {held}: choose one with --role")
    return wanted[0]


def _check(
    *,
    who: Approver,
    role: str,
    change: ChangeRequest,
    root: Path,
    approvers: Approvers,
    required: tuple[str, ...],
) -> str | None:
    """Why this approval must not be made, or None."""
    needed = REVIEWER_ROLE if role == REVIEW_ROLE else role
    mine = requesters(root, change, approvers)
    if who.principal in mine:
        return f"self-approval: {mine[who.principal]}"
    if needed not in who.roles:
        return f"{who.principal} does not hold role {needed!r} in the approvers file"
    if role == REVIEW_ROLE and change.type != "emergency":
        return f"a post-implementation review is only owed by emergency changes ({change.type})"
    if role != REVIEW_ROLE and role not in required:
        return (
            f"role {role!r} is not required for {change.id} (required: "
            + (", ".join(required) or "none")
            + ")"
        )
    return None


def approve(
    root: Path,
    change: ChangeRequest,
    digest: str,
    key: Path,
    *,
    role: str | None = None,
    expires: timedelta = DEFAULT_EXPIRY,
    comment: str = "",
    now: datetime | None = None,
    trust_ref: str | None = None,
) -> Granted:
    """Sign and commit an approval of `change` at `digest` with the private `key`, judged by
    the rules in force (never by the working tree's, unless governance put them in force)."""
    rules = rules_in_force(root, change.path or None, now_utc(now), trust_ref).rules
    approvers, policy = rules.approvers, rules.policy
    who = _signer(approvers, key)
    if who is None:
        raise _refuse(root, change, digest, f"the key {key} is not in the approvers file")
    required = required_roles(policy, change)
    chosen = _role(who, role, required)
    why = _check(
        who=who, role=chosen, change=change, root=root, approvers=approvers, required=required
    )
    if why is None and expires > timedelta(days=policy.approval_expiry_days):
        why = (
            f"an expiry of {expires.total_seconds() / 86400:g} days exceeds the policy "
            f"maximum of {policy.approval_expiry_days} days"
        )
    if why is not None:
        raise _refuse(root, change, digest, why)
    moment = now_utc(now)
    statement = Statement(
        change.id,
        digest,
        change.environment,
        who.principal,
        chosen,
        utc_text(moment),
        utc_text(moment + expires),
        new_nonce(),
        comment,
    )
    json_path, sig_path = write_signed(root, statement, key)
    sha = gitrepo.commit_paths(
        root,
        [json_path, sig_path],
        f"Approve {change.id} as {chosen} ({who.principal}) at digest {digest[:12]}",
    )
    file = str(json_path.relative_to(root))
    trail.record(
        root,
        "approval.granted",
        change=change.id,
        digest=digest,
        actor=who.principal,
        details={
            "role": chosen,
            "file": file,
            "nonce": statement.nonce,
            "expires": statement.expires,
            "commit": sha,
        },
    )
    return Granted(statement, file, str(sig_path.relative_to(root)), sha)


def _governance_refusal(
    root: Path,
    before: governance.Outcome,
    *,
    proposed: trusted.RuleSet,
    who: Approver | None,
    key: Path,
    expires: timedelta,
) -> str | None:
    """Why this governance approval must not be made, or None."""
    rules = before.rules
    role = rules.policy.governance.role
    if proposed.digest == rules.ruleset.digest:
        return "the working tree's rules are already the rules in force: nothing to approve"
    if who is None:
        return f"the key {key} is not in the approvers in force ({before.trust.describe()})"
    if role not in who.roles:
        return f"{who.principal} does not hold the governance role {role!r}"
    authors = governance.requesters(root, rules.approvers, before.trust.sha, trusted.TREE)
    if who.principal in authors:
        return f"self-approval: {authors[who.principal]}"
    if expires > timedelta(days=rules.policy.approval_expiry_days):
        return f"an expiry beyond the policy maximum of {rules.policy.approval_expiry_days} days"
    return None


def approve_governance(
    root: Path,
    key: Path,
    *,
    expires: timedelta = DEFAULT_EXPIRY,
    comment: str = "",
    now: datetime | None = None,
    trust_ref: str | None = None,
) -> Granted:
    """Approve the working tree's rules (approvers, policy.yml, catalogue/) as a governance
    change, signed under the rules in force before it."""
    moment = now_utc(now)
    before = rules_in_force(root, None, moment, trust_ref)
    proposed = trusted.in_tree(root)
    rules = before.rules
    role = rules.policy.governance.role
    who = _signer(rules.approvers, key)
    why = _governance_refusal(root, before, proposed=proposed, who=who, key=key, expires=expires)
    if why is not None or who is None:
        trail.record(root, "governance.refused", outcome="refused", details={"reason": why})
        raise GateRefusedError(f"governance approval refused: {why}")
    statement = Statement(
        governance.GOVERNANCE,
        proposed.digest,
        governance.ALL_ENVIRONMENTS,
        who.principal,
        role,
        utc_text(moment),
        utc_text(moment + expires),
        new_nonce(),
        comment,
    )
    json_path, sig_path = write_signed(root, statement, key)
    changed = ", ".join(proposed.differing(rules.ruleset))
    sha = gitrepo.commit_paths(
        root,
        [json_path, sig_path],
        f"Approve the rules change ({changed}) as {role} ({who.principal}), "
        f"rules digest {proposed.digest[:12]}",
    )
    trail.record(
        root,
        "governance.approved",
        digest=proposed.digest,
        actor=who.principal,
        details={"files": changed, "trust_ref": before.trust.describe(), "commit": sha},
    )
    return Granted(
        statement, str(json_path.relative_to(root)), str(sig_path.relative_to(root)), sha
    )
