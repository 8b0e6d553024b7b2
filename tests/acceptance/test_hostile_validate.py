"""Hostile change requests and catalogue schemas through the real CLI: each is refused with
exit 1 and a located one-line message, never exit 3, never a traceback, nothing disclosed."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from gcmschange.cli import main

NOW = "2027-01-15T00:00:00-05:00"
SECRET = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n"
# Characters that would rewrite a terminal, a CI log or a report if printed as they are.
INVISIBLE = ("\x1b", "\x07", "\r", "\u202a", "\u202e", "\u2066", "\u2069", "\x00")


def validate(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["--repo", str(root), "validate", "--now", NOW, *args])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert "internal error" not in out.err
    return code, out.out


def change_text(root: Path, change_id: str = "CHG-LAB-0009", **replace: str) -> str:
    text = (root / "changes" / "CHG-LAB-0002.yaml").read_text(encoding="utf-8")
    text = text.replace("id: CHG-LAB-0002", f"id: {change_id}")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def add_change(root: Path, change_id: str = "CHG-LAB-0009", **replace: str) -> Path:
    path = root / "changes" / f"{change_id}.yaml"
    path.write_text(change_text(root, change_id, **replace), encoding="utf-8")
    return path


def problems(out: str) -> list[str]:
    """The problems of a JSON report, as `file:line:column: path: message` lines."""
    found = []
    for change in json.loads(out)["changes"]:
        for p in change["problems"]:
            if p["severity"] == "error":
                where = ":".join(str(x) for x in (p["file"], p["line"], p["column"]) if x)
                found.append(
                    f"{where}: {p['path']}: {p['message']}"
                    if p["path"]
                    else f"{where}: {p['message']}"
                )
    return found


# --- 1. only regular files inside the repository are read ---------------------------------


@pytest.mark.parametrize("output", ["text", "json", "junit", "codequality"])
def test_a_change_linked_to_a_key_is_refused_unread_in_every_report(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str
) -> None:
    key = tmp_path / "id_ed25519"
    key.write_text(SECRET, encoding="utf-8")
    (estate_repo / "changes" / "CHG-LAB-0009.yaml").symlink_to(key)
    (estate_repo / "changes" / "CHG-LAB-0010.yaml").symlink_to("/etc/passwd")
    code, out = validate(estate_repo, capsys, "--output", output)
    assert code == 1
    for name in ("CHG-LAB-0009", "CHG-LAB-0010"):
        assert f"changes/{name}.yaml" in out
    assert "is a symbolic link, not a regular file (links are never followed)" in out
    assert "OPENSSH" not in out and "b3BlbnNz" not in out and "root:" not in out
    if output == "junit":
        ET.fromstring(out.split("\n", 1)[1])  # still a well-formed report


def test_a_link_named_on_the_command_line_is_refused_by_name(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (estate_repo / "changes" / "CHG-LAB-0009.yaml").symlink_to("/etc/passwd")
    code, out = validate(estate_repo, capsys, "CHG-LAB-0009")
    assert code == 1
    assert (
        "changes/CHG-LAB-0009.yaml: is a symbolic link, not a regular file "
        "(links are never followed)" in out
    )
    assert "root:" not in out


def test_a_link_to_a_checked_change_does_not_inherit_its_verdict(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = add_change(estate_repo)
    assert validate(estate_repo, capsys, "CHG-LAB-0009")[0] == 0
    moved = estate_repo / "kept.yaml"
    good.rename(moved)
    good.symlink_to(moved)  # same target inode: only the link's own signature tells
    code, out = validate(estate_repo, capsys, "CHG-LAB-0009")
    assert code == 1
    assert "is a symbolic link" in out


def test_a_fifo_in_changes_is_refused_at_once(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(estate_repo / "changes" / "CHG-LAB-0009.yaml")
    started = time.perf_counter()
    code, out = validate(estate_repo, capsys)
    assert code == 1
    assert time.perf_counter() - started < 10  # never waits for a writer
    assert "changes/CHG-LAB-0009.yaml: not a regular file (a FIFO, socket or device)" in out


def test_a_changes_folder_linked_out_of_the_repository_is_not_read(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "CHG-LAB-0009.yaml").write_text(
        change_text(estate_repo, title="Leaked title from outside"), encoding="utf-8"
    )
    changes = estate_repo / "changes"
    for path in changes.iterdir():
        path.unlink()
    changes.rmdir()
    changes.symlink_to(elsewhere)
    code, out = validate(estate_repo, capsys)
    assert code == 1
    assert "changes/CHG-LAB-0009.yaml: is outside the repository (only files in it are read)" in out
    assert "Leaked" not in out


def test_paths_outside_the_repository_are_refused(
    estate_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "CHG-LAB-0009.yaml"
    outside.write_text(change_text(estate_repo), encoding="utf-8")
    code, out = validate(estate_repo, capsys, str(outside), "../../../../../../../etc/passwd")
    assert code == 1
    assert f"{outside}: is outside the repository (only files in it are read)" in out
    assert "etc/passwd: is outside the repository (only files in it are read)" in out
    assert "root:" not in out


def test_a_file_name_with_control_characters_is_refused_and_shown_escaped(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (estate_repo / "changes" / "CHG-LAB-0009\x1b]0;pwned\x07.yaml").write_text(
        change_text(estate_repo), encoding="utf-8"
    )
    code, out = validate(estate_repo, capsys)
    assert code == 1
    assert (
        "'changes/CHG-LAB-0009\\x1b]0;pwned\\x07.yaml': the file name holds control, "
        "invisible or undecodable characters; rename it" in out
    )
    assert not any(char in out for char in INVISIBLE)


# --- 2. a catalogue schema may refer only to itself -----------------------------------------


@pytest.fixture
def listener() -> Iterator[tuple[str, list[object]]]:
    """A TCP port on 127.0.0.1 that records every connection made to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(conn)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/schema.json", accepted
    stop.set()
    thread.join()
    server.close()


@pytest.mark.parametrize("target", ["file:///etc/passwd", "URL", "other.json#/x"])
def test_a_catalogue_schema_reference_outside_itself_is_refused_unfetched(
    estate_repo: Path,
    capsys: pytest.CaptureFixture[str],
    listener: tuple[str, list[object]],
    target: str,
) -> None:
    url, accepted = listener
    target = url if target == "URL" else target
    entry = estate_repo / "catalogue" / "raise-log-level.yml"
    text = entry.read_text(encoding="utf-8")
    entry.write_text(text.replace("enum: [debug, info]", f"$ref: '{target}'"), encoding="utf-8")
    code, out = validate(estate_repo, capsys, "CHG-LAB-0001")
    assert code == 1
    assert (
        f"catalogue/raise-log-level.yml:18:3: $.parameters: not a usable JSON Schema: "
        f'properties.level.$ref is "{target}", not a reference inside the schema '
        '(only local references such as "#/$defs/name" are allowed)' in out
    )
    assert accepted == []
    assert "root:" not in out


def test_a_nested_id_cannot_move_references_outside_the_schema(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], listener: tuple[str, list[object]]
) -> None:
    url, accepted = listener
    entry = estate_repo / "catalogue" / "raise-log-level.yml"
    text = entry.read_text(encoding="utf-8")
    entry.write_text(
        text.replace("enum: [debug, info]", f"$id: '{url}'\n      $ref: '#/x'"),
        encoding="utf-8",
    )
    code, out = validate(estate_repo, capsys, "CHG-LAB-0001")
    assert code == 1
    assert (
        "catalogue/raise-log-level.yml:18:3: $.parameters: not a usable JSON Schema: "
        "properties.level.$id: only the schema's root may set $id" in out
    )
    assert accepted == []


# --- 3. numbers and dates every later stage can hold ----------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9" * 5000, "$.variables.tls_protocols: number longer than 400 digits"),
        ("1e999", "$.variables.tls_protocols: number too large to hold"),
        ("9223372036854775808", "$.variables.tls_protocols: whole number out of range"),
        ("-9223372036854775809", "$.variables.tls_protocols: whole number out of range"),
        ("0x" + "f" * 17, "$.variables.tls_protocols: whole number out of range"),
        (".inf", "$.variables.tls_protocols: not a finite number (.inf and .nan cannot be used)"),
        ("[.nan]", "$.variables.tls_protocols[0]: not a finite number"),
    ],
)
def test_numbers_beyond_what_later_stages_hold_are_refused_where_written(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], value: str, expected: str
) -> None:
    add_change(estate_repo, **{'tls_protocols: "TLSv1.3"': f"tls_protocols: {value}"})
    code, out = validate(estate_repo, capsys, "--output", "json", "CHG-LAB-0009")
    assert code == 1
    found = problems(out)
    assert any(p.startswith("changes/CHG-LAB-0009.yaml:11:") and expected in p for p in found), (
        found
    )


def test_the_largest_numbers_that_fit_are_not_refused_as_numbers(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_change(estate_repo, **{"failure_threshold: 0": "failure_threshold: 9223372036854775807"})
    code, out = validate(estate_repo, capsys, "--output", "json", "CHG-LAB-0009")
    assert code == 1
    assert problems(out) == [
        "changes/CHG-LAB-0009.yaml:19:22: $.rollout.failure_threshold: "
        "must be at most 10000 (got 9223372036854775807)"
    ]


@pytest.mark.parametrize("year", ["9999", "0001", "1999", "2100"])
def test_window_years_outside_2000_to_2099_are_refused(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], year: str
) -> None:
    add_change(estate_repo, **{'end: "2030-12-31T23:00:00"': f'end: "{year}-12-31T23:00:00"'})
    code, out = validate(estate_repo, capsys, "--output", "json", "CHG-LAB-0009")
    assert code == 1
    assert problems(out) == [
        "changes/CHG-LAB-0009.yaml:14:8: $.window.end: the year must be from 2000 to 2099"
    ]


def test_a_time_zone_that_is_a_folder_is_an_unknown_time_zone(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_change(estate_repo, **{"timezone: America/Toronto": "timezone: America"})
    code, out = validate(estate_repo, capsys, "--output", "json", "CHG-LAB-0009")
    assert code == 1
    assert problems(out) == [
        "changes/CHG-LAB-0009.yaml:15:13: $.window.timezone: unknown time zone 'America'"
    ]


# --- 4. one-line texts: no control characters, no bidi controls, `$` is the end ---------------


def test_an_id_with_a_trailing_line_break_is_refused_outside_changes(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proposed = estate_repo / "proposed.yaml"
    proposed.write_text(
        change_text(estate_repo, **{"id: CHG-LAB-0009": 'id: "CHG-DEV-0200\\n"'}),
        encoding="utf-8",
    )
    code, out = validate(estate_repo, capsys, "--output", "json", "proposed.yaml")
    assert code == 1
    assert problems(out) == [
        "proposed.yaml:3:5: $.id: must look like CHG-<AREA>-<number>, for example "
        "CHG-PROD-0042; it holds U+000A (LINE FEED) at character 13"
    ]
    assert json.loads(out)["changes"][0]["id"] is None  # an invalid id is never shown


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("\\e]0;owned\\a Partner gateway", "U+001B (ESCAPE) at character 1"),
        ("Partner gateway\\r\\nFAKE: approved", "U+000D (CARRIAGE RETURN) at character 16"),
        ("Partner gateway\\ttabbed", "U+0009 (TAB) at character 16"),
        ("Partner \\u202egateway", "U+202E (RIGHT-TO-LEFT OVERRIDE) at character 9"),
        ("Partner \\u2066gateway\\u2069", "U+2066 (LEFT-TO-RIGHT ISOLATE) at character 9"),
        ("Partner gateway\\u2028second line", "U+2028 (LINE SEPARATOR) at character 16"),
        ("Partner \\x9bgateway", "U+009B (a control character) at character 9"),
    ],
)
def test_titles_are_one_line_of_plain_text(
    estate_repo: Path, capsys: pytest.CaptureFixture[str], title: str, expected: str
) -> None:
    add_change(
        estate_repo,
        **{"title: Partner gateway accepts TLS 1.3 only": f'title: "{title}"'},
    )
    code, out = validate(estate_repo, capsys, "CHG-LAB-0009")
    assert code == 1
    assert f"changes/CHG-LAB-0009.yaml:4:8: $.title: must be plain text; it holds {expected}" in out
    assert not any(char in out for char in INVISIBLE)


def test_descriptions_may_break_lines_but_hold_no_escape_sequences(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = "description_en: Partners still on TLS 1.2 must upgrade before this change."
    add_change(estate_repo, **{before: 'description_en: "Line one.\\nLine two,\\ttabbed."'})
    assert validate(estate_repo, capsys, "CHG-LAB-0009")[0] == 0
    add_change(estate_repo, **{before: 'description_en: "Line one.\\n\\e[2JLine two."'})
    code, out = validate(estate_repo, capsys, "CHG-LAB-0009")
    assert code == 1
    assert (
        "changes/CHG-LAB-0009.yaml:25:19: $.impact.description_en: must be plain text; "
        "it holds U+001B (ESCAPE) at character 11" in out
    )


def test_hostile_keys_and_values_are_shown_escaped_in_every_report(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_change(
        estate_repo,
        **{
            "rollback:": '"\\e]8;;http://x\\a\\u202e": 1\nrollback:',
            "type: normal": 'type: "norm\\u202eal"',
        },
    )
    for output in ("text", "json", "junit", "codequality"):
        code, out = validate(estate_repo, capsys, "--output", output, "CHG-LAB-0009")
        assert code == 1
        assert not any(char in out for char in INVISIBLE), output
        if output == "text":
            assert 'unknown field "\\u001b]8;;http://x\\u0007\\u202e"' in out
            assert '(got "norm\\u202eal")' in out
        if output == "junit":
            ET.fromstring(out.split("\n", 1)[1])


# --- 5. lists that drive work are bounded, and the work is linear ----------------------------


def test_three_thousand_unknown_systems_are_refused_quickly(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    many = ", ".join(f"ghost_{i}" for i in range(3000))
    add_change(estate_repo, **{"systems: [partner_gateway]": f"systems: [{many}]"})
    started = time.perf_counter()
    code, out = validate(estate_repo, capsys, "--output", "json", "CHG-LAB-0009")
    assert time.perf_counter() - started < 10  # was over two minutes
    assert code == 1
    assert problems(out) == ["changes/CHG-LAB-0009.yaml:8:10: $.systems: allows at most 100 items"]


def test_the_calendar_check_is_linear_in_the_systems_named(
    estate_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 40 overlapping changes naming 100 unknown systems each: 4,000 names, which the
    # calendar used to compare pairwise (16 million walks of the dependency graph).
    for n in range(40):
        names = ", ".join(f"ghost_{n}_{i}" for i in range(100))
        add_change(estate_repo, f"CHG-LAB-{100 + n:04d}", **{"[partner_gateway]": f"[{names}]"})
    started = time.perf_counter()
    code, out = validate(estate_repo, capsys, "--output", "json", "--no-cache")
    assert time.perf_counter() - started < 10
    assert code == 1
    assert "unknown system 'ghost_39_99' (not in estate.yml)" in out
