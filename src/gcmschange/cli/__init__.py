"""Command-line interface: `main(argv) -> int`; verbs live in the modules of this package."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence

from gcmschange.cli import app, helptext

# Root options that take a value, so the verb can be found without parsing everything.
_VALUED_OPTIONS = {"--repo", "--output"}


def _verb(argv: Sequence[str]) -> str | None:
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUED_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def _load_verbs(argv: Sequence[str] = ()) -> None:
    # Each verb module attaches its commands to app.root when imported; modules import
    # their heavy dependencies (ansible-runner, testinfra) inside commands so --help and
    # validate stay fast. A verb with a module of its own name loads only that module, so
    # one module's import cost (pytest via testinfra, say) never slows another verb.
    names = [
        info.name for info in pkgutil.iter_modules(__path__) if info.name not in {"app", "helptext"}
    ]
    verb = _verb(argv)
    for name in [verb] if verb in names else names:
        importlib.import_module(f"{__name__}.{name}")
    app.add_missing_verbs()
    helptext.attach(app.root)


def main(argv: Sequence[str] | None = None) -> int:
    _load_verbs(sys.argv[1:] if argv is None else argv)
    return app.run(argv)
