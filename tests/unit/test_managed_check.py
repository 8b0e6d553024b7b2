"""The built-in managed-files check: the table it is given and how it judges a host's answer.
On real hosts it runs in every lab apply test (each wave's verification)."""

from __future__ import annotations

import hashlib

from gcmschange.execution.managed_check import mismatches
from gcmschange.render.configs import RenderedFile, RenderedSet


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_table_holds_each_hosts_file_hashes_and_no_hash_of_a_secret_file() -> None:
    rendered = RenderedSet(
        "lab",
        (
            RenderedFile("a", "/etc/x.conf", "x.j2", "one\n"),
            RenderedFile("a", "/etc/secret.conf", "s.j2", "password=hunter2\n", secret=True),
            RenderedFile("b", "/etc/x.conf", "x.j2", "two\n"),
        ),
    )
    assert rendered.expected(["a"]) == {"a": {"/etc/x.conf": _sha("one\n"), "/etc/secret.conf": ""}}
    assert rendered.expected(["b", "c"]) == {"b": {"/etc/x.conf": _sha("two\n")}}


def test_a_host_holding_exactly_the_rendering_passes() -> None:
    expected = {"/etc/x.conf": _sha("one\n"), "/etc/s.conf": ""}
    output = _sha("one\n") + "  /etc/x.conf\n"
    assert mismatches(expected, output, {"/etc/s.conf"}) == []


def test_a_changed_missing_or_absent_secret_file_is_named() -> None:
    expected = {"/etc/x.conf": _sha("one\n"), "/etc/y.conf": _sha("y"), "/etc/s.conf": ""}
    output = _sha("edited by hand\n") + "  /etc/x.conf\nsha256sum: /etc/y.conf: No such file\n"
    assert mismatches(expected, output, set()) == [
        "/etc/s.conf: missing",
        "/etc/x.conf: content differs from the approved rendering",
        "/etc/y.conf: missing or unreadable",
    ]
