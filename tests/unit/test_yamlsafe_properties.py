"""Property tests: whatever bytes or YAML arrive, the loader and the CLI answer, never crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcmschange import yamlsafe
from gcmschange.cli import main
from gcmschange.errors import ValidationError
from tests.conftest import copy_estate

YAML_BITS = st.sampled_from(
    [
        ": ",
        "- ",
        "\n",
        "  ",
        "&a ",
        "*a",
        "!!",
        "? ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "'",
        '"',
        "|",
        ">",
        "#",
        "---",
        "...",
        "%YAML 1.2",
        "id",
        "systems",
        "\t",
        "\\",
        "\x00",
        "é",
    ]
)
# libyaml reads YAML 1.1 escapes: no surrogate pairs; control characters are not data.
# YAML cannot hold the two non-characters U+FFFE and U+FFFF (nor controls or lone surrogates).
TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=20,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


@given(st.binary(max_size=400))
@settings(max_examples=150)
def test_random_bytes_load_or_are_refused(raw: bytes) -> None:
    try:
        yamlsafe.load_bytes(raw, "f")
    except ValidationError as err:
        assert len(err.problems) == 1


@given(st.lists(YAML_BITS, max_size=40).map("".join))
@settings(max_examples=150)
def test_yaml_like_text_loads_or_is_refused(text: str) -> None:
    try:
        yamlsafe.load_bytes(text.encode(), "f")
    except ValidationError as err:
        assert err.problems[0].message


@given(JSON_VALUES)
@settings(max_examples=150)
def test_json_documents_load_to_the_same_data(value: object) -> None:
    # JSON is YAML 1.2, and change requests follow the 1.2 core schema.
    assert yamlsafe.load_bytes(json.dumps({"v": value}, ensure_ascii=False).encode(), "f").data == {
        "v": value
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_estate(tmp_path_factory.mktemp("prop") / "estate")


@given(raw=st.one_of(st.binary(max_size=300), JSON_VALUES.map(lambda v: json.dumps(v).encode())))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_cli_never_tracebacks(raw: bytes, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = repo / "proposed.yaml"
    target.write_bytes(raw)
    code = main(["--repo", str(repo), "validate", "--output", "json", "proposed.yaml"])
    out = capsys.readouterr()
    assert code in (0, 1), out.err
    assert "Traceback" not in out.err
    assert json.loads(out.out)["ok"] is (code == 0)
