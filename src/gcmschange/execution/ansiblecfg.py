"""The ansible.cfg of a run: the repository's own settings, paths pinned to the sealed tree,
and the few settings gcmschange cannot let go.

Ansible engineers keep an `ansible.cfg` beside their playbooks (`roles_path`, `forks`,
`gathering`, callbacks of their own): it is honoured. What is not negotiable is forced:
host keys are checked, no retry files, no colour in logs, the vault password and the log
file are gcmschange's, and every plugin, role, collection or library path points inside the
sealed copy of the repository (those the file does not set too, so Ansible's defaults in the
controller's home and /usr/share are never searched): a run loads nothing the approvers did
not see. A path that leaves the repository is refused, naming the key.

The file is read the way Ansible reads it (`configparser` with its options: keys in any case,
`;` comments after a value, indented lines continuing a value, values taken raw), so
gcmschange judges the settings Ansible will use, not a different reading of the same bytes.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Mapping
from dataclasses import dataclass
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
# Set when the file does not: a folder of the sealed tree, missing or not, instead of
# Ansible's defaults (~/.ansible/plugins/..., /usr/share/ansible/plugins/...), which no
# approver saw and anyone with the controller's home could fill.
_UNSET_PATHS = {key: key for key in PATH_KEYS - {"collections_paths"}}
_UNSET_PATHS |= {"roles_path": "roles", "collections_path": "collections"}
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
# What a repository's ansible.cfg may set, by section: behaviour and tuning. Anything else is
# left out of the run, and the plan says so. An allow-list, because the keys that name a
# program or a file on the controller are many and grow with each Ansible (become and
# connection password files, ssh/scp/sftp executables, PKCS#11 providers, fact cache and
# callback folders, the vault password file, a log file that would hold what events mask):
# each would run or read something outside the approved copy, changeable after approval.
ALLOWED: dict[str, frozenset[str]] = {
    "defaults": frozenset(
        {
            "any_errors_fatal",
            "ansible_managed",
            "bin_ansible_callbacks",
            "callback_whitelist",
            "callbacks_enabled",
            "collections_on_ansible_version_mismatch",
            "command_warnings",
            "deprecation_warnings",
            "display_args_to_stdout",
            "display_failed_stderr",
            "display_ok_hosts",
            "display_skipped_hosts",
            "duplicate_dict_key",
            "error_on_missing_handler",
            "error_on_undefined_vars",
            "fact_caching_timeout",
            "force_handlers",
            "forks",
            "gather_subset",
            "gather_timeout",
            "gathering",
            "hash_behaviour",
            "inject_facts_as_vars",
            "internal_poll_interval",
            "interpreter_python",
            "interpreter_python_fallback",
            "invalid_task_attribute_failed",
            "jinja2_native",
            "jinja2_native_warning",
            "localhost_warning",
            "max_diff_size",
            "module_compression",
            "nocows",
            "poll_interval",
            "private_role_vars",
            "remote_port",
            "remote_tmp",
            "remote_user",
            "show_custom_stats",
            "stdout_callback",
            "strategy",
            "system_warnings",
            "task_timeout",
            "timeout",
            "use_persistent_connections",
            "verbosity",
        }
    ),
    "ssh_connection": frozenset(
        {
            "control_path",
            "pipelining",
            "reconnection_retries",
            "retries",
            "scp_extra_args",
            "scp_if_ssh",
            "sftp_batch_mode",
            "sftp_extra_args",
            "ssh_args",
            "ssh_common_args",
            "ssh_extra_args",
            "ssh_transfer_method",
            "timeout",
            "transfer_method",
            "usetty",
        }
    ),
    "privilege_escalation": frozenset(
        {"become", "become_allow_same_user", "become_flags", "become_method", "become_user"}
    ),
    "persistent_connection": frozenset(
        {"command_timeout", "connect_retry_timeout", "connect_timeout"}
    ),
    "diff": frozenset({"always", "context"}),
}
ANY_KEY = frozenset({"colors"})  # colour names only
# ssh options that turn host key checking off, read a file outside the approved copy, or run
# a command on the controller (ProxyJump, which only runs ssh again, stays allowed).
_SSH_REFUSED = re.compile(
    r"(StrictHostKeyChecking|UserKnownHostsFile|GlobalKnownHostsFile|KnownHostsCommand"
    r"|ProxyCommand|LocalCommand|PermitLocalCommand|IdentityFile|CertificateFile"
    r"|PKCS11Provider|SecurityKeyProvider|IdentityAgent|Include|(?<!\S)-[FiEI](?=\S|\s|$))",
    re.IGNORECASE,
)
_SSH_ARGS = frozenset({"ssh_args", "ssh_common_args", "ssh_extra_args", "scp_extra_args"})
_SSH_ARGS |= {"sftp_extra_args"}
_SHOWN = frozenset({"callbacks_enabled", "callback_whitelist", "stdout_callback", "strategy"})
_PATH_VARIABLES = ("$", "~", "{{")


@dataclass(frozen=True)
class _Setting:
    section: str
    key: str
    value: str


def _parser(text: str) -> configparser.ConfigParser:
    """A parser with Ansible's own options, holding `text`."""
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",))
    parser.read_string(text, source="ansible.cfg")
    return parser


def _read(own: Path) -> list[_Setting]:
    """Every setting of `own` as Ansible reads it (same parser, same options)."""
    try:
        parser = _parser(own.read_text(encoding="utf-8"))
        found = [
            _Setting(section, key, parser.get(section, key, raw=True))
            for section in parser.sections()
            for key in parser.options(section)
        ]
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"ansible.cfg: cannot be read: {_one_line(str(exc))}") from exc
    for setting in found:
        _check(setting)
    return found


def _folders(value: str) -> list[str]:
    """The repository folders one path setting names (relative, normalised). Entries that
    leave the repository, or name it whole or its git or state folders, are not folders to
    seal (`compose` refuses the first; the others hold no content of theirs)."""
    found = []
    for raw in value.split(":"):
        parts = Path(raw.strip()).parts
        if not parts or Path(raw.strip()).is_absolute() or ".." in parts:
            continue
        clean = Path(*[p for p in parts if p != "."]).as_posix()
        if clean not in ("", ".") and clean.split("/")[0] not in (".git", ".gcmschange"):
            found.append(clean)
    return found


def folders_named(text: str | None) -> tuple[str, ...]:
    """The repository folders an ansible.cfg's path settings name, in the order written:
    what the sealed copy must hold for those paths to find anything."""
    if not text:
        return ()
    try:
        parser = _parser(text)
    except configparser.Error:
        return ()  # `compose` says what is wrong with it, when a run reads it
    found = [
        folder
        for section in parser.sections()
        for key in parser.options(section)
        if key in PATH_KEYS
        for folder in _folders(parser.get(section, key, raw=True))
    ]
    return tuple(dict.fromkeys(found))


def roles_path(root: Path) -> tuple[str, ...]:
    """The repository folders Ansible takes roles from (after a playbook's own `roles/`):
    what the repository's ansible.cfg names as `roles_path`, else `roles`."""
    own = root / "ansible.cfg"
    named = [s.value for s in _read(own) if s.key == "roles_path"] if own.is_file() else []
    return tuple(dict.fromkeys(_folders(named[-1]))) if named else ("roles",)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _check(setting: _Setting) -> None:
    where = f"ansible.cfg: [{setting.section}] {setting.key}"
    if "\n" in setting.value:
        raise InvalidInputError(
            f"{where}: a value on several lines (an indented line continues the setting "
            "above it); write each setting on a line of its own"
        )
    if setting.key in PATH_KEYS and any(v in setting.value for v in _PATH_VARIABLES):
        raise InvalidInputError(
            f"{where} = {setting.value}: a variable in a path ($, ~, {{{{CWD}}}}) could lead "
            "out of the approved tree; name folders of the repository"
        )
    option = _SSH_REFUSED.search(setting.value) if setting.key in _SSH_ARGS else None
    if option is not None:
        raise InvalidInputError(
            f"{where}: {option.group(1)}: host keys are always checked, and an ssh option may "
            "not name a file or run a command on the controller (the estate's ssh_config and "
            "inventory say how to connect; ProxyJump reaches a bastion)"
        )


def _taken(setting: _Setting) -> bool:
    """Whether the run takes this setting of the repository's (pinned, if it is a path)."""
    if setting.section == "defaults" and (
        setting.key in PATH_KEYS or setting.key in FORCED_DEFAULTS
    ):
        return True
    if setting.section == "ssh_connection" and setting.key in (*FORCED_SSH, "host_key_checking"):
        return True  # replaced by gcmschange's own value
    return setting.section in ANY_KEY or setting.key in ALLOWED.get(setting.section, ())


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
    each (`[defaults] host_key_checking: False -> True (gcmschange owns it)`), and the ssh
    options every connection will use, for the plan: an engineer sees which of their
    settings did not apply, and approvers see what runs on the controller."""
    own = content / "ansible.cfg"
    if not own.is_file():
        return ()
    found: list[str] = []
    for s in _read(own):
        if s.section == "defaults" and s.key in FORCED_DEFAULTS:
            if s.value != FORCED_DEFAULTS[s.key]:
                forced = FORCED_DEFAULTS[s.key]
                found.append(f"[defaults] {s.key}: {s.value} -> {forced} (gcmschange owns it)")
        elif not _taken(s):
            found.append(f"[{s.section}] {s.key}: left out (not a setting a repository sets)")
        elif s.section == "ssh_connection" and s.key in FORCED_SSH:
            found.append(f"[ssh_connection] {s.key}: {s.value} -> gcmschange's (it owns it)")
        elif s.section == "ssh_connection" and s.key == "host_key_checking":
            found.append(f"[ssh_connection] {s.key}: {s.value} -> True (gcmschange owns it)")
        elif s.key in PATH_KEYS:
            found.append(f"[{s.section}] {s.key}: pinned inside the approved copy")
        elif s.key in _SSH_ARGS:
            found.append(f"[{s.section}] {s.key} = {s.value} (every ssh connection uses it)")
        elif s.key in _SHOWN:
            found.append(f"[{s.section}] {s.key} = {s.value} (runs with every task's result)")
    return tuple(found)


def compose(
    content: Path | None, ours: Mapping[str, Mapping[str, str]], forced_ssh: Mapping[str, str]
) -> str:
    """The text of the run's ansible.cfg: `ours` (gcmschange's tuning) under the repository's
    `ansible.cfg` (when `content` has one), then the forced settings and pinned paths."""
    parser = configparser.ConfigParser(interpolation=None)
    for section, values in ours.items():
        parser[section] = dict(values)
    own = content / "ansible.cfg" if content is not None else None
    if own is not None and own.is_file():
        for s in _read(own):
            if not _taken(s):
                continue
            if not parser.has_section(s.section):
                parser.add_section(s.section)
            # `own` exists only when `content` does: its paths are pinned to it.
            pinned = _pinned(own.parent, s.key, s.value) if s.key in PATH_KEYS else s.value
            parser[s.section][s.key] = pinned
    if not parser.has_section("defaults"):
        parser.add_section("defaults")
    defaults = parser["defaults"]
    if "collections_paths" in defaults:  # the older spelling of the same setting
        defaults.setdefault("collections_path", defaults.pop("collections_paths"))
    if content is not None:
        for key, folder in _UNSET_PATHS.items():
            defaults.setdefault(key, str(content.resolve() / folder))
        _requirements_paths(content, defaults)
    defaults.update(FORCED_DEFAULTS)
    if not parser.has_section("ssh_connection"):
        parser.add_section("ssh_connection")
    parser["ssh_connection"].update(forced_ssh)
    parser["ssh_connection"]["host_key_checking"] = "True"
    lines: list[str] = []
    for section in parser.sections():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v}" for k, v in parser[section].items()]
        lines.append("")
    return "\n".join(lines)
