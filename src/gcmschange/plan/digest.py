"""The plan digest: what an approval is bound to.

SHA-256 over the canonical change request, every rendered file, the playbook (and rollback
playbook), its variable spec, the templates and roles, and the inventory slice of the
target hosts. Change any byte of these and every approval of the change goes stale.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gcmschange.model import ChangeRequest
from gcmschange.render.configs import RenderedSet, template_files
from gcmschange.rules.estate import Estate, Inventory


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def _content_files(root: Path, estate: Estate, change: ChangeRequest) -> Iterable[Path]:
    playbooks = root / "playbooks"
    names = [change.playbook] + ([change.rollback.playbook] if change.rollback.playbook else [])
    for name in names:
        yield playbooks / f"{name}.yml"
        yield playbooks / f"{name}.spec.yml"
    # The templates of the target systems and everything they include, import or extend.
    names = [
        config.template
        for system in change.systems
        if system in estate.systems
        for config in estate.systems[system].configs
    ]
    yield from template_files(root / "templates", names)
    roles = root / "roles"
    if roles.is_dir():
        yield from sorted(p for p in roles.rglob("*") if p.is_file())


def change_digest(
    root: Path,
    estate: Estate,
    inventory: Inventory,
    change: ChangeRequest,
    rendered: RenderedSet,
) -> str:
    h = hashlib.sha256()
    h.update(b"gcmschange-digest-v1\0")
    h.update(_canonical(change.raw))
    for f in sorted(rendered.files, key=lambda f: (f.host, f.dest)):
        h.update(_canonical([f.host, f.dest, f.sha256]))
    for path in sorted(set(_content_files(root, estate, change))):
        rel = str(path.relative_to(root))
        data = path.read_bytes() if path.is_file() else b"<missing>"
        h.update(_canonical([rel, hashlib.sha256(data).hexdigest()]))
    targets = inventory.hosts_of(change.systems)
    h.update(_canonical([[t.name, t.system, t.vars] for t in targets]))
    return h.hexdigest()
