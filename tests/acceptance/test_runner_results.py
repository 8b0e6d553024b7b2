"""What a real ansible-playbook run says, read right (connection local: no lab needed).

A playbook that cannot load (a module nobody installed, a syntax error) makes
ansible-playbook exit 1 with no host result at all: that is a failure on every host it was
given, with Ansible's own reason, never "unchanged" (before, plan said 0 failed and apply
said applied while nothing ran). A changed task is shown as changed, and a failed command
says which command and what it returned.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gcmschange.execution import runner

BROKEN = {
    "unknown module": (
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Uses a module nobody installed\n      acme.tools.does_not_exist: {}\n",
        "couldn't resolve module/action 'acme.tools.does_not_exist'",
    ),
    "syntax error": (
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: x\n      debug: [\n",
        "",
    ),
    "missing role": (
        "- hosts: all\n  gather_facts: false\n  roles: [not_there]\n",
        "not_there",
    ),
}


def _spec(tmp_path: Path, playbook: str, name: str = "work") -> runner.RunSpec:
    (tmp_path / "play.yml").write_text(playbook, encoding="utf-8")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"here ansible_connection=local ansible_python_interpreter={sys.executable}\n",
        encoding="utf-8",
    )
    return runner.RunSpec(
        tmp_path / "play.yml", inventory, tmp_path / "runs" / name, limit=("here",)
    )


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_playbook_that_cannot_load_fails_every_host_it_was_given(
    tmp_path: Path, case: str
) -> None:
    text, reason = BROKEN[case]
    result = runner.run_playbook(_spec(tmp_path, text))
    assert result.status != "successful"
    assert set(result.failures) == {"here"}, result
    said = result.failures["here"]
    assert said.startswith("playbook play.yml: ") and "\n" not in said
    assert reason in said, said


def test_progress_says_changed_for_a_changed_task_and_a_command_says_what_it_ran(
    tmp_path: Path,
) -> None:
    seen: list[tuple[str, str, str]] = []
    marker = tmp_path / "made"
    text = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        f"    - name: Makes a file\n      ansible.builtin.file: {{path: {marker}, state: touch}}\n"
        "    - name: Deliberate failure\n      ansible.builtin.command: /bin/false\n"
    )
    result = runner.run_playbook(
        _spec(tmp_path, text), progress=lambda h, t, k: seen.append((h, t, k))
    )
    assert ("here", "Makes a file", "changed") in seen
    assert result.failures["here"].startswith("Deliberate failure: non-zero return code")
    assert "rc=1 cmd: /bin/false" in result.failures["here"]
    assert "traceback" not in result.failures["here"]


def test_a_no_log_task_that_would_change_is_in_the_plan_with_its_output_hidden(
    tmp_path: Path,
) -> None:
    # Ansible censors a no_log result down to one key, "changed" included: the task was
    # missing from plans while apply then wrote it.
    text = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Secret file is in place\n"
        f"      ansible.builtin.copy: {{content: s3cr3t, dest: {tmp_path / 'secret'}}}\n"
        "      no_log: true\n"
    )
    spec = _spec(tmp_path, text)
    result = runner.run_playbook(
        runner.RunSpec(
            spec.playbook, spec.inventory, spec.work_dir, limit=spec.limit, check=True, diff=True
        )
    )
    assert [(c.task, c.diff) for c in result.changes] == [
        ("Secret file is in place", runner.NO_LOG_DIFF)
    ]
    assert not (tmp_path / "secret").exists()
