"""The estate: systems, their dependency graph, partners, and the inventories per environment.

Inventories are read here (simple YAML inventories: one group per system, group_vars/*.yml),
without Ansible, because validation and rendering must be fast and must not run plugins.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from gcmschange import yamlsafe
from gcmschange.errors import InvalidInputError
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
    )


@dataclass(frozen=True)
class Inventory:
    environment: str
    path: Path
    hosts: dict[str, Host]  # by name
    groups: dict[str, tuple[str, ...]]  # system -> host names, in inventory order
    group_vars: dict[str, dict[str, Any]]  # "all" and per system
    # SHA-256 of exactly the bytes parsed (render cache key); "" for one built in memory.
    source_sha256: str = ""

    def hosts_of(self, systems: tuple[str, ...]) -> tuple[Host, ...]:
        names = [h for s in systems for h in self.groups.get(s, ())]
        return tuple(self.hosts[n] for n in dict.fromkeys(names))


# Ansible's vars file extensions, tried in its order after the bare name (a folder, or a file).
VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")


def vars_files(folder: Path, name: str) -> list[Path]:
    """The files Ansible's host_group_vars plugin reads for `name` under `folder`: the first of
    `name` (a folder: every file in it, sorted, recursively; or a file), `name.yml`,
    `name.yaml`, `name.json` that exists. So `group_vars/web/` hides `group_vars/web.yml`, as
    it does for Ansible, and both tools see the same variables."""
    for ext in VARS_EXTENSIONS:
        path = folder / f"{name}{ext}"
        if path.is_dir():
            return _dir_vars_files(path)
        if path.is_file():
            return [path]
    return []


def _dir_vars_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.name.startswith(".") or path.name.endswith("~"):
            continue  # hidden files and editor backups, skipped as Ansible does
        if path.is_dir() and not path.suffix:
            found += _dir_vars_files(path)
        elif path.is_file() and path.suffix in VARS_EXTENSIONS:
            found.append(path)
    return found


def _vars_of(folder: Path, name: str, parsed: list[str], root: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in vars_files(folder, name):
        data = _read_yaml(path, parsed, root) or {}
        if not isinstance(data, dict):
            raise InvalidInputError(f"{path}: expected a mapping of variables")
        merged.update(data)  # later files win key by key, as with Ansible's default merge
    return merged


def load_inventory(root: Path, environment: str) -> Inventory:
    """Read inventories/<env>/hosts.yml and its group_vars into hosts with merged variables."""
    env_dir = root / "inventories" / environment
    hosts_file = env_dir / "hosts.yml"
    if not hosts_file.is_file():
        hint = " (run `gcmschange lab up` first)" if environment == "lab" else ""
        raise InvalidInputError(f"{hosts_file}: inventory not found{hint}")
    parsed: list[str] = []
    data = _read_yaml(hosts_file, parsed, root) or {}
    children = (data.get("all") or {}).get("children") or {}
    group_vars = {
        name: _vars_of(env_dir / "group_vars", name, parsed, root) for name in ["all", *children]
    }
    hosts: dict[str, Host] = {}
    groups: dict[str, tuple[str, ...]] = {}
    for system, group in children.items():
        members = (group or {}).get("hosts") or {}
        groups[system] = tuple(members)
        for name, hvars in members.items():
            own = _vars_of(env_dir / "host_vars", name, parsed, root)
            merged = {**group_vars["all"], **group_vars[system], **(hvars or {}), **own}
            hosts[name] = Host(name=name, system=system, vars=merged)
    source = hashlib.sha256("\0\0".join(parsed).encode("utf-8")).hexdigest()
    return Inventory(environment, hosts_file, hosts, groups, group_vars, source)
