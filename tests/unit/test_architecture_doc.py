"""docs/architecture.md is generated from the tree: every module is on it, and it is current."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

PROJECT = Path(__file__).resolve().parents[2]
PACKAGE = PROJECT / "src" / "gcmschange"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("architecture", PROJECT / "tools/architecture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_module_of_the_package_is_on_the_page() -> None:
    page = (PROJECT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for module in PACKAGE.rglob("*.py"):
        rel = module.relative_to(PACKAGE)
        if rel.parts[0] == "reference" or module.name == "__init__.py":
            continue
        folder = "/".join(("gcmschange", *rel.parts[:-1]))
        section = page.partition(f"### `{folder}/`")[2].partition("### ")[0]
        if f"| `{module.name}` |" not in section:
            missing.append(rel.as_posix())
    assert not missing, f"not on docs/architecture.md: {missing}: run python tools/architecture.py"


def test_the_page_is_what_the_generator_makes_now() -> None:
    assert _generator().main(["--check"]) == 0, "run: python tools/architecture.py"


def test_no_module_is_named_after_a_standard_library_module() -> None:
    import sys

    clashes = [
        module.relative_to(PACKAGE).as_posix()
        for module in PACKAGE.rglob("*.py")
        if module.stem in sys.stdlib_module_names and "reference" not in module.parts
    ]
    assert not clashes
