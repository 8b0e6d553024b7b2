"""The opt-in Mitogen accelerator: detected, used when asked for, with a clean fallback.

ansible-core 2.19 deprecates third-party strategy plugins, so Mitogen can never be the
default; when it is asked for and missing, runs continue with the native tuning and the
run result says so (`RunResult.notice`), so the CLI can tell the operator in one line.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

STRATEGY = "mitogen_linear"
MISSING = (
    "accelerator asked for, but Mitogen's Ansible strategy (ansible_mitogen, from the "
    "'mitogen' 0.3.x package) is not installed beside gcmschange: running with the native "
    "tuning instead"
)


def strategy_dir() -> Path | None:
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugins = Path(next(iter(spec.submodule_search_locations))) / "plugins" / "strategy"
    return plugins if (plugins / f"{STRATEGY}.py").is_file() else None


def available() -> bool:
    return strategy_dir() is not None


def config_lines() -> list[str]:
    found = strategy_dir()
    if found is None:
        return []
    return [f"strategy_plugins = {found}", f"strategy = {STRATEGY}"]
