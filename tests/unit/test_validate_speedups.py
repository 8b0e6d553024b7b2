"""What makes validation fast must not change what it finds.

The loader's lean pass and its exact pass must agree on every document; the result cache's
stat signatures must never vouch for a file whose content changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gcmschange import yamlsafe
from gcmschange.errors import ValidationError
from gcmschange.validate import cache as validate_cache
from gcmschange.validate import run

EXAMPLES = Path(__file__).parents[1] / "acceptance" / "examples"
PIECES = st.sampled_from(
    [
        *("a: ", "b: ", "- ", "\n", "  ", "x", "1", "0x1f", "no", "~", "'q'", "[", "]", "{", "}"),
        *(", ", "!unsafe ", "&a ", "*a", "? ", "---\n", "a: 1\n", "- [1, {c: d}]\n", "null"),
    ]
)


def _both(raw: bytes) -> tuple[object, object]:
    """(lean, exact): data and positions, or the refusal, from each pass."""
    try:
        doc = yamlsafe.load_bytes(raw, "f.yaml")
    except ValidationError as err:
        refused = [str(p) for p in err.problems]
        return refused, refused  # only the exact pass names refusals
    exact = yamlsafe._exact_pass(doc.source, "f.yaml")
    return (repr(doc.data), _top(doc.top)), (
        repr(exact.root),
        _top((exact.positions, exact.key_positions)),
    )


def _top(tables: tuple[yamlsafe.Positions, ...]) -> tuple[yamlsafe.Positions, ...]:
    return tuple({k: v for k, v in table.items() if len(k) <= 1} for table in tables)


@given(st.lists(PIECES, max_size=30).map("".join))
@settings(max_examples=300)
def test_lean_and_exact_passes_agree(text: str) -> None:
    lean, exact = _both(text.encode())
    assert lean == exact


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*/*.yaml")), ids=lambda p: p.name)
def test_every_example_loads_the_same_through_both_passes(path: Path) -> None:
    lean, exact = _both(path.read_bytes())
    assert lean == exact


def test_deep_positions_are_found_when_a_message_needs_them() -> None:
    doc = yamlsafe.load_bytes(b"a:\n  b:\n    - x\n    - {c: y}\n", "f.yaml")
    assert doc.top == ({(): (1, 1), ("a",): (2, 3)}, {("a",): (1, 1)})
    assert str(doc.locate(("a", "b", 1, "c"))) == "f.yaml:4:11: $.a.b[1].c"


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = yamlsafe.read_limited

    def counting(
        path: os.PathLike[str], display: str | None = None, *, limit: int = yamlsafe.MAX_BYTES
    ) -> bytes:
        if str(display).startswith("changes/"):  # not estate.yml and the like
            seen.append(str(display))
        return real(path, display, limit=limit)

    monkeypatch.setattr(yamlsafe, "read_limited", counting)
    return seen


def test_unchanged_files_are_not_read_and_a_rewrite_is_noticed(
    estate_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every file counts as changed long ago, so its signature is kept (the clock is the fake).
    monkeypatch.setattr(validate_cache, "RACY_NS", -(10**15))
    assert run.validate(estate_repo).fresh == 3
    reads = _reads(monkeypatch)
    assert run.validate(estate_repo).fresh == 0
    assert reads == []
    # Same size, mtime put back: only the inode change time tells, and it does.
    path = estate_repo / "changes" / "CHG-LAB-0003.yaml"
    before = path.stat()
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("verify/test_case_api.py", "verify/test_case_apx.py"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    report = run.validate(estate_repo)
    assert (report.fresh, reads) == (1, ["changes/CHG-LAB-0003.yaml"])
    (result,) = [r for r in report.results if r.file.endswith("0003.yaml")]
    assert "no verification test file verify/test_case_apx.py" in str(result.problems)


def test_recently_changed_files_are_read_again(
    estate_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run.validate(estate_repo)
    reads = _reads(monkeypatch)
    report = run.validate(estate_repo)  # the files were written a moment ago
    assert (report.fresh, len(reads)) == (0, 3)  # read and hashed; verdicts from the cache


def test_a_damaged_cache_is_only_a_miss(estate_repo: Path) -> None:
    first = run.validate(estate_repo)
    (cache,) = (estate_repo / ".gcmschange" / "cache").glob("validate-*.json")
    data = json.loads(cache.read_text(encoding="utf-8"))
    data["rows"] = [row[:-20] + "garbage" for row in data["rows"]]
    cache.write_text(json.dumps(data), encoding="utf-8")
    again = run.validate(estate_repo)
    assert again.fresh == 3
    assert [r.problems for r in again.results] == [r.problems for r in first.results]
    cache.write_text("{not json", encoding="utf-8")
    assert run.validate(estate_repo).fresh == 3
