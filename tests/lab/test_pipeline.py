"""The GitLab pipeline, run for real by gitlab-ci-local against the lab (issue 8).

gitlab-ci-local (npm `gitlab-ci-local@4.70.1`; newer releases need Node 22) runs each job
with the shell executor in its own copy of the repository's tracked files
(`--shell-isolation`: `.gitlab-ci-local/builds/<job>`, as a GitLab runner gives each job a
fresh clone), passes artifacts and dotenv variables between jobs, and needs `rsync` and a
git remote named origin. The test repository is a copy of the estate with a local bare
`origin`, which is also where approvals are pushed and where the apply locks live.

What reaches the jobs: `GCMS_BIN_DIR` puts the project's venv first on PATH; the lab's
inventory (written by `lab up` with absolute paths to the lab's key, ssh_config and
known_hosts under the repository's `.gcmschange/lab/`) is committed, as a GitOps repository
commits its inventories, so every job's copy reaches the same hosts; `.gcmschange/` itself is
untracked, so each job starts without state and gets it only through artifacts.

Install once (the test does it when missing): `npm install --prefix .cache/npm
gitlab-ci-local@4.70.1`; then e.g. `.cache/npm/node_modules/.bin/gitlab-ci-local --list`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from gcmschange.apply.converge import converge
from gcmschange.errors import UnreachableError
from tests.conftest import ESTATE, KEYS, PROJECT, copy_estate
from tests.lab.conftest import LabFactory, ssh

pytestmark = pytest.mark.slow

GCL_VERSION = "4.70.1"
NPM_PREFIX = PROJECT / ".cache" / "npm"
GCL_BIN = NPM_PREFIX / "node_modules" / ".bin" / "gitlab-ci-local"
VENV_BIN = Path(os.environ.get("VIRTUAL_ENV", PROJECT / ".venv")) / "bin"
PREDEFINED = (
    "CI_PIPELINE_SOURCE,CI_MERGE_REQUEST_IID,CI_MERGE_REQUEST_DIFF_BASE_SHA,"
    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME,CI_MERGE_REQUEST_TARGET_BRANCH_NAME"
)
RESULT = re.compile(r"^ (PASS|FAIL|WARN)  (\S+)", re.MULTILINE)


def _install_gitlab_ci_local() -> str | None:
    """The runner's path, installed project-locally when missing; None with why when it can't."""
    for tool in ("node", "npm", "rsync"):
        if shutil.which(tool) is None:
            return f"gitlab-ci-local needs {tool}, which is not installed"
    if not GCL_BIN.exists():
        done = subprocess.run(
            ["npm", "install", "--prefix", str(NPM_PREFIX), "--no-audit", "--no-fund",
             "--cache", str(NPM_PREFIX / "_cache"), f"gitlab-ci-local@{GCL_VERSION}"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if done.returncode != 0 or not GCL_BIN.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            return f"npm cannot install gitlab-ci-local@{GCL_VERSION}: {' '.join(tail)}"
    return None


@pytest.fixture(scope="session")
def gitlab_ci_local() -> Path:
    reason = _install_gitlab_ci_local()
    if reason:
        pytest.skip(reason)
    return GCL_BIN


@dataclass(frozen=True)
class Run:
    code: int
    output: str
    results: dict[str, str]  # job -> PASS / FAIL / WARN


def gcl(
    repo: Path,
    binary: Path,
    jobs: Sequence[str],
    variables: dict[str, str],
    manual: Sequence[str] = (),
) -> Run:
    """Run `jobs` with gitlab-ci-local in `repo`, as GitLab's runner would (one copy per job);
    `manual` are the manual jobs a person starts (another job needing one must say so)."""
    args = [str(binary), *jobs, "--force-shell-executor", "--shell-isolation"]
    for job in manual:
        args += ["--manual", job]
    args += ["--no-json-schema-validation", "--no-color", "--no-artifacts-to-source"]
    args += ["--ignore-predefined-vars", PREDEFINED, "--variable", f"GCMS_BIN_DIR={VENV_BIN}"]
    # The jobs plan and apply with the Mitogen accelerator (a CI/CD variable, as a project
    # would set it): 4x less controller CPU, which is what lets two whole pipelines fit in
    # the suite. The native path is what tests/lab/test_apply.py runs.
    args += ["--variable", "GCMS_ACCELERATE=true"]
    for name, value in variables.items():
        args += ["--variable", f"{name}={value}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GCL_")}
    done = subprocess.run(
        args, cwd=repo, env=env, capture_output=True, text=True, timeout=1200, check=False
    )
    output = done.stdout + done.stderr
    return Run(done.returncode, output, {j: r for r, j in RESULT.findall(output)})


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def pipeline_repo(root: Path, *withheld: str) -> Path:
    """Make `root` the GitOps repository: the pipeline files, the lab inventory and the
    estate committed on main without `withheld` changes (their merge requests add them),
    pushed to a bare `origin`."""
    (root / ".gitignore").write_text("/.gcmschange/\n/.gitlab-ci-local/\n", encoding="utf-8")
    git(root, "config", "user.name", "Rita Release")  # gitlab-ci-local's GITLAB_USER_*
    git(root, "config", "user.email", "rita@gcms.example")
    for change in withheld:
        git(root, "rm", "-q", f"changes/{change}.yaml")
    inventory = root / "inventories" / "lab" / "hosts.yml"
    git(root, "add", ".gitlab-ci.yml", "ci", ".gitignore", *([str(inventory)] * inventory.exists()))
    git(root, "commit", "-qm", "pipeline and the lab inventory")
    origin = root.parent / f"{root.name}-origin.git"
    git(root.parent, "init", "-q", "--bare", str(origin))
    git(root, "remote", "add", "origin", str(origin))
    git(root, "push", "-q", "origin", "main")
    git(root, "remote", "set-head", "origin", "main")
    return root


def merge_request(root: Path, change: str) -> dict[str, str]:
    """A branch adding `change`, pushed; the MR pipeline's predefined variables."""
    branch = f"change/{change}"
    git(root, "checkout", "-qb", branch)
    shutil.copy2(ESTATE / "changes" / f"{change}.yaml", root / "changes" / f"{change}.yaml")
    git(root, "add", f"changes/{change}.yaml")
    git(root, "commit", "-qm", f"{change}: request")
    git(root, "push", "-q", "origin", branch)
    return {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_IID": "1",
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": git(root, "merge-base", "origin/main", "HEAD"),
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": branch,
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
    }


def approver_key(tmp: Path, name: str) -> Path:
    """A copy of a LAB-ONLY demo key with the mode ssh-keygen insists on."""
    key = tmp / "keys" / name
    key.parent.mkdir(exist_ok=True)
    shutil.copy2(KEYS / name, key)
    key.chmod(0o600)
    return key


def new_head(root: Path, branch: str) -> None:
    """What the next pipeline checks out after a job pushed to the branch."""
    git(root, "pull", "-q", "--ff-only", "origin", branch)


def merge(root: Path, branch: str) -> None:
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", f"Merge {branch}", f"origin/{branch}")
    git(root, "push", "-q", "origin", "main")


def job_log(root: Path, job: str) -> str:
    log = root / ".gitlab-ci-local" / "output" / f"{job}.log"
    return log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""


def explain(root: Path, run: Run) -> str:
    tail = "\n".join(run.output.splitlines()[-60:])
    return f"exit {run.code}, results {run.results}\n{tail}"


# --- which jobs each kind of pipeline has (no lab: rules only) ---


def _listed(
    repo: Path, binary: Path, variables: dict[str, str], schema: bool = False
) -> dict[str, str]:
    args = [str(binary), "--list", "--ignore-predefined-vars", PREDEFINED, "--no-color"]
    args += [] if schema else ["--no-json-schema-validation"]
    for name, value in variables.items():
        args += ["--variable", f"{name}={value}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GCL_")}
    done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    header = next(i for i, r in enumerate(rows) if r[:1] == ["name"])
    return {r[0]: r[2] for r in rows[header + 1 :] if len(r) >= 3}


def test_list_shows_the_jobs_of_each_kind_of_pipeline(
    tmp_path: Path, gitlab_ci_local: Path
) -> None:
    root = pipeline_repo(copy_estate(tmp_path / "estate"), "CHG-LAB-0003")
    mr = merge_request(root, "CHG-LAB-0003")
    # name -> "when" (gitlab-ci-local's `--list` column), with json schema validation on
    assert _listed(root, gitlab_ci_local, mr, schema=True) == {
        "validate": "on_success",
        "plan": "on_success",
        "approval-gate": "on_success",
    }
    merge(root, "change/CHG-LAB-0003")
    assert _listed(root, gitlab_ci_local, {}) == {"validate": "on_success", "pages": "always"}
    assert _listed(root, gitlab_ci_local, {"CHANGE_ID": "CHG-LAB-0003"}) == {
        "validate": "on_success",
        "apply": "manual",
        "verify": "on_success",
        "pages": "always",
    }
    schedule = {"CI_PIPELINE_SOURCE": "schedule", "GCMS_DRIFT": "true"}
    assert _listed(root, gitlab_ci_local, schedule) == {"drift": "on_success"}
    assert _listed(root, gitlab_ci_local, {"CI_PIPELINE_SOURCE": "schedule"}) == {}


# --- the whole road, against the lab ---

LAB = ("portal", "case_api")


def lab_pipeline_repo(fresh_lab: LabFactory, change: str) -> Path:
    """A lab of 2 portal + 2 case API hosts at the standard configuration, and its repository."""
    root = fresh_lab(systems=LAB, hosts_per_system=2)
    try:
        converge(root, "lab", accelerate=True)
    except UnreachableError:  # a controller loaded by other work drops ssh sessions: once more
        converge(root, "lab", accelerate=True)
    return pipeline_repo(root, change)


def merge_request_pipeline(
    root: Path, binary: Path, change: str, approvers: Sequence[str]
) -> dict[str, Run]:
    """validate, plan and the gate on the merge request, then each approver approves on their
    own machine and pushes to the merge request's branch, and the gate runs on the new head."""
    mr = merge_request(root, change)
    runs = {"mr": gcl(root, binary, ["validate", "plan", "approval-gate"], mr)}
    branch = mr["CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"]
    for name in approvers:
        key = approver_key(root.parent, name)
        done = subprocess.run(
            [
                str(VENV_BIN / "gcmschange"),
                "--repo",
                str(root),
                "approve",
                change,
                "--key",
                str(key),
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **mr},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        git(root, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    runs["gate"] = gcl(root, binary, ["approval-gate"], mr)
    return runs


def assert_merge_request_passed(root: Path, runs: dict[str, Run], approvers: Sequence[str]) -> None:
    first = runs["mr"]
    assert first.results == {"validate": "PASS", "plan": "PASS", "approval-gate": "WARN"}, explain(
        root, first
    )
    assert runs["gate"].results == {"approval-gate": "PASS"}, explain(root, runs["gate"])
    approvals = git(root, "log", "--format=%s", "origin/main..HEAD", "--", "approvals")
    assert len(approvals.splitlines()) == len(approvers)


@pytest.mark.lab
def test_approved_change_goes_from_merge_request_to_verified_on_the_lab(
    fresh_lab: LabFactory, gitlab_ci_local: Path
) -> None:
    change, approvers = "CHG-LAB-0001", ("owner-portal", "owner-case-api")
    root = lab_pipeline_repo(fresh_lab, change)
    runs = merge_request_pipeline(root, gitlab_ci_local, change, approvers)
    assert_merge_request_passed(root, runs, approvers)
    plan = root / ".gitlab-ci-local" / "artifacts" / "plan" / "plans" / f"{change}.md"
    assert "worker_connections 1024" in plan.read_text(encoding="utf-8")

    merge(root, f"change/{change}")
    main = gcl(
        root, gitlab_ci_local, ["apply", "verify", "pages"], {"CHANGE_ID": change}, ["apply"]
    )
    assert main.results == {"apply": "PASS", "verify": "PASS", "pages": "PASS"}, explain(root, main)
    for host in ("portal-1", "portal-2", "case-api-1", "case-api-2"):
        conf = ssh(root, host, "grep -h worker_connections /etc/nginx/nginx.conf")
        assert "1024" in conf.stdout, (host, conf.stdout)
    banner = ssh(root, "portal-2", "cat /opt/gcms/portal/index.html").stdout
    assert "Scheduled maintenance tonight" in banner
    artifacts = root / ".gitlab-ci-local" / "artifacts"
    assert (artifacts / "verify" / f"evidence-{change}.tar.gz").is_file()
    assert (artifacts / "pages" / "public" / "index.html").is_file()


@pytest.mark.lab
def test_failing_change_is_rolled_back_and_its_apply_job_fails(
    fresh_lab: LabFactory, gitlab_ci_local: Path
) -> None:
    change, approvers = "CHG-LAB-0003", ("owner-case-api",)
    root = lab_pipeline_repo(fresh_lab, change)
    runs = merge_request_pipeline(root, gitlab_ci_local, change, approvers)
    assert_merge_request_passed(root, runs, approvers)

    merge(root, f"change/{change}")
    # (gitlab-ci-local stops at the failed job; GitLab would still run `pages`: when: always)
    main = gcl(root, gitlab_ci_local, ["apply", "verify"], {"CHANGE_ID": change}, ["apply"])
    assert main.results.get("apply") == "FAIL", explain(root, main)
    assert "verify" not in main.results or main.results["verify"] != "PASS"
    log = job_log(root, "apply")
    assert f"{change}: rolled_back" in log, log[-3000:]
    assert "restored, verified" in log, log[-3000:]
    for host in ("case-api-1", "case-api-2"):
        conf = ssh(root, host, "cat /etc/nginx/conf.d/gcms-case_api.conf").stdout
        assert "/api/v2/status" not in conf, (host, conf)
    assert (
        root / ".gitlab-ci-local" / "artifacts" / "apply" / f"evidence-{change}.tar.gz"
    ).is_file()
