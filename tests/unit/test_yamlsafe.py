"""The hardened loader: positions, YAML 1.2 scalars, and each refusal with its own message."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest

from gcmschange import yamlsafe
from gcmschange.errors import ValidationError

BOMB = b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + b"".join(
    f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]\n".encode()
    for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def refusal(raw: bytes) -> str:
    with pytest.raises(ValidationError) as caught:
        yamlsafe.load_bytes(raw, "f.yaml")
    (problem,) = caught.value.problems
    return f"{problem} [{problem.code}]"


def test_positions_of_values_and_keys() -> None:
    doc = yamlsafe.load_bytes(b"a: 1\nb:\n  - x\n  - {c: y}\n", "f.yaml")
    assert doc.data == {"a": 1, "b": ["x", {"c": "y"}]}
    assert doc.positions[("b", 1, "c")] == (4, 9)
    assert doc.key_positions[("b",)] == (2, 1)
    assert str(doc.locate(("b", 1, "c", "missing"))) == "f.yaml:4:9: $.b[1].c.missing"
    assert str(doc.locate(("b",), key=True)) == "f.yaml:2:1: $.b"


def test_yaml_1_2_core_scalars() -> None:
    raw = b"[no, on, yes, 2026-01-01, 0x1f, 0o17, 1e3, .inf, ~, '', True, '1']"
    data = yamlsafe.load_bytes(raw, "f").data
    assert data[:8] == ["no", "on", "yes", "2026-01-01", 31, 15, 1000.0, math.inf]
    assert data[8:] == [None, "", True, "1"]


def test_unsafe_tag_and_template_text_stay_literal_strings() -> None:
    data = yamlsafe.load_bytes(b'a: !unsafe \'{{ lookup("pipe", "id") }}\'\n', "f").data
    assert data == {"a": '{{ lookup("pipe", "id") }}'}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (BOMB, "f.yaml:1:4: $.a: anchor '&a' is not allowed [anchor]"),
        (b"a: *x\n", "f.yaml:1:4: $.a: alias '*x' is not allowed [alias]"),
        (
            b"a: 1\nb: 2\na: 3\n",
            "f.yaml:3:1: $.a: duplicate key 'a' (first at line 1) [duplicate-key]",
        ),
        (b"a: 1\n1: 2\n", "f.yaml:2:1: $: key '1' is a number, not a string (quote it) [key-type]"),
        (
            b"true: 2\n",
            "f.yaml:1:1: $: key 'true' is a boolean, not a string (quote it) [key-type]",
        ),
        (b"? [a]\n: 2\n", "f.yaml:1:3: $: a list cannot be a key: keys must be strings [key-type]"),
        (b"a: 1\n---\nb: 2\n", "f.yaml:2:1: $: more than one YAML document [multi-document]"),
        (
            b"a: !!binary aGk=\n",
            "f.yaml:1:4: $.a: tag 'tag:yaml.org,2002:binary' is not allowed"
            " (plain data only) [tag]",
        ),
        (b"a: [1\n", "f.yaml:2:1: YAML syntax error: did not find expected ',' or ']' [syntax]"),
        (b"x" * (yamlsafe.MAX_BYTES + 1), "f.yaml: file is larger than 262144 bytes [too-large]"),
        (
            b"a: 1\n\x00",
            "f.yaml:2:1: binary content (NUL byte at offset 5), not YAML text [binary]",
        ),
        (b"a: caf\xe9\n", "f.yaml:1:7: not UTF-8 (byte 0xe9 at offset 6) [encoding]"),
        (
            "a: 1".encode("utf-16"),
            "f.yaml: not UTF-8 (UTF-16 or UTF-32 byte order mark); save it as UTF-8 [encoding]",
        ),
    ],
)
def test_each_refusal_has_its_own_message(raw: bytes, message: str) -> None:
    assert refusal(raw) == message


@pytest.mark.parametrize("depth", [65, 1000, 10_000])
def test_nesting_beyond_the_limit_is_refused(depth: int) -> None:
    assert "nesting deeper than 64 levels [depth]" in refusal(b"[" * depth + b"]" * depth)
    block = "".join("  " * i + "k:\n" for i in range(depth if depth < 1000 else 200)).encode()
    assert "nesting deeper than 64 levels [depth]" in refusal(block)


def test_utf8_bom_is_accepted() -> None:
    assert yamlsafe.load_bytes(b"\xef\xbb\xbfa: 1\n", "f").data == {"a": 1}


def test_alias_bomb_is_refused_in_milliseconds() -> None:
    assert len(BOMB) < 400
    started = time.perf_counter()
    for _ in range(100):
        refusal(BOMB)
    assert (time.perf_counter() - started) / 100 < 0.005


def test_huge_file_is_refused_after_reading_only_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # 50 MB (sparse), all NUL bytes
    started = time.perf_counter()
    with pytest.raises(ValidationError, match="larger than 262144 bytes"):
        yamlsafe.load_file(big, "big.yaml")
    assert time.perf_counter() - started < 0.5


def test_unreadable_paths_are_problems(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"^nope\.yaml: file not found$"):
        yamlsafe.load_file(tmp_path / "nope.yaml", "nope.yaml")
    with pytest.raises(ValidationError, match="is a directory"):
        yamlsafe.load_file(tmp_path, "dir")


def test_estate_files_are_read_as_validation_reads_them(tmp_path: Path) -> None:
    """One YAML: `on` and dates mean in use what they meant when the schema checked them."""
    from gcmschange.rules import estate

    path = tmp_path / "vars.yml"
    path.write_text("switch: on\nday: 2026-01-01\nanswer: no\n", encoding="utf-8")
    assert estate._read_yaml(path) == {"switch": "on", "day": "2026-01-01", "answer": "no"}


def test_a_fifo_named_like_yaml_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "CHG-X.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ValidationError, match="not a regular file"):
        yamlsafe.load_file(fifo)
