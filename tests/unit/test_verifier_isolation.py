"""Verification's pytest never imports code from the working directory it was called from:
drift verifies from the repository's working tree, where a `pytest.py` would shadow pytest."""

from __future__ import annotations

from pathlib import Path

from gcmschange.execution import verifier


def test_a_pytest_py_in_the_repository_is_not_imported(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "verify").mkdir(parents=True)
    marker = tmp_path / "pwned"
    (root / "pytest.py").write_text(f"open({str(marker)!r}, 'w').close()\n", encoding="utf-8")
    (root / "verify" / "test_plain.py").write_text(
        "def test_nothing_remote(host):\n    assert host is not None\n", encoding="utf-8"
    )
    result = verifier.run(root, {"verify/test_plain.py": ["h1"]}, None, tmp_path / "out")
    assert not marker.exists()
    assert result.ok, result
