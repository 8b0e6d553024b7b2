"""No copyleft code under gcmschange's MIT licence: the runtime closure's licences, listed.

Walks the installed dependency closure of `gcmschange` (runtime requirements only, no extras)
and reads each distribution's declared licence (License-Expression, License, or the
classifiers). Strong copyleft (GPL, AGPL) fails, except where the package is only ever run as
a separate program, never imported: that is aggregation, not a derived work, and each such
exception says why.
"""

from __future__ import annotations

import re
from importlib import metadata

from packaging.requirements import Requirement

# Run as separate programs, never imported by gcmschange (a test below checks the "never").
SEPARATE_PROGRAMS = {
    "ansible-core": "ansible-playbook runs as a child process of ansible-runner",
}
STRONG_COPYLEFT = re.compile(r"\b(A?GPL|GNU (Affero )?General Public)", re.IGNORECASE)
LESSER = re.compile(r"\b(LGPL|Lesser General Public|Library General Public)", re.IGNORECASE)


def _licence(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    expression = (meta.get_all("License-Expression") or [""])[0]
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if "License" in c]
    text = (meta.get_all("License") or [""])[0].splitlines()[0:1]
    return expression or "; ".join(classifiers) or (text[0] if text else "") or "UNKNOWN"


def _closure(name: str) -> dict[str, str]:
    seen: dict[str, str] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        key = current.lower().replace("_", "-")
        if key in seen:
            continue
        dist = metadata.distribution(current)
        seen[key] = _licence(dist)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def _strong_copyleft(licence: str) -> bool:
    stripped = LESSER.sub("", licence)
    return bool(STRONG_COPYLEFT.search(stripped))


def test_the_runtime_closure_has_no_strong_copyleft_library() -> None:
    closure = _closure("gcmschange")
    print("\n".join(f"{name}: {licence}" for name, licence in sorted(closure.items())))
    assert closure["gcmschange"] == "MIT"
    offending = {
        name: licence
        for name, licence in closure.items()
        if _strong_copyleft(licence) and name not in SEPARATE_PROGRAMS
    }
    assert not offending, f"copyleft under an MIT tool: {offending}"
    assert "rfc3987" not in closure  # jsonschema[format]'s GPL dependency


def test_separate_programs_are_never_imported() -> None:
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "src" / "gcmschange"
    importing = re.compile(r"^\s*(from|import)\s+ansible(\.|\s|$)", re.MULTILINE)
    found = [
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if "reference" not in p.parts and importing.search(p.read_text(encoding="utf-8"))
    ]
    assert not found
