"""A cache of whole renderings, so rendering again with no input changed does almost no work.

The key is a SHA-256 over everything a template can see: the bytes of each template used
(with what it includes), the change's variables, the target hosts and their configs, and the
inventory (every host's variables are visible through `hostvars`), taken as the bytes it was
parsed from. Computing it costs a few hashes; a hit then costs one file read, against a
template render per host and file on a miss. Renderings holding secret values are never cached: the
caller passes no cache for them (`.gcmschange/` is not a place for secrets).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from gcmschange.model import Host
from gcmschange.paths import state_dir
from gcmschange.render.configs import RenderedFile, RenderedSet, template_files
from gcmschange.rules.estate import Estate, Inventory

# Bump when the renderer's environment options change what the same input renders to.
FORMAT = "gcmschange-render-cache-v2"


def _typed(value: Any) -> str:
    # Values JSON cannot spell (dates from YAML) keep their type in the key.
    return f"{type(value).__name__}:{value}"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_typed).encode()


def _inventory_key(inventory: Inventory) -> bytes:
    # The bytes the inventory was parsed from determine its groups and every host's
    # variables, and hashing them is far cheaper than serialising 10,000 hosts' variables.
    if inventory.source_sha256:
        return f"inventory-source:{inventory.source_sha256}".encode()
    return _canonical([inventory.groups, {n: h.vars for n, h in inventory.hosts.items()}])


class RenderCache:
    """Whole renderings stored as one file each: a JSON index line, then the contents."""

    def __init__(self, directory: Path, keep: int = 16) -> None:
        self.directory = directory
        self.keep = keep

    def key(
        self,
        templates_dir: Path,
        estate: Estate,
        inventory: Inventory,
        hosts: Sequence[Host],
        variables: Mapping[str, Any],
    ) -> str:
        systems = {h.system: estate.systems[h.system] for h in hosts if h.system in estate.systems}
        configs = {s: [[c.template, c.dest] for c in sys.configs] for s, sys in systems.items()}
        names = sorted({c[0] for cs in configs.values() for c in cs})
        digest = hashlib.sha256(f"{FORMAT}\0{jinja2.__version__}\0".encode())
        for path in template_files(templates_dir, names):
            rel = str(path.relative_to(templates_dir))
            digest.update(_canonical([rel, hashlib.sha256(path.read_bytes()).hexdigest()]))
        try:
            digest.update(_canonical(dict(variables)))
            digest.update(_canonical([[h.name, h.system] for h in hosts]))
            digest.update(_canonical(configs))
            digest.update(_inventory_key(inventory))
        except TypeError:
            return ""  # keys of mixed types cannot be ordered: no key, no caching
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.txt"

    def load(self, key: str, environment: str) -> RenderedSet | None:
        if not key:
            return None
        try:
            with (
                self._path(key).open("rb") as handle,
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
            ):
                return self._decode(mapped, environment)
        except (OSError, ValueError, UnicodeDecodeError, TypeError):
            return None  # unreadable, torn or edited: a miss, never a wrong rendering

    @staticmethod
    def _decode(mapped: mmap.mmap, environment: str) -> RenderedSet | None:
        cut = mapped.find(b"\n")
        if cut < 0:
            return None
        index = json.loads(mapped[:cut])
        if index.get("environment") != environment:
            return None
        # Each file decoded straight from the mapped pages: no copy of the whole entry, and
        # none per slice, so a hit costs about one pass over the bytes.
        files: list[RenderedFile] = []
        pos = cut + 1
        with memoryview(mapped) as view:
            for host, dest, template, length in index.get("files", []):
                content = str(view[pos : pos + length], "utf-8")
                files.append(RenderedFile(host, dest, template, content))
                pos += length
        if pos != len(mapped):
            return None
        return RenderedSet(environment, tuple(files))

    def store(self, key: str, rendered: RenderedSet) -> None:
        if not key:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        contents = [f.content.encode("utf-8") for f in rendered.files]
        index = {
            "environment": rendered.environment,
            "files": [
                [f.host, f.dest, f.template, len(c)]
                for f, c in zip(rendered.files, contents, strict=True)
            ],
        }
        path = self._path(key)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(json.dumps(index).encode("utf-8") + b"\n" + b"".join(contents))
        tmp.replace(path)
        self._prune()

    def _prune(self) -> None:
        try:
            entries = sorted(self.directory.glob("*.txt"), key=lambda p: p.stat().st_mtime)
        except FileNotFoundError:
            return  # another process pruned at the same time
        for old in entries[: max(0, len(entries) - self.keep)]:
            old.unlink(missing_ok=True)


def default_cache(root: Path) -> RenderCache:
    return RenderCache(state_dir(root) / "cache" / "render")
