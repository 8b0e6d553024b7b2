"""`gcmschange render` and the render half of `plan` through the real CLI, over real files and
real git: diffs against the merge request's base, and bad input refused with nothing written."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gcmschange.cli import main
from tests.conftest import vault_yaml

HOSTS = """\
all:
  children:
    case_api:
      hosts:
        caseapi-1: {ansible_host: 10.0.0.2}
        caseapi-2: {ansible_host: 10.0.0.3}
    partner_gateway:
      hosts:
        gw-1: {ansible_host: 10.0.0.4}
        gw-2: {ansible_host: 10.0.0.5}
"""
CHANGE_ID = "CHG-LAB-0950"
CHANGE = f"""\
id: {CHANGE_ID}
title: Gateway TLS 1.3 only, case API in the same window
type: normal
requester: rm-bob
environment: lab
systems: [partner_gateway, case_api]
playbook: configure
variables:
  tls_protocols: "TLSv1.3"
window:
  start: "2026-01-01T00:00:00"
  end: "2026-01-01T02:00:00"
  timezone: America/Toronto
rollout:
  canary: 1
  waves: ["100%"]
  failure_threshold: 0
rollback:
  strategy: restore
verification: [verify/test_common.py]
impact:
  level: none
  description_en: None.
  description_fr: Aucun.
"""
GATEWAY = "templates/partner_gateway/nginx.conf.j2"


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    return done.stdout.decode().strip()


@pytest.fixture
def mr(estate_repo: Path) -> Path:
    """A merge-request branch adding CHANGE_ID; the lab inventory is generated (untracked)."""
    (estate_repo / "inventories/lab/hosts.yml").write_text(HOSTS, encoding="utf-8")
    git(estate_repo, "checkout", "-q", "-b", "mr")
    (estate_repo / f"changes/{CHANGE_ID}.yaml").write_text(CHANGE, encoding="utf-8")
    git(estate_repo, "add", f"changes/{CHANGE_ID}.yaml")
    git(estate_repo, "commit", "-qm", "add change")
    return estate_repo


def cli(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--repo", str(root), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rendered_dir(root: Path) -> Path:
    return root / ".gcmschange" / "changes" / CHANGE_ID / "rendered"


def test_render_shows_the_diff_against_the_base_and_counts_unchanged_hosts(
    mr: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(mr, capsys, "render", CHANGE_ID)
    assert code == 0
    assert f"compared with base {git(mr, 'rev-parse', 'main')[:12]}" in out
    for host in ("gw-1", "gw-2"):
        assert f"--- {host}:/etc/nginx/conf.d/gcms-partner_gateway.conf (base " in out
        assert f"{host}: 1 of 3 file(s)" in out
    assert "-    ssl_protocols TLSv1.2 TLSv1.3;\n+    ssl_protocols TLSv1.3;\n" in out
    assert [line for line in out.splitlines() if line.startswith(("-  ", "+  "))] == [
        "-    ssl_protocols TLSv1.2 TLSv1.3;",
        "+    ssl_protocols TLSv1.3;",
    ] * 2
    assert "2 host(s) unchanged" in out
    assert "caseapi" not in out
    written = rendered_dir(mr) / "gw-1/etc/nginx/conf.d/gcms-partner_gateway.conf"
    assert "ssl_protocols TLSv1.3;" in written.read_text()
    assert (rendered_dir(mr) / "caseapi-2/etc/gcms/case_api.yml").is_file()


def test_render_json_with_an_explicit_base_and_byte_identical_reruns(
    mr: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = git(mr, "rev-parse", "HEAD")  # the change itself is at this base: nothing differs
    code, out, _ = cli(mr, capsys, "render", CHANGE_ID, "--base", base, "--output", "json")
    payload = json.loads(out)
    assert code == 0
    assert payload["base"] == base
    assert payload["diff"]["changed"] == {}
    assert sorted(payload["diff"]["unchanged"]) == ["caseapi-1", "caseapi-2", "gw-1", "gw-2"]
    first = {p: p.read_bytes() for p in rendered_dir(mr).rglob("*") if p.is_file()}
    cli(mr, capsys, "render", CHANGE_ID, "--base", base)
    second = {p: p.read_bytes() for p in rendered_dir(mr).rglob("*") if p.is_file()}
    assert first == second and len(first) == 14


def test_render_without_a_main_branch_lists_files(
    mr: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(mr, "branch", "-m", "main", "trunk")
    code, out, _ = cli(mr, capsys, "render", CHANGE_ID, "--out", str(mr / "out"))
    assert code == 0
    assert "no base commit to compare with" in out
    assert "  /etc/nginx/conf.d/gcms-case_api.conf" in out
    assert (mr / "out/gw-2/etc/nginx/nginx.conf").is_file()


def test_unknown_base_is_exit_1(mr: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(mr, capsys, "render", CHANGE_ID, "--base", "no-such-rev")
    assert code == 1
    assert "--base no-such-rev: no such revision" in err


def test_secrets_are_masked_in_output_and_written_files(
    mr: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "s3cr3t-canary-9f2b"
    path = mr / f"changes/{CHANGE_ID}.yaml"
    entry = vault_yaml("canary_token", secret)
    path.write_text(path.read_text().replace("variables:\n", "variables:\n" + entry))
    template = mr / GATEWAY
    template.write_text(template.read_text() + "# token {{ canary_token }}\n")
    for output in ("text", "json"):
        code, out, err = cli(mr, capsys, "render", CHANGE_ID, "--output", output)
        assert code == 0, err
        assert secret not in out + err
        assert "# token ********" in out
    for file in rendered_dir(mr).rglob("*"):
        assert not file.is_file() or secret not in file.read_text()
    assert not (mr / ".gcmschange/cache/render").exists() or not any(
        secret in p.read_text() for p in (mr / ".gcmschange/cache/render").iterdir()
    )


def _replace(root: Path, rel: str, old: str, new: str) -> None:
    text = (root / rel).read_text()
    assert old in text
    (root / rel).write_text(text.replace(old, new, 1))


BAD_INPUT = {
    "missing variable": (
        lambda r: _replace(
            r, GATEWAY, "ssl_prefer_server_ciphers on;", "ssl_ciphers {{ gw_ciphers }};"
        ),
        f"{GATEWAY}:11: undefined variable: 'gw_ciphers' is undefined (host gw-1)",
    ),
    "syntax error": (
        lambda r: _replace(r, GATEWAY, "ssl_prefer_server_ciphers on;", "{% if tls_protocols %}"),
        f"{GATEWAY}:",
    ),
    "python internals": (
        lambda r: _replace(
            r, GATEWAY, "ssl_prefer_server_ciphers on;", "{{ ''.__class__.__mro__ }}"
        ),
        f"{GATEWAY}:11: blocked by the sandbox: access to attribute '__class__' of 'str' object "
        "is unsafe. (host gw-1)",
    ),
    "globals through a global": (
        lambda r: _replace(
            r, GATEWAY, "ssl_prefer_server_ciphers on;", "{{ cycler.__init__.__globals__ }}"
        ),
        f"{GATEWAY}:11: blocked by the sandbox: access to attribute '__init__'",
    ),
    "dest with ..": (
        lambda r: _replace(
            r,
            "estate.yml",
            "dest: /etc/gcms/partner_gateway.yml",
            "dest: /etc/gcms/../../root/x.yml",
        ),
        "gw-1:/etc/gcms/../../root/x.yml: destination contains '..'",
    ),
    "relative dest": (
        lambda r: _replace(
            r, "estate.yml", "dest: /etc/gcms/partner_gateway.yml", "dest: etc/gcms/gw.yml"
        ),
        # The estate schema refuses it first, with its position in estate.yml.
        '$.systems.partner_gateway.configs[2].dest: "etc/gcms/gw.yml" does not match ^/',
    ),
}


@pytest.mark.parametrize("verb", ["render", "plan"])
@pytest.mark.parametrize(("edit", "message"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_exit_1_with_a_precise_reason_and_nothing_written(
    mr: Path,
    capsys: pytest.CaptureFixture[str],
    verb: str,
    edit: Callable[[Path], None],
    message: str,
) -> None:
    edit(mr)
    code, out, err = cli(mr, capsys, verb, CHANGE_ID)
    assert code == 1
    assert message in err
    assert "Traceback" not in out + err
    assert not (mr / ".gcmschange/changes").exists()


def test_symlink_in_the_out_dir_leading_outside_is_refused(
    mr: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    (out / "gw-1").mkdir(parents=True)
    (out / "gw-1" / "etc").symlink_to(outside)
    code, _, err = cli(mr, capsys, "render", CHANGE_ID, "--out", str(out))
    assert code == 1
    assert "gw-1:/etc/nginx/nginx.conf: output path resolves outside" in err
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["gw-1"]


def test_the_base_change_secrets_are_masked_too(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = estate_repo
    (root / "inventories/lab/hosts.yml").write_text(HOSTS, encoding="utf-8")
    (root / GATEWAY).write_text((root / GATEWAY).read_text() + "# token {{ canary_token }}\n")
    old = vault_yaml("canary_token", "old-secret-1111")
    change = CHANGE.replace("variables:\n", "variables:\n" + old)
    (root / f"changes/{CHANGE_ID}.yaml").write_text(change, encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "change with a secret")
    git(root, "checkout", "-q", "-b", "rotate")
    rotated = change.replace(old, vault_yaml("canary_token", "new-secret-2222"))
    (root / f"changes/{CHANGE_ID}.yaml").write_text(rotated, encoding="utf-8")
    code, out, err = cli(root, capsys, "render", CHANGE_ID)
    assert code == 0, err
    assert "old-secret" not in out + err and "new-secret" not in out + err
    assert "gw-1: 1 of 3 file(s)" in out  # the token line changed, masked on both sides
    assert not (root / ".gcmschange/cache/render").exists()
