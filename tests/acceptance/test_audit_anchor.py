"""Audit anchors on a real git remote: a log rewritten together with its head is caught."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gcmschange.audit import trail
from gcmschange.cli import main
from gcmschange.paths import audit_log


@pytest.fixture
def repo(estate_repo: Path) -> Path:
    origin = estate_repo.parent / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    subprocess.run(
        ["git", "-C", str(estate_repo), "remote", "add", "origin", str(origin)], check=True
    )
    for n in range(3):
        trail.record(estate_repo, "test.event", details={"n": n})
    return estate_repo


def cli(
    root: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any], str]:
    code = main(["--repo", str(root), *args, "--output", "json"])
    out, err = capsys.readouterr()
    payload = json.loads(out) if out.strip() else {}
    # with --output json an error is the payload's "error", on stdout
    return code, payload, str(payload.get("error", "")) + err


def anchors_on_origin(root: Path) -> list[str]:
    done = subprocess.run(
        ["git", "-C", str(root.parent / "origin.git"), "log", "--format=%B%x00",
         "--glob=refs/gcmschange/audit/*"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [m.strip() for m in done.stdout.split("\0") if m.strip()]


def rewrite(root: Path, keep: int | None = None, edit_seq: int | None = None) -> None:
    """What someone with write access to .gcmschange/ could do: rewrite entries and re-chain
    every hash after them, head included, so that the local checks pass."""
    entries = [json.loads(line) for line in audit_log(root).read_text().splitlines()][:keep]
    prev = trail.GENESIS
    for entry in entries:
        if entry["seq"] == edit_seq:
            entry["outcome"] = "forged"
        entry["prev"] = prev
        entry["hash"] = trail.entry_hash(entry)
        prev = entry["hash"]
    audit_log(root).write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
    head = {"seq": entries[-1]["seq"], "hash": entries[-1]["hash"]}
    trail.head_path(root).write_text(json.dumps(head) + "\n")


def test_anchors_chain_on_the_remote_and_verify_against_them(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, first, _ = cli(repo, capsys, "audit", "anchor")
    assert code == 0 and first["anchored_seq"] == 3 and first["anchors"] == 1
    assert str(first["ref"]).startswith("refs/gcmschange/audit/")
    assert cli(repo, capsys, "audit", "anchor")[1]["anchors"] == 1  # nothing new: no new anchor
    trail.record(repo, "test.event", details={"n": 3})
    code, second, _ = cli(repo, capsys, "audit", "anchor")
    # (anchoring is not audited itself, so the log's last entry is the one just recorded)
    assert code == 0 and second["anchored_seq"] == 4 and second["anchors"] == 2
    messages = anchors_on_origin(repo)
    assert len(messages) == 2 and "seq: 4" in messages[0] and "seq: 3" in messages[1]
    code, verified, _ = cli(repo, capsys, "audit", "verify", "--remote", "origin")
    assert code == 0
    assert verified["anchor"]["ok"] is True and verified["anchor"]["anchors"] == 2


def test_a_log_rewritten_with_its_head_passes_locally_and_fails_against_the_anchor(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(repo, capsys, "audit", "anchor")[0] == 0
    rewrite(repo, edit_seq=2)
    assert cli(repo, capsys, "audit", "verify")[0] == 0  # the local checks cannot see it
    code, _, err = cli(repo, capsys, "audit", "verify", "--remote", "origin")
    assert code == 1
    assert "entry 3: the log's hash" in err and "(the log was rewritten)" in err
    code, _, err = cli(repo, capsys, "audit", "anchor")  # and it is not anchored over
    assert code == 1 and "audit log vs its anchor on 'origin': entry 3" in err


def test_entries_cut_from_the_end_with_the_head_fail_against_the_anchor(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(repo, capsys, "audit", "anchor")[0] == 0
    rewrite(repo, keep=2)
    code, _, err = cli(repo, capsys, "audit", "verify", "--remote", "origin")
    assert code == 1
    assert "entry 3 was anchored on the remote, but the log ends at entry 2" in err


def test_a_log_rewritten_from_its_first_entry_is_never_anchored(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(repo, capsys, "audit", "anchor")[0] == 0
    rewrite(repo, edit_seq=1)  # a new first hash: a new log id, with no anchor
    code, verified, _ = cli(repo, capsys, "audit", "verify", "--remote", "origin")
    assert code == 0 and verified["anchor"]["anchors"] == 0
    code, _, err = cli(repo, capsys, "audit", "verify", "--remote", "origin", "--require-anchor")
    assert code == 1 and "no anchor for this log" in err


def test_an_unreachable_remote_is_one_line_and_exit_1(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "remote", "set-url", "origin", str(repo / "nowhere.git")],
        check=True,
    )
    code, _, err = cli(repo, capsys, "audit", "anchor")
    assert code == 1 and err.startswith("remote 'origin' unreachable")
    assert len(err.strip().splitlines()) == 1
