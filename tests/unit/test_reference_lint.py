"""The reference estate is ansible-lint clean at its strictest profile, offline (issue 14).

It is what every workspace, demo and lab starts from, so what it teaches must pass the linter
Ansible engineers run. Run as a program (ansible-lint imports ansible-core, which gcmschange
never imports), from a fresh workspace so its `.ansible-lint` is the one shipped.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gcmschange import proc

LINT = [sys.executable, "-m", "ansiblelint", "--offline", "--nocolor", "--format", "pep8"]


def test_the_reference_estate_passes_ansible_lint_production(estate_repo: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1", "ANSIBLE_LINT_SKIP_SCHEMA_UPDATE": "1"}
    done = proc.run([*LINT, "--project-dir", "."], check=False, cwd=estate_repo, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Profile 'production' was required, and it passed" in done.stderr


def test_the_linter_reads_a_playbook_spec_as_a_spec_and_checks_it(estate_repo: Path) -> None:
    spec = estate_repo / "playbooks" / "configure.meta.yml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("type: int", "type: integer", 1))
    env = {**os.environ, "NO_COLOR": "1"}
    done = proc.run([*LINT, "--project-dir", "."], check=False, cwd=estate_repo, env=env)
    assert done.returncode != 0
    assert "playbooks/configure.meta.yml" in done.stdout
    assert "schema[play-argspec]" in done.stdout
