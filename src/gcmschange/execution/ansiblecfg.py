"""The ansible.cfg of a run: the repository's own settings, paths pinned to the sealed tree,
and the few settings gcmschange cannot let go.

Ansible engineers keep an `ansible.cfg` beside their playbooks (`roles_path`, `forks`,
`gathering`, callbacks of their own): it is honoured. What is not negotiable is forced:
host keys are checked, no retry files, no colour in logs, and every plugin, role, collection
or library path points inside the sealed copy of the repository, so a run loads nothing the
approvers did not see. A path that leaves the repository is refused, naming the key.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path

from gcmschange.errors import InvalidInputError

# Keys whose values are colon-separated paths Ansible loads code or content from.
PATH_KEYS = frozenset(
    {
        "roles_path",
        "collections_path",
        "collections_paths",
        "library",
        "module_utils",
        "action_plugins",
        "become_plugins",
        "cache_plugins",
        "callback_plugins",
        "cliconf_plugins",
        "connection_plugins",
        "doc_fragment_plugins",
        "filter_plugins",
        "httpapi_plugins",
        "inventory_plugins",
        "lookup_plugins",
        "netconf_plugins",
        "strategy_plugins",
        "terminal_plugins",
        "test_plugins",
        "vars_plugins",
    }
)
FORCED_SSH = frozenset({"control_path_dir"})  # set by the runner: one socket folder per user
REQUIREMENTS = ".gcms-requirements"  # plan.requirements installs there, in the sealed tree
FORCED_DEFAULTS = {
    # Collections come from the sealed tree (collections/, requirements.yml), never from
    # whatever Python package happens to be installed beside the controller.
    "collections_scan_sys_path": "False",
    "host_key_checking": "True",
    "retry_files_enabled": "False",
    "nocolor": "True",
}


def _pinned(content: Path, key: str, value: str) -> str:
    entries = []
    for raw in value.split(":"):
        if not raw.strip():
            continue
        path = (content / raw.strip()).resolve()
        if not path.is_relative_to(content.resolve()):
            raise InvalidInputError(
                f"ansible.cfg: {key} = {value}: {raw.strip()} is outside the repository; "
                "a run loads code only from the approved tree"
            )
        entries.append(str(path))
    return ":".join(entries)


def _requirements_paths(content: Path, defaults: configparser.SectionProxy) -> None:
    """What requirements.yml installed into the sealed tree is found after the repository's
    own roles and collections, whatever paths its ansible.cfg names."""
    for key, folder in (("roles_path", "roles"), ("collections_path", "collections")):
        installed = content.resolve() / REQUIREMENTS / folder
        if installed.is_dir():
            defaults[key] = f"{defaults[key]}:{installed}"


def overrides(content: Path) -> tuple[str, ...]:
    """What the run's ansible.cfg does not take as the repository's ansible.cfg says, one line
    each (`[defaults] host_key_checking: False -> True (gcmschange owns it)`), for the plan:
    an engineer sees which of their settings did not apply, and why."""
    own = content / "ansible.cfg"
    if not own.is_file():
        return ()
    theirs = _CaseKeeping(interpolation=None)
    try:
        theirs.read_string(own.read_text(encoding="utf-8"), source="ansible.cfg")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"ansible.cfg: cannot be read: {exc}") from exc
    found: list[str] = []
    for section in theirs.sections():
        for key, value in theirs.items(section, raw=True):
            if section == "defaults" and key in FORCED_DEFAULTS and value != FORCED_DEFAULTS[key]:
                found.append(
                    f"[defaults] {key}: {value} -> {FORCED_DEFAULTS[key]} (gcmschange owns it)"
                )
            elif section == "ssh_connection" and key in FORCED_SSH:
                found.append(f"[ssh_connection] {key}: {value} -> gcmschange's (it owns it)")
            elif key in PATH_KEYS:
                found.append(f"[{section}] {key}: pinned inside the approved copy")
    return tuple(found)


class _CaseKeeping(configparser.ConfigParser):
    """Ansible's keys are case-sensitive in meaning: keep them as written."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def compose(
    content: Path | None, ours: Mapping[str, Mapping[str, str]], forced_ssh: Mapping[str, str]
) -> str:
    """The text of the run's ansible.cfg: `ours` (gcmschange's tuning) under the repository's
    `ansible.cfg` (when `content` has one), then the forced settings and pinned paths."""
    parser = _CaseKeeping(interpolation=None)
    for section, values in ours.items():
        parser[section] = dict(values)
    own = content / "ansible.cfg" if content is not None else None
    if own is not None and own.is_file():
        theirs = _CaseKeeping(interpolation=None)
        try:
            theirs.read_string(own.read_text(encoding="utf-8"), source="ansible.cfg")
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"ansible.cfg: cannot be read: {exc}") from exc
        for section in theirs.sections():
            if not parser.has_section(section):
                parser.add_section(section)
            for key, value in theirs.items(section, raw=True):
                # `own` exists only when `content` does: its paths are pinned to it.
                pinned = _pinned(own.parent, key, value) if key in PATH_KEYS else value
                parser[section][key] = pinned
    defaults = parser["defaults"] if parser.has_section("defaults") else None
    if defaults is None:
        parser.add_section("defaults")
        defaults = parser["defaults"]
    if content is not None:
        defaults.setdefault("roles_path", str(content.resolve() / "roles"))
        defaults.setdefault("collections_path", str(content.resolve() / "collections"))
        _requirements_paths(content, defaults)
    defaults.update(FORCED_DEFAULTS)
    if not parser.has_section("ssh_connection"):
        parser.add_section("ssh_connection")
    parser["ssh_connection"].update(forced_ssh)
    lines: list[str] = []
    for section in parser.sections():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v}" for k, v in parser[section].items()]
        lines.append("")
    return "\n".join(lines)
