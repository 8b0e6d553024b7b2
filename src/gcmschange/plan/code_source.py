"""Which code a plan runs: never a merge request's own before approval, except where policy
allows it.

A plan runs the change's playbook in check mode with the estate's credentials, and check mode
is not read-only: a task with `delegate_to: localhost` and `check_mode: false`, a filter
plugin beside the playbook, a `lookup('pipe', …)` in an inventory variable or an
`ansible_ssh_common_args: -o ProxyCommand=…` all run on the controller. So in a merge-request
pipeline:

- a merge request that changes only data (`changes/`, `approvals/`) is planned with the code
  of the trust ref (the target branch at the merge base: playbooks, roles, plugins, inventory,
  verification) and the merge request's change request;
- a merge request that changes anything else is planned with its own code only in an
  environment that `policy.yml` lists under `untrusted_plans` (none by default), read from the
  trust ref, **and** that the runner itself declares it may plan untrusted code for
  (`GCMS_UNTRUSTED_RUNNER=lab`, set by the runner's administrator in its own configuration:
  a runner that holds that environment's keys and nothing else). Elsewhere it is refused, in
  one line that says why and what to do. Policy alone is not enough: a plan runner that also
  holds another estate's key would hand it to the branch's code.

Outside merge-request pipelines (a release manager's own checkout, the default branch) the
working tree is the code, as the person running it chose.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gcmschange import gitrepo
from gcmschange.ci import env as cienv
from gcmschange.errors import GateRefusedError
from gcmschange.model import ChangeRequest
from gcmschange.plan import seal
from gcmschange.rules import trusted
from gcmschange.rules.estate import load_estate

DATA_ONLY = ("changes/", "approvals/")


@dataclass(frozen=True)
class CodeSource:
    commit: str | None  # the commit whose code runs; None: the working tree
    why: str


def choose(root: Path, change: ChangeRequest, trust_ref: str | None = None) -> CodeSource:
    if not cienv.from_environ().is_merge_request and trust_ref is None:
        return CodeSource(None, "the working tree (not a merge-request pipeline)")
    trust = trusted.resolve(root, change.path or None, trust_ref)
    tracked, new = gitrepo.changed_paths(root, trust.sha)
    # A file the job made (a report of the validate job, downloaded as an artifact) is not the
    # merge request's code, unless it lies where a run reads code from.
    code = [p for p in [*tracked, *filter(_read_by_runs(root), new)] if not p.startswith(DATA_ONLY)]
    if not code:
        return CodeSource(trust.sha, f"the code of {trust.describe()}, with this change request")
    systems = frozenset(load_estate(root).systems)
    allowed = trusted.load(root, trusted.at_commit(root, trust.sha), systems).policy.untrusted_plans
    runner = runner_allows()
    env = change.environment
    if env in allowed and env in runner:
        return CodeSource(
            None,
            f"this branch's own code: {env} is in policy untrusted_plans and this runner "
            f"declares it ({RUNNER_ENV})",
        )
    shown = ", ".join(code[:4]) + (f" and {len(code) - 4} more" if len(code) > 4 else "")
    if env in allowed:
        why = (
            f"this runner does not declare that it may plan untrusted code for {env} "
            f"({RUNNER_ENV}={','.join(runner) or 'unset'}; its administrator sets it on a "
            f"runner that holds {env}'s keys and nothing else)"
        )
    else:
        why = (
            f"code from a merge request runs before approval only in "
            f"{', '.join(allowed) or 'no environment'} (policy.yml untrusted_plans)"
        )
    raise GateRefusedError(
        f"{change.id}: not planned: this merge request changes code ({shown}), and {why}; "
        f"merge the code change first under its own approval, then plan {change.id} against it"
    )


RUNNER_ENV = "GCMS_UNTRUSTED_RUNNER"


def _read_by_runs(root: Path) -> Callable[[str], bool]:
    """Whether a new path lies where a sealed run reads from (plan.seal's, any inventory)."""
    tops = (*seal.read_by_runs(root), "inventories")
    return lambda path: any(path == top or path.startswith(f"{top}/") for top in tops)


def runner_allows() -> frozenset[str]:
    """The environments this runner says it may plan a merge request's own code for."""
    listed = os.environ.get(RUNNER_ENV, "")
    return frozenset(e.strip() for e in listed.split(",") if e.strip())
