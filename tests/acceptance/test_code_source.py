"""A merge request's own code does not run before approval: which code a plan would run, and
the refusal, through the real CLI and real branches (no host is needed to be refused)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gcmschange.cli import main
from gcmschange.errors import GateRefusedError
from gcmschange.plan import code_source
from gcmschange.validate.load import load_change

MR = {
    "CI_PIPELINE_SOURCE": "merge_request_event",
    "CI_MERGE_REQUEST_IID": "7",
    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
}
LAB_INVENTORY = "all:\n  children:\n    partner_gateway:\n      hosts:\n        gateway-l01: {}\n"
CONTROLLER_TASK = """
- name: Looks harmless
  hosts: all
  tasks:
    - name: Runs on the controller, even in check mode
      delegate_to: localhost
      check_mode: false
      ansible.builtin.command: touch {marker}
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(estate_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (estate_repo / "inventories" / "lab" / "hosts.yml").write_text(LAB_INVENTORY)
    git(estate_repo, "add", "-A")
    git(estate_repo, "commit", "-qm", "lab inventory")
    base = git(estate_repo, "rev-parse", "HEAD")
    git(estate_repo, "checkout", "-q", "-b", "feature")
    for name, value in {**MR, "CI_MERGE_REQUEST_DIFF_BASE_SHA": base}.items():
        monkeypatch.setenv(name, value)
    return estate_repo


def _new_change(root: Path, environment: str = "lab") -> str:
    text = (root / "changes" / "CHG-LAB-0002.yaml").read_text()
    text = text.replace("CHG-LAB-0002", "CHG-LAB-0700").replace(
        "environment: lab", f"environment: {environment}"
    )
    if environment != "lab":  # other environments allow shorter windows than the lab's
        text = text.replace('end: "2030-12-31T23:00:00"', 'end: "2026-01-05T23:00:00"')
    (root / "changes" / "CHG-LAB-0700.yaml").write_text(text)
    return "CHG-LAB-0700"


def test_a_data_only_merge_request_is_planned_with_the_target_branch_code(repo: Path) -> None:
    change = _new_change(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a change request, nothing else")
    source = code_source.choose(repo, load_change(repo, change))
    assert source.commit == git(repo, "rev-parse", "main")
    assert "with this change request" in source.why


def test_a_code_change_is_planned_with_its_own_code_only_where_policy_and_runner_allow(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    change = _new_change(repo)
    (repo / "playbooks" / "configure.yml").write_text(CONTROLLER_TASK.format(marker=marker))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tidy the playbook")
    # The reference policy allows the lab (untrusted_plans: [lab]), but a runner that has not
    # declared itself a lab-only runner may hold other keys: refused before anything runs.
    monkeypatch.delenv(code_source.RUNNER_ENV, raising=False)
    assert main(["--repo", str(repo), "plan", change]) == 1
    err = capsys.readouterr().err
    assert "this runner does not declare that it may plan untrusted code for lab" in err
    assert "GCMS_UNTRUSTED_RUNNER=unset" in err and "\n" not in err.strip()
    assert not marker.exists()
    # Policy and runner both say lab: the branch's own code.
    monkeypatch.setenv(code_source.RUNNER_ENV, "lab")
    assert code_source.choose(repo, load_change(repo, change)).commit is None
    # The trusted policy says no environment may: refused before anything runs.
    git(repo, "checkout", "-q", "main")
    policy = repo / "policy.yml"
    policy.write_text(policy.read_text().replace("untrusted_plans: [lab]", "untrusted_plans: []"))
    git(repo, "commit", "-qam", "policy: no untrusted plans")
    git(repo, "checkout", "-q", "feature")
    git(repo, "rebase", "-q", "main")
    import os

    os.environ["CI_MERGE_REQUEST_DIFF_BASE_SHA"] = git(repo, "rev-parse", "main")
    code = main(["--repo", str(repo), "plan", change])
    err = capsys.readouterr().err
    assert code == 1
    assert "not planned: this merge request changes code (playbooks/configure.yml)" in err
    assert "policy.yml untrusted_plans" in err
    assert not marker.exists()


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("playbooks/filter_plugins/evil.py", "import os\nos.system('touch {marker}')\n"),
        (
            "inventories/lab/group_vars/all/x.yml",
            "ansible_host: \"{{{{ lookup('pipe', 'touch {marker}') }}}}\"\n",
        ),
        (
            "inventories/lab/group_vars/partner_gateway.yml",
            "ansible_ssh_common_args: -o ProxyCommand='touch {marker}'\n",
        ),
    ],
    ids=["filter plugin", "lookup in inventory", "ProxyCommand"],
)
def test_branch_code_outside_changes_is_refused_in_other_environments(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str, text: str
) -> None:
    marker = tmp_path / "pwned"
    change = _new_change(repo, environment="dev")
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text.format(marker=marker))
    (repo / "inventories" / "dev" / "hosts.yml").write_text(
        LAB_INVENTORY.replace("gateway-l01", "gateway-d01")
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "innocent")
    code = main(["--repo", str(repo), "plan", change])
    err = capsys.readouterr().err
    assert code == 1 and "not planned: this merge request changes code" in err, err
    assert not marker.exists()


def test_a_file_the_job_made_is_not_code_but_a_new_file_where_runs_read_is(repo: Path) -> None:
    # In a pipeline the plan job's folder also holds the validate job's reports (artifacts):
    # not the merge request's code. A new playbook left uncommitted would be.
    change = _new_change(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a change request, nothing else")
    (repo / "gl-code-quality-report.json").write_text("[]\n")
    (repo / "plans").mkdir()
    (repo / "plans" / f"{change}.md").write_text("plan\n")
    assert code_source.choose(repo, load_change(repo, change)).commit is not None
    (repo / "playbooks" / "extra.yml").write_text("[]\n")
    with pytest.raises(GateRefusedError, match=r"changes code \(playbooks/extra.yml\)"):
        code_source.choose(repo, load_change(repo, change))
