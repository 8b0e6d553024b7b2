"""Inventories read by Ansible itself (`ansible-inventory --list`), so gcmschange renders,
checks and verifies with exactly the hosts, groups and variables the playbooks will get: YAML
or INI, nested groups, inline `vars:`, `group_vars/` and `host_vars/` files or folders.

The branch's inventory is hostile input read before any approval, so Ansible reads it with
only the `yaml` and `ini` inventory plugins and the `host_group_vars` vars plugin enabled
(no scripts, no `constructed`, no templating), in an empty folder with an empty configuration
(no `ansible.cfg` of the branch's), with no credentials in its environment. The caller has
already read every file through the hardened loader, so an alias bomb never reaches Ansible.

One call costs about 0.6 s, so results are kept per content hash, in memory and on disk,
unless a whole file was encrypted: its plaintext never goes to disk.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from gcmschange import proc, vault
from gcmschange.errors import ExternalError, InvalidInputError
from gcmschange.yamlsafe import VaultText

_memo: dict[str, dict[str, Any]] = {}
_PLUGINS = {
    "ANSIBLE_INVENTORY_ENABLED": "yaml,ini",
    "ANSIBLE_VARS_ENABLED": "host_group_vars",
}


def _ansible_version() -> str:
    # Read from the installed metadata: ansible-core itself is never imported here.
    try:
        return metadata.version("ansible-core")
    except metadata.PackageNotFoundError:
        return "unknown"


# Part of every cache key: another ansible-core or other plugins may read the same bytes
# differently, and a view cached under other rules must not be served.
VIEW_VERSION = f"gcms-inventory-view-2\0{_ansible_version()}\0{sorted(_PLUGINS.items())}\0"


@dataclass(frozen=True)
class Listing:
    """What Ansible sees: groups with their direct hosts and child groups, and host vars."""

    groups: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]  # name -> (hosts, children)
    hostvars: dict[str, dict[str, Any]]
    vaulted: bool = False  # some host variable is an inline `!vault` value

    def members(self, group: str) -> tuple[str, ...]:
        """The hosts of `group` and of its child groups, in inventory order, once each."""
        found: dict[str, None] = {}
        seen: set[str] = set()
        todo = [group]
        while todo:
            name = todo.pop(0)
            if name in seen:
                continue
            seen.add(name)
            hosts, children = self.groups.get(name, ((), ()))
            found.update(dict.fromkeys(hosts))
            todo.extend(children)
        return tuple(found)


def _program() -> str:
    here = Path(sys.executable).parent / "ansible-inventory"
    return str(here) if here.exists() else "ansible-inventory"


def _environment(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "LANG", "LC_ALL", "TZ"}}
    empty = work / "ansible.cfg"
    empty.write_text("", encoding="utf-8")
    return env | {
        "HOME": str(work),
        "ANSIBLE_CONFIG": str(empty),
        **_PLUGINS,
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        # A file no data plugin reads (a script, a plugin config) is refused, not skipped: the
        # apply's Ansible might run it.
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
    }


def _reason(stderr: str) -> str:
    for line in stderr.splitlines():
        if "[ERROR]" in line or "ERROR!" in line:
            return line.split("]:", 1)[-1].split("ERROR!", 1)[-1].strip()
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "ansible-inventory failed"


def _run(source: Path, password_file: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gcms-inventory-") as tmp:
        work = Path(tmp)
        args = [_program(), "-i", str(source), "--list"]
        if password_file is not None:
            args += ["--vault-password-file", str(password_file)]
        try:
            done = proc.run(args, check=False, cwd=work, env=_environment(work), timeout=300)
        except ExternalError as exc:
            raise ExternalError(f"{source}: {exc.message}") from exc
    if done.returncode != 0:
        raise InvalidInputError(
            f"{source}: Ansible cannot read this inventory: {_reason(done.stderr)}"
        )
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise ExternalError(f"{source}: ansible-inventory printed no JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ExternalError(f"{source}: ansible-inventory printed no mapping")
    return data


def _values(value: Any, found: list[VaultText]) -> Any:
    """Ansible's JSON spelling of an inline vault value back into a `VaultText` (each one
    also appended to `found`)."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_vault"} and isinstance(value["__ansible_vault"], str):
            found.append(VaultText(value["__ansible_vault"]))
            return found[-1]
        return {str(k): _values(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_values(v, found) for v in value]
    return value


def _listing(data: dict[str, Any]) -> Listing:
    meta = data.get("_meta") or {}
    found: list[VaultText] = []
    hostvars = {str(h): _values(v or {}, found) for h, v in (meta.get("hostvars") or {}).items()}
    groups: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for name, group in data.items():
        if name == "_meta" or not isinstance(group, dict):
            continue
        hosts = tuple(str(h) for h in group.get("hosts") or ())
        children = tuple(str(c) for c in group.get("children") or ())
        groups[str(name)] = (hosts, children)
    for host in hostvars:
        hostvars.setdefault(host, {})
    return Listing(groups, hostvars, vaulted=bool(found))


def cache_folder() -> Path:
    """Views by content hash, per user: the same bytes give the same view in any repository."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gcmschange" / "inventory"


def read(
    root: Path, source: Path, content_key: str, *, cache_dir: Path | None, encrypted_files: bool
) -> Listing:
    """Ansible's view of the inventory at `source` (a folder or a file).

    `content_key`: a hash of every byte Ansible will read there (the caller's), so a cached
    view is used only for exactly the same files. `encrypted_files`: some file is a whole-file
    vault, whose plaintext Ansible returns in its view: then nothing is written to disk.
    """
    data = _memo.get(content_key)
    cache_file = cache_dir / f"{content_key}.json" if cache_dir is not None else None
    if data is None and cache_file is not None and not encrypted_files and cache_file.is_file():
        try:
            data = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            data = None
    if data is None:
        with vault.password_file(root) as password_file:
            data = _run(source, password_file)
        if cache_file is not None and not encrypted_files:
            cache_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial = cache_file.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(data), encoding="utf-8")
            partial.replace(cache_file)
    _memo[content_key] = data
    return _listing(data)
