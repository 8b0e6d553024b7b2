"""The plan digest: what an approval is bound to.

SHA-256 over the canonical change request, every rendered file, and every file of the sealed
tree (`plan.seal`): the playbooks with their vars and plugin folders, roles, collections, the
environment's whole inventory, every verification test, the templates, `ansible.cfg` and
`estate.yml`. Change any byte of these and every approval of the change goes stale; the runs
read the sealed copy, so what was hashed is what runs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gcmschange.model import ChangeRequest
from gcmschange.plan.seal import Sealed
from gcmschange.render.configs import RenderedSet


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def change_digest(change: ChangeRequest, rendered: RenderedSet, sealed: Sealed) -> str:
    h = hashlib.sha256()
    h.update(b"gcmschange-digest-v2\0")
    h.update(_canonical(change.raw))
    for f in sorted(rendered.files, key=lambda f: (f.host, f.dest)):
        h.update(_canonical([f.host, f.dest, f.sha256]))
    for rel, sha in sealed.files:
        h.update(_canonical([rel, sha]))
    return h.hexdigest()
