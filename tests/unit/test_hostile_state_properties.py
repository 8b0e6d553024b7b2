"""Property tests for damaged state: whatever a journal or an evidence bundle holds, the CLI
answers 0 or 1 at once, never 3, never a hang.

The journal is what `resume` trusts, and an evidence bundle is what an auditor is handed:
both may be truncated, edited or forged. Generated inputs mix well-formed entries (right
keys, wrong types, unknown steps) with bytes that are not JSON or not a tar archive at all.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcmschange.apply import journal
from gcmschange.cli import main

SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CHANGE = "CHG-LAB-0002"
STEPS = ["run", "lock", "wave-1-push", "wave-2-verify", "rollback-push", "decision", "end"]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=20),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
FIELDS = {"seq": VALUES, "time": VALUES, "run": VALUES, "status": VALUES, "data": VALUES}


@st.composite
def journal_lines(draw: st.DrawFn) -> str:
    """A well-formed entry, one with a wrong field, or a line that is not JSON."""
    entry = {
        "seq": draw(st.integers(min_value=1, max_value=9)),
        "time": "2026-12-01T10:00:00.000+00:00",
        "run": "r1",
        "step": draw(st.sampled_from(STEPS) | st.text(max_size=12)),
        "status": draw(st.sampled_from(["begin", "done", "failed"]) | st.text(max_size=6)),
        "data": draw(st.dictionaries(st.sampled_from(["hosts", "failed", "refs"]), VALUES)),
    }
    kind = draw(st.sampled_from(["good", "field", "garbage"]))
    if kind == "field":
        name = draw(st.sampled_from(sorted(FIELDS)))
        entry[name] = draw(FIELDS[name])
    if kind == "garbage":
        return draw(st.text(max_size=40).filter(lambda t: "\n" not in t))
    return json.dumps(entry)


@given(lines=st.lists(journal_lines(), max_size=12), torn=st.booleans())
@SETTINGS
def test_status_of_any_journal_is_an_answer_or_a_refusal(
    lines: list[str], torn: bool, estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = journal.path_of(estate_repo, CHANGE)
    path.write_text("\n".join(lines) + ("" if torn else "\n"), encoding="utf-8")
    code = main(["--repo", str(estate_repo), "status", CHANGE, "--remote", "nowhere"])
    err = capsys.readouterr().err
    assert code in (0, 1), err
    assert "Traceback" not in err and "internal error" not in err


@st.composite
def bundles(draw: st.DrawFn) -> bytes:
    """A gzip'd tar of generated members (a manifest among them, sometimes), or raw bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        names = draw(
            st.lists(
                st.sampled_from(["CHG-X/MANIFEST.sha256", "CHG-X/summary.json", "CHG-X/a", "../x"])
                | st.text(min_size=1, max_size=12),
                max_size=5,
            )
        )
        for name in names:
            data = draw(st.binary(max_size=64))
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@given(data=bundles(), offline=st.booleans())
@SETTINGS
def test_evidence_verify_of_any_bundle_is_an_answer_or_a_refusal(
    data: bytes,
    offline: bool,
    estate_repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = tmp_path / "bundle.tar.gz"
    bundle.write_bytes(data)
    args = ["evidence", "verify", str(bundle), *(["--offline"] if offline else [])]
    code = main(["--repo", str(estate_repo), *args])
    err = capsys.readouterr().err
    assert code in (0, 1), err
    assert "Traceback" not in err and "internal error" not in err
