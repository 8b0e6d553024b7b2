"""The opt-in Mitogen accelerator: detected, used when asked for, with a clean fallback.

ansible-core 2.19 deprecates third-party strategy plugins, so Mitogen can never be the
default; when it is asked for and missing, runs continue with the native tuning.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def strategy_dir() -> Path | None:
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugins = Path(next(iter(spec.submodule_search_locations))) / "plugins" / "strategy"
    return plugins if plugins.is_dir() else None


def available() -> bool:
    return strategy_dir() is not None


def config_lines() -> list[str]:
    found = strategy_dir()
    if found is None:
        return []
    return [f"strategy_plugins = {found}", "strategy = mitogen_linear"]
