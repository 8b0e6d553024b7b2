"""The estate: systems, their dependency graph, partners, and the inventories per environment.

Inventories are read by Ansible itself (`execution.inventory`), after every file was read
through the hardened loader, so both tools see the same hosts, groups and variables.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from gcmschange import vault, yamlsafe
from gcmschange.errors import InvalidInputError
from gcmschange.execution import inventory as ansible_inventory
from gcmschange.execution import nodes as exec_nodes
from gcmschange.model import BlastRadius, Host


@dataclass(frozen=True)
class ConfigFile:
    template: str  # relative to templates/
    dest: str  # absolute path on the host


@dataclass(frozen=True)
class System:
    id: str
    name_en: str
    name_fr: str
    owner: str
    depends_on: tuple[str, ...]
    configs: tuple[ConfigFile, ...]
    verify: tuple[str, ...]


@dataclass(frozen=True)
class Partner:
    id: str
    name_en: str
    name_fr: str
    kind: str
    contact: str
    consumes: tuple[str, ...]


@dataclass(frozen=True)
class Estate:
    root: Path
    name_en: str
    name_fr: str
    notices_from: str
    environments: tuple[str, ...]
    systems: dict[str, System]
    partners: dict[str, Partner]
    # environment -> the execution nodes that run its playbooks (none: the controller does)
    execution_nodes: Mapping[str, tuple[exec_nodes.ExecNode, ...]] = field(default_factory=dict)

    def dependents(self, system: str) -> tuple[str, ...]:
        """Systems that depend directly on `system`."""
        return self._dependents.get(system, ())

    @cached_property
    def _dependents(self) -> dict[str, tuple[str, ...]]:
        # The graph reversed once, so a walk costs its edges, not edges times systems.
        found: dict[str, dict[str, None]] = {}
        for system in self.systems.values():
            for dep in system.depends_on:
                found.setdefault(dep, {})[system.id] = None
        return {dep: tuple(users) for dep, users in found.items()}

    @cached_property
    def _depends_on(self) -> dict[str, tuple[str, ...]]:
        return {sid: s.depends_on for sid, s in self.systems.items()}

    @cached_property
    def _reach(self) -> dict[str, frozenset[str]]:
        """Estate system -> itself and every system either way along the graph (memo)."""
        return {}

    def blast_radius(self, systems: tuple[str, ...]) -> BlastRadius:
        """The targets plus every system downstream of them, and the partners they feed.

        Linear in the targets and the graph: names not in the estate (a hostile change may
        list thousands) have nothing downstream and cost one lookup each.
        """
        seen = _walk(systems, self._dependents)
        partners = tuple(
            p.id for p in self.partners.values() if not seen.keys().isdisjoint(p.consumes)
        )
        return BlastRadius(systems=tuple(seen), partners=partners)

    def related_to(self, system: str) -> frozenset[str]:
        """`system` and every system it depends on or that depends on it (transitively)."""
        found = self._reach.get(system)
        if found is None:
            down, up = _walk((system,), self._dependents), _walk((system,), self._depends_on)
            found = frozenset((*down, *up))
            if system in self.systems:  # kept for the estate's own names only: a bounded set
                self._reach[system] = found
        return found

    def related(self, a: str, b: str) -> bool:
        """True when a and b are the same system or one depends on the other (transitively)."""
        return a == b or b in self.related_to(a)


def _walk(start: Iterable[str], edges: dict[str, tuple[str, ...]]) -> dict[str, None]:
    """`start` and everything reachable from it along `edges`, in breadth-first order."""
    seen = dict.fromkeys(start)
    queue = deque(seen)
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in seen:
                seen[nxt] = None
                queue.append(nxt)
    return seen


def find_root(start: Path) -> Path:
    """The repository root: the nearest directory at or above `start` holding estate.yml."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / "estate.yml").is_file():
            return candidate
    raise InvalidInputError(f"{start}: no estate.yml here or in any parent (use --repo PATH)")


# Inventories of large fleets exceed a change request's limit many times over.
ESTATE_FILE_LIMIT = 64 * 1024 * 1024


def _read_yaml(path: Path, sources: list[str] | None = None, root: Path | None = None) -> Any:
    """Through the hardened loader, as validation reads it: what is checked is what is used."""
    if root is None:
        raw = yamlsafe.read_limited(path, limit=ESTATE_FILE_LIMIT)
    else:
        raw = yamlsafe.read_inside(root, path, limit=ESTATE_FILE_LIMIT)
    if sources is not None:
        sources.append(f"{path.name}\0{raw.decode('utf-8', errors='replace')}")
    return yamlsafe.load_bytes(raw, str(path), limit=ESTATE_FILE_LIMIT).data


def load_estate(root: Path) -> Estate:
    data = _read_yaml(root / "estate.yml", root=root)
    if not isinstance(data, dict):
        raise InvalidInputError(f"{root / 'estate.yml'}: expected a mapping at the top level")
    org = data.get("organisation", {})
    systems = {
        sid: System(
            id=sid,
            name_en=s["name_en"],
            name_fr=s["name_fr"],
            owner=s["owner"],
            depends_on=tuple(s.get("depends_on", ())),
            configs=tuple(ConfigFile(c["template"], c["dest"]) for c in s.get("configs", ())),
            verify=tuple(s.get("verify", ())),
        )
        for sid, s in data["systems"].items()
    }
    partners = {
        pid: Partner(
            id=pid,
            name_en=p["name_en"],
            name_fr=p["name_fr"],
            kind=p["kind"],
            contact=p["contact"],
            consumes=tuple(p.get("consumes", ())),
        )
        for pid, p in data.get("partners", {}).items()
    }
    return Estate(
        root=root,
        name_en=org.get("name_en", ""),
        name_fr=org.get("name_fr", ""),
        notices_from=org.get("notices_from", "gcmschange@localhost"),
        environments=tuple(data["environments"]),
        systems=systems,
        partners=partners,
        execution_nodes={
            str(env): exec_nodes.parse(raw, f"estate.yml: execution_nodes.{env}")
            for env, raw in (data.get("execution_nodes") or {}).items()
        },
    )


@dataclass(frozen=True)
class Inventory:
    environment: str
    path: Path  # the inventory source Ansible is given: the environment's folder
    hosts: dict[str, Host]  # by name
    groups: dict[str, tuple[str, ...]]  # group -> host names (child groups' too), in order
    # SHA-256 of exactly the bytes Ansible reads (render cache key); "" for one built in memory.
    source_sha256: str = ""
    # Whether some host variable is an inline `!vault` value, as the reader saw while
    # converting them; None (one built in memory): look, when asked.
    vaulted: bool | None = None

    @property
    def holds_vault(self) -> bool:
        if self.vaulted is not None:
            return self.vaulted
        return any(vault_in(h.vars) for h in self.hosts.values())

    def hosts_of(self, systems: tuple[str, ...]) -> tuple[Host, ...]:
        names = [h for s in systems for h in self.groups.get(s, ())]
        return tuple(self.hosts[n] for n in dict.fromkeys(names))


# What Ansible skips in an inventory folder (its inventory_ignore_extensions and patterns).
_IGNORED_SUFFIXES: tuple[str, ...] = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md")
_IGNORED_SUFFIXES += (".txt", ".rst", ".orig", ".cfg", ".retry")
_VARS_FOLDERS = frozenset({"group_vars", "host_vars"})
_SPECIAL_GROUPS = frozenset({"all", "ungrouped"})


def inventory_sources(env_dir: Path) -> list[Path]:
    """The files Ansible parses as inventory in the environment's folder (not its vars)."""
    if not env_dir.is_dir():
        return []
    found: list[Path] = []
    for path in sorted(env_dir.rglob("*")):
        rel = path.relative_to(env_dir).parts
        if rel[0] in _VARS_FOLDERS or any(p.startswith(".") for p in rel):
            continue
        if path.is_file() and not path.name.endswith(_IGNORED_SUFFIXES):
            found.append(path)
    return found


def borrow_inventory(source_root: Path, tree: Path, environment: str) -> None:
    """Give `tree` (an exported commit) the inventory of `source_root` when it has none: the
    lab's is generated by `lab up` and never committed, and a base must reach the same hosts."""
    mine, theirs = tree / "inventories" / environment, source_root / "inventories" / environment
    if inventory_sources(mine):
        return
    for path in inventory_sources(theirs):
        target = mine / path.relative_to(theirs)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def _files_under(env_dir: Path) -> list[Path]:
    """Every file below `env_dir`, not following links: a link anywhere (to a file or to a
    folder, inside or outside the repository) is refused, because Ansible would follow it
    and read what the hardened reader never saw."""
    if env_dir.is_symlink():
        raise InvalidInputError(f"{env_dir}: a link; an inventory holds regular files only")
    found: list[Path] = []
    for folder, dirs, files in os.walk(env_dir, followlinks=False):
        for name in (*dirs, *files):
            path = Path(folder) / name
            if path.is_symlink():
                raise InvalidInputError(f"{path}: a link; an inventory holds regular files only")
        found += [Path(folder) / name for name in files]
    return sorted(found)


def _guard(root: Path, env_dir: Path, unopened: list[Path] | None = None) -> tuple[str, bool]:
    """Read every file Ansible will read there through the hardened reader (regular files
    inside the repository, no links, size-capped, YAML without aliases or unknown tags),
    open the whole-file vaults so their values are masked, and return the hash of all these
    bytes and whether a whole-file vault was among them. With `unopened` and no vault
    password, a whole-file vault is not opened but listed there."""
    digest = hashlib.sha256(ansible_inventory.VIEW_VERSION.encode())
    encrypted = False
    for path in _files_under(env_dir):
        rel = path.relative_to(env_dir)
        if any(part.startswith(".") for part in rel.parts) or path.name.endswith(_IGNORED_SUFFIXES):
            continue
        raw = yamlsafe.read_inside(root, path, limit=ESTATE_FILE_LIMIT)
        digest.update(f"{rel}\0{len(raw)}\0".encode())
        digest.update(raw)
        if vault.is_vaulted(raw) and unopened is not None and not vault.given():
            unopened.append(path)
        elif vault.is_vaulted(raw):
            encrypted = True
            plain = vault.decrypt(raw.decode("ascii", "replace"), str(path), root)
            _reveal_strings(
                yamlsafe.load_bytes(plain.encode(), str(path), limit=ESTATE_FILE_LIMIT).data
            )
        elif path.suffix in {".yml", ".yaml", ".json"} or rel.parts[0] in _VARS_FOLDERS:
            yamlsafe.load_bytes(raw, str(path), limit=ESTATE_FILE_LIMIT)
    return digest.hexdigest(), encrypted


def _reveal_strings(value: Any) -> None:
    # Every text of a wholly encrypted file is taken for a secret: its author encrypted it all.
    if isinstance(value, str):
        vault.reveal(value)
    elif isinstance(value, dict):
        for item in value.values():
            _reveal_strings(item)
    elif isinstance(value, list):
        for item in value:
            _reveal_strings(item)


def load_inventory(root: Path, environment: str, *, shape_only: bool = False) -> Inventory:
    """The environment's inventory as Ansible reads it (`inventories/<env>/`: YAML or INI,
    group_vars and host_vars), with each host's merged variables and its system.

    `shape_only`: for what needs hosts and groups, not every value (validation): without a
    vault password, the variables of whole-file vaults are left out instead of refused, so
    the people and jobs that validate need not hold the operator's secret."""
    env_dir = root / "inventories" / environment
    if not inventory_sources(env_dir):
        hint = " (run `gcmschange lab up` first)" if environment == "lab" else ""
        raise InvalidInputError(f"{env_dir / 'hosts.yml'}: inventory not found{hint}")
    unopened: list[Path] = []
    key, encrypted = _guard(root, env_dir, unopened if shape_only else None)
    if unopened:
        with tempfile.TemporaryDirectory(prefix="gcms-shape-") as tmp:
            copy = Path(tmp) / environment
            shutil.copytree(env_dir, copy, ignore=_leaving_out(unopened))
            listing = ansible_inventory.read(
                root, copy, f"{key}-shape", cache_dir=None, encrypted_files=True
            )
    else:
        cache = ansible_inventory.cache_folder()
        listing = ansible_inventory.read(
            root, env_dir, key, cache_dir=cache, encrypted_files=encrypted
        )
    groups = {name: listing.members(name) for name in listing.groups if name not in _SPECIAL_GROUPS}
    system_of: dict[str, str] = {}
    for name, (direct, _children) in listing.groups.items():
        if name not in _SPECIAL_GROUPS:
            for host in direct:
                system_of.setdefault(host, name)
    hosts = {
        name: Host(name=name, system=system_of.get(name, ""), vars=hvars)
        for name, hvars in listing.hostvars.items()
    }
    return Inventory(environment, env_dir, hosts, groups, key, vaulted=listing.vaulted)


def _leaving_out(unopened: list[Path]) -> Callable[[str, list[str]], set[str]]:
    left = {p.resolve() for p in unopened}

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if (Path(folder) / n).resolve() in left}

    return ignore


def vault_in(value: Any) -> bool:
    """Whether `value` holds an inline vault value anywhere inside it."""
    if isinstance(value, vault.VaultText):
        return True
    if isinstance(value, Mapping):
        return any(vault_in(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(vault_in(v) for v in value)
    return False
