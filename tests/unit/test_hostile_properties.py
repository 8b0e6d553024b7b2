"""Property tests: whatever a hostile change file holds, `validate` answers 0 or 1, at once.

Beside test_yamlsafe_properties.py, which throws random bytes at the loader: here the
inputs are shaped like change requests, so they get past the YAML stage and reach the
schema, the rules, the calendar and every report, with the values that broke them before
(huge numbers, far-off years, control and bidi characters, thousands of names).
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcmschange.cli import main
from tests.conftest import copy_estate

INVISIBLE = ("\x1b", "\x07", "\r", "\x00", "\x9b", "\u202a", "\u202e", "\u2066", "\u2069")
SKELETON = """\
id: {id}
title: {title}
type: {type}
requester: {requester}
environment: {environment}
systems: [partner_gateway, {system}]
playbook: {playbook}
variables:
  tls_protocols: {variable}
window:
  start: {start}
  end: {end}
  timezone: {timezone}
rollout:
  canary: {canary}
  waves: [{wave}]
  failure_threshold: {threshold}
rollback:
  strategy: restore
verification: [verify/test_common.py, {test}]
impact:
  level: degraded
  description_en: {description}
  description_fr: Les partenaires doivent passer à TLS 1.3.
"""
VALID = {
    "id": "CHG-LAB-0009",
    "title": "Partner gateway accepts TLS 1.3 only",
    "type": "normal",
    "requester": "rm-bob",
    "environment": "lab",
    "system": "eta",
    "playbook": "configure",
    "variable": '"TLSv1.3"',
    "start": '"2026-01-01T00:00:00"',
    "end": '"2030-12-31T23:00:00"',
    "timezone": "America/Toronto",
    "canary": "1",
    "wave": '"100%"',
    "threshold": "0",
    "test": "verify/test_partner_gateway.py",
    "description": "Partners still on TLS 1.2 must upgrade.",
}
# Plain scalars that once crashed a stage, or that sit on a boundary.
TOKENS = st.sampled_from(
    [
        "9" * 5000,
        "-" + "9" * 4400,
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "0x" + "f" * 40,
        "0o" + "7" * 30,
        "1e999",
        "-1e999",
        "1e-999",
        ".inf",
        "-.inf",
        ".nan",
        "0",
        "-1",
        "1.5",
        "~",
        "null",
        "true",
        "no",
        "''",
        "[]",
        "{}",
        "[[[[[[[[[[]]]]]]]]]]",
        '"9999-12-31T23:59:59"',
        '"0001-01-01T00:00"',
        '"2099-12-31T23:59:59"',
        '"2027-02-30T02:00"',
        '"2027-03-20T22:00\\n"',
        '"CHG-DEV-0200\\n"',
        "America",
        "America/Argentina",
        "zone.tab",
        "../../etc/passwd",
        "Etc/GMT+14",
        '"\\e]0;owned\\a"',
        '"\\e[2J\\e[H"',
        '"\\u202e\\u2066\\u2069"',
        '"a\\u2028b"',
        '"\\x9b31m"',
        '"\\r\\n"',
        '"\\t"',
        "!!binary aGk=",
        "!!python/object:os.system x",
        "&anchor x",
        "*alias",
        '\'{{ lookup("pipe", "id") }}\'',
        "file:///etc/passwd",
        "http://127.0.0.1:9/x",
        ", ".join(f"ghost_{i}" for i in range(300)),
    ]
)
# Double-quoted text with any character, written as escapes (JSON's are YAML's too).
ESCAPED = st.text(max_size=40).map(json.dumps)
HOSTILE = st.one_of(TOKENS, ESCAPED)


STANDARD = """\
id: {id}
title: {title}
type: standard
template: {template}
parameters:
  banner_en: {banner}
  banner_fr: {banner}
  {parameter}: {banner}
requester: {requester}
environment: staging
systems: [{system}]
window:
  start: {start}
  end: {end}
  timezone: {timezone}
rollout:
  canary: {canary}
  waves: [{wave}]
  failure_threshold: {threshold}
rollback:
  strategy: restore
verification: [{test}]
impact:
  level: none
"""
VALID_STANDARD = {
    **VALID,
    "template": "maintenance-banner",
    "start": '"2027-03-13T09:00"',
    "end": '"2027-03-13T12:00"',
    "banner": "Staging rehearsal on Saturday.",
    "parameter": "# spare",  # a comment line until a hostile key takes its place
    "system": "portal",
    "test": "verify/test_portal.py",
}


@st.composite
def hostile_changes(draw: st.DrawFn) -> str:
    """A normal or standard change with one to three fields replaced by hostile values."""
    skeleton, valid = draw(st.sampled_from([(SKELETON, VALID), (STANDARD, VALID_STANDARD)]))
    names = sorted(name for name in valid if "{" + name + "}" in skeleton)
    fields = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    values = dict(valid)
    for field in fields:
        values[field] = draw(HOSTILE)
    return skeleton.format(**values)


# YAML fragments, as test_yamlsafe_properties.py throws them, plus the hostile tokens.
PIECES = st.one_of(
    st.sampled_from(["id: ", "systems: ", "window: ", "  start: ", "- ", "\n", "  ", ": "]),
    st.sampled_from(["{", "}", "[", "]", ", ", "? ", "---\n", "%TAG ! !x\n", "#", "\\", "é"]),
    TOKENS,
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_estate(tmp_path_factory.mktemp("hostile") / "estate")


def _validate(
    repo: Path, capsys: pytest.CaptureFixture[str], text: str, output: str
) -> tuple[int, str]:
    (repo / "changes" / "X.yaml").write_bytes(text.encode("utf-8"))
    code = main(["--repo", str(repo), "validate", "--output", output, "changes/X.yaml"])
    out = capsys.readouterr()
    assert code in (0, 1), out.err
    assert "Traceback" not in out.out + out.err
    assert not any(char in out.out for char in INVISIBLE), out.out
    return code, out.out


def _well_formed(output: str, code: int, out: str) -> None:
    if output == "json":
        assert json.loads(out)["ok"] is (code == 0)
    elif output == "codequality":
        assert isinstance(json.loads(out), list)
    elif output == "junit":
        ET.fromstring(out.split("\n", 1)[1])


SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@given(text=hostile_changes(), output=st.sampled_from(["text", "json", "junit", "codequality"]))
@SETTINGS
def test_hostile_change_requests_are_judged_never_crash(
    text: str, output: str, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _validate(repo, capsys, text, output)
    _well_formed(output, code, out)


@given(text=st.lists(PIECES, max_size=30).map("".join), output=st.sampled_from(["text", "junit"]))
@SETTINGS
def test_hostile_yaml_text_is_refused_never_crashes(
    text: str, output: str, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _validate(repo, capsys, text, output)
    _well_formed(output, code, out)
