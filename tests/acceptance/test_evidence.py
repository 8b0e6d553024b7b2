"""`gcmschange evidence`: a bundle that verifies, masks secrets, and fails after any change."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from gcmschange.audit import trail
from gcmschange.audit.evidence import FIELD_LIMIT
from gcmschange.cli import main
from gcmschange.masking import MASK
from tests.conftest import vault_yaml

CHANGE = "CHG-LAB-0090"
SECRET = "Tok-3n_very-secret"
TOP = f"evidence-{CHANGE}"


@pytest.fixture
def evidence_repo(estate_repo: Path) -> Path:
    source = (estate_repo / "changes" / "CHG-LAB-0002.yaml").read_text(encoding="utf-8")
    changed = source.replace("id: CHG-LAB-0002", f"id: {CHANGE}").replace(
        'tls_protocols: "TLSv1.3"\n',
        'tls_protocols: "TLSv1.3"\n' + vault_yaml("canary_token", SECRET),
    )
    (estate_repo / "changes" / f"{CHANGE}.yaml").write_text(changed, encoding="utf-8")
    state = estate_repo / ".gcmschange" / "changes" / CHANGE
    events = state / "runs" / "apply-1" / "job_events"
    events.mkdir(parents=True)
    (state / "plan.json").write_text(json.dumps({"diff": f"+token={SECRET}"}), encoding="utf-8")
    big = f"line with {SECRET}\n" + "x" * (3 * FIELD_LIMIT)
    (events / "1-task.json").write_text(json.dumps({"event": "runner_on_ok", "stdout": big}))
    (state / "junit.xml").write_text("<testsuite tests='1' failures='0'/>\n", encoding="utf-8")
    (state / "journal.jsonl").write_text('{"step": "wave", "n": 1}\n', encoding="utf-8")
    (state / "leak").symlink_to("/etc/hostname")
    approvals = estate_repo / "approvals" / CHANGE
    approvals.mkdir(parents=True)
    (approvals / "owner.json").write_text('{"role": "owner"}\n', encoding="utf-8")
    (approvals / "owner.json.sig").write_text("-----BEGIN SSH SIGNATURE-----\n", encoding="utf-8")
    trail.record(estate_repo, "planned", change=CHANGE, digest="d" * 64)
    trail.record(estate_repo, "wave.started", change=CHANGE, details={"wave": 1})
    trail.record(estate_repo, "validated", change="CHG-LAB-0001")
    trail.record(estate_repo, "wave.finished", change=CHANGE, details={"wave": 1})
    return estate_repo


def _build(root: Path, out: Path) -> int:
    return main(["--repo", str(root), "evidence", CHANGE, "-o", str(out)])


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:gz") as tar:
        return {
            m.name: handle.read()
            for m in tar.getmembers()
            if (handle := tar.extractfile(m)) is not None
        }


def _repack(
    bundle: Path, members: dict[str, bytes], extra: tuple[tarfile.TarInfo, ...] = ()
) -> None:
    with tarfile.open(bundle, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)


def _verify(
    bundle: Path, capsys: pytest.CaptureFixture[str], repo: Path | None = None
) -> tuple[int, str]:
    """Verify `bundle` against `repo`'s audit log, or (no repo) its internal consistency only."""
    where = ["--repo", str(repo)] if repo else []
    code = main([*where, "evidence", "verify", str(bundle), *([] if repo else ["--offline"])])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_bundle_holds_everything_and_verifies(
    evidence_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "e.tar.gz"
    assert _build(evidence_repo, bundle) == 0
    capsys.readouterr()
    members = _members(bundle)
    assert set(members) == {
        f"{TOP}/{n}"
        for n in (
            "MANIFEST.sha256",
            "summary.json",
            "timings.json",
            "audit/slice.jsonl",
            "audit/chain.json",
            f"request/{CHANGE}.yaml",
            "state/plan.json",
            "state/junit.xml",
            "state/journal.jsonl",
            "state/runs/apply-1/job_events/1-task.json",
            "approvals/owner.json",
            "approvals/owner.json.sig",
        )
    }
    slice_events = [
        json.loads(x)["event"] for x in members[f"{TOP}/audit/slice.jsonl"].splitlines()
    ]
    assert slice_events == ["planned", "wave.started", "wave.finished"]
    summary = json.loads(members[f"{TOP}/summary.json"])
    assert summary["skipped"] == ["state/leak (symbolic link)"]
    assert summary["variables"]["canary_token"] == MASK
    code, out = _verify(bundle, capsys, evidence_repo)
    assert code == 0, out
    assert "intact, 11 members checked" in out
    recorded = trail.select(trail.read_events(evidence_repo), event="evidence.built")
    assert (
        recorded[0].details["manifest_sha256"]
        == hashlib.sha256(members[f"{TOP}/MANIFEST.sha256"]).hexdigest()
    )


def test_secrets_are_masked_and_large_outputs_truncated_with_their_hash(
    evidence_repo: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "e.tar.gz"
    assert _build(evidence_repo, bundle) == 0
    members = _members(bundle)
    assert all(SECRET.encode() not in data for data in members.values())
    assert MASK.encode() in members[f"{TOP}/state/plan.json"]
    assert b"!vault |" in members[f"{TOP}/request/{CHANGE}.yaml"]  # its ciphertext only
    event = json.loads(members[f"{TOP}/state/runs/apply-1/job_events/1-task.json"])
    full = f"line with {MASK}\n" + "x" * (3 * FIELD_LIMIT)
    assert event["stdout"].startswith(full[:FIELD_LIMIT])
    assert event["stdout"].endswith(
        f"[truncated: {len(full)} in full, sha256 {hashlib.sha256(full.encode()).hexdigest()}]"
    )


def test_same_state_gives_the_same_bytes(evidence_repo: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "1.tar.gz", tmp_path / "2.tar.gz"
    assert _build(evidence_repo, first) == 0
    assert _build(evidence_repo, second) == 0
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first, "r:gz") as tar:
        names = tar.getnames()
        assert names == sorted(names)
        assert {(m.mtime, m.uid, m.uname) for m in tar.getmembers()} == {(946684800, 0, "root")}


def test_altered_member_is_named(
    evidence_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "e.tar.gz"
    assert _build(evidence_repo, bundle) == 0
    members = _members(bundle)
    members[f"{TOP}/state/junit.xml"] = members[f"{TOP}/state/junit.xml"].replace(b"0'", b"1'")
    _repack(bundle, members)
    code, out = _verify(bundle, capsys)
    assert code == 1
    assert f"member {TOP}/state/junit.xml: SHA-256 does not match the manifest (altered)" in out


def test_added_and_removed_members_are_named(
    evidence_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "e.tar.gz"
    assert _build(evidence_repo, bundle) == 0
    members = _members(bundle)
    del members[f"{TOP}/approvals/owner.json.sig"]
    members[f"{TOP}/approvals/forged.json"] = b"{}"
    _repack(bundle, members)
    code, out = _verify(bundle, capsys)
    assert code == 1
    assert f"member {TOP}/approvals/forged.json: not in the manifest" in out
    assert f"member {TOP}/approvals/owner.json.sig: in the manifest but missing" in out


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        (f"{TOP}/../../etc/cron.d/x", tarfile.REGTYPE, "unsafe member path"),
        ("/etc/passwd", tarfile.REGTYPE, "unsafe member path"),
        (f"{TOP}/state/link", tarfile.SYMTYPE, "not a regular file"),
    ],
)
def test_unsafe_members_are_refused(
    *,
    evidence_repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    kind: bytes,
    reason: str,
) -> None:
    bundle = tmp_path / "e.tar.gz"
    assert _build(evidence_repo, bundle) == 0
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/shadow" if kind == tarfile.SYMTYPE else ""
    _repack(bundle, _members(bundle), (info,))
    code, out = _verify(bundle, capsys)
    assert code == 1
    assert f"member {name}: {reason}" in out


def test_not_a_bundle_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not gzip")
    code, out = _verify(junk, capsys)
    assert code == 1
    assert "not a readable tar.gz bundle" in out
    assert "Traceback" not in out


def test_runner_artifacts_outside_the_allow_list_stay_out(
    evidence_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifacts = evidence_repo / ".gcmschange/changes" / CHANGE / "runs/w1/runner/artifacts/ab12"
    (artifacts / "job_events").mkdir(parents=True)
    (artifacts / "fact_cache").mkdir()
    (artifacts / "command").write_text('{"env": {"CI_JOB_TOKEN": "glcbt-leak"}}')
    (artifacts / "fact_cache" / "portal-1").write_text("{}")
    (artifacts / "stdout").write_text("PLAY RECAP\n")
    (artifacts / "status").write_text("successful")
    (artifacts / "job_events" / "1-x.json").write_text("{}")
    bundle = tmp_path / "e.tar.gz"
    assert _build(evidence_repo, bundle) == 0
    capsys.readouterr()
    kept = {n.split("/artifacts/ab12/")[1] for n in _members(bundle) if "/artifacts/ab12/" in n}
    assert kept == {"stdout", "status", "job_events/1-x.json"}
    summary = json.loads(_members(bundle)[f"{TOP}/summary.json"])
    assert (
        "state/runs/w1/runner/artifacts/ab12/command (runner artifact outside the allow-list)"
        in (summary["skipped"])
    )


def test_the_summary_carries_each_measurement_of_the_last_run(
    evidence_repo: Path, tmp_path: Path
) -> None:
    from gcmschange.apply import journal
    from gcmschange.apply.journal import Stage, Step

    (evidence_repo / ".gcmschange" / "changes" / CHANGE / "journal.jsonl").unlink()
    book = journal.Journal(journal.path_of(evidence_repo, CHANGE), "r1")
    book.begin(Step(Stage.RUN), kind="apply", waves=[["portal-1"]], threshold=0)
    measurement = {
        "check": "error-rate@portal",
        "query": "sum(rate(x[30s]))",
        "value": 0.01,
        "verdict": "successful",
        "time": "2026-12-02T09:00:03+00:00",
        "message": "",
    }
    book.done(Step.wave_pass(1).analysis, verdict="successful", measurements=[measurement])
    bundle = tmp_path / "e.tar.gz"
    assert _build(evidence_repo, bundle) == 0
    summary = json.loads(_members(bundle)[f"{TOP}/summary.json"])
    [analysis] = summary["analysis"]
    assert (analysis["step"], analysis["verdict"]) == ("wave-1", "successful")
    assert analysis["measurements"] == [measurement]


def test_a_journal_that_cannot_be_read_still_gives_a_bundle(
    evidence_repo: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "e.tar.gz"
    assert _build(evidence_repo, bundle) == 0  # the fixture's journal is not one
    summary = json.loads(_members(bundle)[f"{TOP}/summary.json"])
    assert summary["analysis"] == []
    assert "journal" in summary["analysis_unreadable"]
