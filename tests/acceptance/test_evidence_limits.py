"""`gcmschange evidence verify` against hostile bundles and forged manifests.

Bundles are read once, streamed and capped: a header declaring a gibibyte, too many members,
too many bytes in all or a giant pax record is refused in one line, exit 1, without reading
on. And a bundle whose member was altered and whose manifest was recomputed agrees with
itself but not with the audit log, which recorded the manifest `evidence` built.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from pathlib import Path

import pytest

from gcmschange.audit import archive
from gcmschange.cli import main
from gcmschange.paths import audit_log
from tests.conftest import copy_estate

CHANGE = "CHG-LAB-0002"
TOP = f"evidence-{CHANGE}"


def _build(root: Path, out: Path) -> None:
    assert main(["--repo", str(root), "evidence", CHANGE, "-o", str(out)]) == 0


def _verify(
    capsys: pytest.CaptureFixture[str], bundle: Path, *args: str, repo: Path | None = None
) -> tuple[int, str]:
    where = ["--repo", str(repo)] if repo is not None else []
    code = main([*where, "evidence", "verify", str(bundle), *args])
    captured = capsys.readouterr()
    assert "internal error" not in captured.err
    return code, captured.out + captured.err


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:gz") as tar:
        return {
            m.name: handle.read()
            for m in tar.getmembers()
            if (handle := tar.extractfile(m)) is not None
        }


def _pack(bundle: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(bundle, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _header_only(bundle: Path, name: str, size: int) -> None:
    """A gzip holding one tar header that declares `size` bytes, and a few of them: what a
    small download can claim."""
    info = tarfile.TarInfo(name)
    info.size = size
    with gzip.open(bundle, "wb") as gz:
        gz.write(info.tobuf(format=tarfile.PAX_FORMAT) + bytes(4096))


def _forged(bundle: Path) -> None:
    """summary.json altered, and MANIFEST.sha256 recomputed to match."""
    members = _members(bundle)
    summary = json.loads(members[f"{TOP}/summary.json"])
    summary["validation"] = "valid (and approved by the board)"
    members[f"{TOP}/summary.json"] = json.dumps(summary).encode()
    files = {
        name.removeprefix(f"{TOP}/"): data
        for name, data in members.items()
        if name != f"{TOP}/{archive.MANIFEST}"
    }
    members[f"{TOP}/{archive.MANIFEST}"] = archive.manifest_text(files).encode()
    _pack(bundle, members)


def test_a_member_declaring_a_gibibyte_is_refused_without_reading_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "big.tar.gz"
    _header_only(bundle, f"{TOP}/state/huge.bin", 1 << 30)
    assert bundle.stat().st_size < 10_000
    code, out = _verify(capsys, bundle, "--offline")
    assert code == 1
    assert f"member {TOP}/state/huge.bin is 1024.0 MiB, over the 64.0 MiB" in out
    assert "refused without reading it" in out


def test_too_many_members_are_refused_at_the_first_one_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "MAX_MEMBERS", 100)
    bundle = tmp_path / "many.tar.gz"
    _pack(bundle, {f"{TOP}/m{i}": b"" for i in range(5000)})
    started = time.monotonic()
    code, out = _verify(capsys, bundle, "--offline")
    assert code == 1
    assert "more than 100 members: refused without reading further" in out
    assert time.monotonic() - started < 5


def test_members_adding_up_past_the_total_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 10_000)
    bundle = tmp_path / "total.tar.gz"
    _pack(bundle, {f"{TOP}/m{i}": bytes(3000) for i in range(5)})
    code, out = _verify(capsys, bundle, "--offline")
    assert code == 1
    assert f"members add up to more than 0.0 MiB (at {TOP}/m3)" in out


def test_a_giant_pax_record_is_refused_before_tarfile_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "pax.tar.gz"
    info = tarfile.TarInfo(f"{TOP}/p")
    info.pax_headers = {"comment": "x" * (2 * archive.HEADER_BYTES)}
    with (
        gzip.open(bundle, "wb") as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.addfile(info, io.BytesIO(b""))
    code, out = _verify(capsys, bundle, "--offline")
    assert code == 1
    assert f"runs past {archive.HEADER_BYTES} bytes: refused without reading further" in out


def test_build_refuses_a_bundle_verify_would_refuse(
    estate_repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 100)
    code = main(["--repo", str(estate_repo), "evidence", CHANGE, "-o", str(tmp_path / "e.tar.gz")])
    assert code == 1
    assert "cannot write the bundle" in capsys.readouterr().err
    assert not (tmp_path / "e.tar.gz").exists()


def test_intact_bundle_names_the_audit_entry_that_recorded_it(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "e.tar.gz"
    _build(estate_repo, bundle)
    capsys.readouterr()
    code, out = _verify(capsys, bundle, repo=estate_repo)
    assert code == 0, out
    assert "intact" in out and "manifest recorded in audit entry" in out


def test_recomputed_manifest_is_caught_by_the_audit_log(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "e.tar.gz"
    _build(estate_repo, bundle)
    _forged(bundle)
    capsys.readouterr()
    code, out = _verify(capsys, bundle, repo=estate_repo)
    assert code == 1, out
    assert f"is not one the audit log recorded for {CHANGE}" in out
    # Offline, the same bundle is consistent, and the result says how little that shows.
    code, out = _verify(capsys, bundle, "--offline", "--output", "json")
    assert code == 0, out
    payload = json.loads(out)
    assert payload["audit_checked"] is False and payload["audit_entry"] is None
    assert "internal consistency only" in payload["note"]
    code, out = _verify(capsys, bundle, "--offline")
    assert "consistent" in out and "internal consistency only (--offline)" in out
    assert "intact" not in out


def test_a_bundle_the_log_never_recorded_is_refused(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "e.tar.gz"
    _build(estate_repo, bundle)
    # Another repository of the same estate: its log never recorded this bundle.
    other = copy_estate(tmp_path / "other")
    capsys.readouterr()
    code, out = _verify(capsys, bundle, repo=other)
    assert code == 1, out
    assert f"the audit log has no record of evidence built for {CHANGE}" in out


def test_outside_any_repository_verify_asks_for_one_or_offline(
    estate_repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = tmp_path / "e.tar.gz"
    _build(estate_repo, bundle)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code, out = _verify(capsys, bundle)
    assert code == 1
    assert "no repository to check the audit log of" in out and "--offline" in out


def test_a_broken_audit_chain_cannot_vouch_for_a_bundle(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "e.tar.gz"
    _build(estate_repo, bundle)
    log = audit_log(estate_repo)
    log.write_text(log.read_text("utf-8").replace('"outcome": "ok"', '"outcome": "OK"', 1), "utf-8")
    capsys.readouterr()
    code, out = _verify(capsys, bundle, repo=estate_repo)
    assert code == 1, out
    assert "its chain is broken" in out
