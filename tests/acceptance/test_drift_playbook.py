"""`drift --playbook NAME` checks a playbook of the repository too; a name that is no playbook
there (or that tries to leave playbooks/) is one line, exit 1, before any host is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from gcmschange.cli import main


@pytest.mark.parametrize("name", ["nope", "../estate", "-x"])
def test_an_unknown_playbook_is_refused_before_any_host(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code = main(["--repo", str(estate_repo), "drift", "dev", "--playbook", name])
    err = capsys.readouterr().err
    assert code == 1
    assert f"--playbook {name}: no playbooks/{name}.yml" in err
    assert not (estate_repo / ".gcmschange" / "drift").exists()
