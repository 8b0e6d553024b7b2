"""The built-in verification check: every managed file on a host is, byte for byte, the
approved rendering (testinfra; collected by the verification's pytest, never imported
elsewhere).

It is what makes a second Ansible run of the standard playbook unnecessary on every host:
the standard push only copies the rendered set, so "a check-mode run would change nothing"
and "each file's SHA-256 is the rendering's" are the same statement, and the second costs
one ssh command per host instead of a module run per file. A file holding a vault value is
only checked to exist: its hash is never asked for, so none travels or lands in a report.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

EXPECTED_ENV = "GCMS_VERIFY_MANAGED"
_HOST_ID = re.compile(r"\[ssh://([^\]]+)\]$")
_LINE = re.compile(r"^\\?([0-9a-f]{64}) [ *](.+)$")


def expected_for(host_name: str) -> dict[str, str]:
    """dest -> SHA-256 (or "" for a secret file: presence only) expected on `host_name`."""
    path = os.environ.get(EXPECTED_ENV)
    if not path:
        return {}
    table: dict[str, dict[str, str]] = json.loads(Path(path).read_text(encoding="utf-8"))
    return table.get(host_name, {})


def mismatches(expected: dict[str, str], sha256sum_output: str, present: set[str]) -> list[str]:
    """What differs from `expected`, given `sha256sum` output and the secret files found."""
    found: dict[str, str] = {}
    for line in sha256sum_output.splitlines():
        match = _LINE.match(line)
        if match:
            found[match.group(2)] = match.group(1)
    wrong = []
    for dest, digest in sorted(expected.items()):
        if digest == "":
            if dest not in present:
                wrong.append(f"{dest}: missing")
        elif dest not in found:
            wrong.append(f"{dest}: missing or unreadable")
        elif found[dest] != digest:
            wrong.append(f"{dest}: content differs from the approved rendering")
    return wrong


def test_managed_files_are_the_approved_rendering(
    host: Any, request: pytest.FixtureRequest
) -> None:
    match = _HOST_ID.search(request.node.nodeid)
    expected = expected_for(match.group(1)) if match else {}
    if not expected:
        pytest.skip("no managed files for this host")
    hashed = [d for d, digest in expected.items() if digest]
    output = ""
    if hashed:
        # Missing files make sha256sum exit 1 after hashing the others: judged per file below.
        output = host.run("sha256sum -- " + " ".join(shlex.quote(d) for d in hashed)).stdout
    present = {d for d, digest in expected.items() if not digest and host.file(d).is_file}
    wrong = mismatches(expected, output, present)
    assert not wrong, "; ".join(wrong)
