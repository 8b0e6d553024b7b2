"""Command-line interface: `main(argv) -> int`; verbs live in the modules of this package."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence

from gcmschange.cli import app


def _load_verbs() -> None:
    # Each verb module attaches its commands to app.root when imported; modules import
    # their heavy dependencies (ansible-runner, testinfra) inside commands so --help and
    # validate stay fast.
    for info in pkgutil.iter_modules(__path__):
        if info.name != "app":
            importlib.import_module(f"{__name__}.{info.name}")
    app.add_missing_verbs()


def main(argv: Sequence[str] | None = None) -> int:
    _load_verbs()
    return app.run(argv)
