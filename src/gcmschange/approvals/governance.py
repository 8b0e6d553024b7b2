"""Governance changes: a change to the rules takes effect only once approved under the rules
before it.

Between the trust ref and the working tree the rules may have changed, once or several times
(a governance merge request, merged). Each version on the way must carry approvals, signed
under `approvals/GOVERNANCE/` for that version's digest, by `governance.approvals` distinct
holders of `governance.role` in the version before it (two change-board members by
default), none of them an author or committer of the commits that made the change. A version
already on the protected line is judged without the clock (signatures, roles, digest, people;
its approvals were current when it was merged, and expiry is not held against it later); the
working tree's is judged now. A version that did not take effect holds the rules where they
were, and a later version is judged against the rules in force, so a rules change that was
reverted leaves no trace. The first version not so approved stops the
walk: the gate refuses, naming the files that differ from the trusted copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gcmschange import gitrepo
from gcmschange.approvals.statements import VALID, Expectation, FileSource, Verdict
from gcmschange.rules import trusted
from gcmschange.rules.approvers import Approvers
from gcmschange.rules.trusted import Rules, RuleSet, TrustRef

GOVERNANCE = "GOVERNANCE"  # the change id governance statements name
ALL_ENVIRONMENTS = "*"


@dataclass(frozen=True)
class Version:
    """One version of the rules on the way from the trust ref to the working tree."""

    commit: str  # the first-parent commit that brought it, or trusted.TREE
    ruleset: RuleSet
    judged_at: datetime | None  # None: already on the protected line, judged without the clock


@dataclass(frozen=True)
class Outcome:
    rules: Rules  # the rules in force: the last version properly approved
    trust: TrustRef
    reasons: tuple[str, ...]  # why the tree's rules are not in force; empty when they are
    verdicts: tuple[Verdict, ...] = ()


def versions(root: Path, trust: TrustRef, now: datetime) -> list[Version]:
    """Every distinct rule set after the trust ref on HEAD's first-parent line, then the tree's."""
    found: list[Version] = []
    last = trusted.at_commit(root, trust.sha)
    for sha in gitrepo.first_parent_line(root, trust.sha, "HEAD"):
        current = trusted.at_commit(root, sha)
        if current.digest != last.digest:
            found.append(Version(sha, current, None))
            last = current
    tree = trusted.in_tree(root)
    if tree.digest != last.digest:
        found.append(Version(trusted.TREE, tree, now))
    return found


def requesters(root: Path, approvers: Approvers, since: str, until: str) -> dict[str, str]:
    """Authors and committers of the commits that changed the rules: they cannot approve."""
    head = "HEAD" if until == trusted.TREE else until
    found: dict[str, str] = {}
    for name in trusted.RULE_PATHS:
        add_people(found, approvers, gitrepo.people_of(root, f"{since}..{head}", name))
    return found


def add_people(
    found: dict[str, str], approvers: Approvers, people: Iterable[gitrepo.Person]
) -> None:
    """Add each commit author or committer the approvers file knows, with why they count."""
    for person in people:
        who = approvers.identify(person.email, person.name)
        if who and who not in found:
            found[who] = f"{who} {person.why}"


def _approved(
    root: Path, prev: Rules, version: Version, since: str
) -> tuple[bool, str, tuple[Verdict, ...]]:
    rule = prev.policy.governance
    want = Expectation(
        change=GOVERNANCE,
        environment=ALL_ENVIRONMENTS,
        digest=version.ruleset.digest,
        now=version.judged_at or datetime.now(UTC),
        timeless=version.judged_at is None,
        max_days=prev.policy.approval_expiry_days,
        requesters=requesters(root, prev.approvers, since, version.commit),
        skew=prev.policy.clock_skew,
    )
    verdicts = FileSource().collect(root, prev.approvers, want)
    counted = sorted(
        {
            v.principal
            for v in verdicts
            if v.principal is not None and v.status == VALID and rule.role in v.roles
        }
    )
    ok = len(counted) >= rule.approvals
    why = f"{len(counted)} of the {rule.approvals} distinct {rule.role} approvals it needs" + (
        f" ({', '.join(str(c) for c in counted)})" if counted else ""
    )
    return ok, why, verdicts


def in_force(root: Path, trust: TrustRef, systems: frozenset[str], now: datetime) -> Outcome:
    """The rules to judge with, and why the working tree's are not, if they are not."""
    rules = trusted.load(root, trusted.at_commit(root, trust.sha), systems)
    since = trust.sha
    refused: tuple[str, tuple[Verdict, ...]] | None = None
    for version in versions(root, trust, now):
        if version.ruleset.digest == rules.ruleset.digest:
            refused = None  # back to the rules in force: whatever was refused left no trace
            continue
        ok, why, verdicts = _approved(root, rules, version, since)
        if not ok:
            refused = (_refusal(version, rules, trust, why), verdicts)
            continue
        rules = trusted.load(root, version.ruleset, systems)
        since = since if version.commit == trusted.TREE else version.commit
        refused = None
    if refused is None:
        return Outcome(rules, trust, ())
    return Outcome(rules, trust, (refused[0],), refused[1])


def _refusal(version: Version, rules: Rules, trust: TrustRef, why: str) -> str:
    files = version.ruleset.differing(rules.ruleset)
    where = "the working tree" if version.commit == trusted.TREE else version.commit[:12]
    return (
        f"{', '.join(files)} in {where} differ{'s' if len(files) == 1 else ''} from the "
        f"rules in force ({trust.describe()}): a change to the rules takes effect only "
        f"when approved under the rules before it; it has {why} for rules digest "
        f"{version.ruleset.digest[:12]} (gcmschange approve --governance)"
    )
