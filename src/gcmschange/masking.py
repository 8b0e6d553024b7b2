"""Masking of secret values, for every output, artifact, event, notice and audit entry.

A change variable is secret when an argument spec of its playbook (`playbooks/<name>.meta.yml`,
or a role's `meta/argument_specs.yml`) marks it `secret: true` or `no_log: true`. Masking
replaces the value itself wherever it appears, so it also catches the value after Ansible or a
template has copied it into free text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gcmschange import vault
from gcmschange.model import ChangeRequest
from gcmschange.rules import argspecs
from gcmschange.yamlsafe import VaultText

MASK = "********"


def _variants(secret: str) -> list[str]:
    # JSON writers escape quotes, backslashes and non-ASCII, so the escaped spelling of a
    # secret must be masked as well as the plain one.
    escaped = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    # A template may hand a secret on encoded (b64encode, basic auth headers, Kubernetes
    # secrets): its base64 spellings are masked too.
    raw = secret.encode("utf-8")
    encoded = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    escaped |= encoded | {e.rstrip("=") for e in encoded}
    return [secret, *sorted(escaped - {secret})]


def _ordered(secrets: Iterable[str]) -> list[str]:
    # Longest first, so a secret that contains another is masked whole.
    unique = {v for s in secrets if s for v in _variants(s)}
    return sorted(unique, key=lambda s: (-len(s), s))


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of every secret replaced by `MASK`."""
    for secret in _ordered(secrets):
        text = text.replace(secret, MASK)
    return text


def mask_bytes(data: bytes, secrets: Iterable[str]) -> bytes:
    """The byte-level twin of `mask_text`, for files whose encoding is unknown."""
    for secret in _ordered(secrets):
        data = data.replace(secret.encode("utf-8"), MASK.encode("utf-8"))
    return data


def mask_data(value: Any, secrets: Iterable[str], keys: Iterable[str] = ()) -> Any:
    """A copy of JSON-like `value` with secrets masked in every string, and every value
    stored under one of `keys` (secret variable names) replaced whole."""
    ordered = tuple(_ordered(secrets))
    names = frozenset(keys)
    return _mask_value(value, ordered, names)


def _mask_value(value: Any, ordered: tuple[str, ...], names: frozenset[str]) -> Any:
    if isinstance(value, str):
        return mask_text(value, ordered)
    if isinstance(value, Mapping):
        return {k: MASK if k in names else _mask_value(v, ordered, names) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(v, ordered, names) for v in value]
    return value


def secret_names(root: Path, playbook: str) -> tuple[str, ...]:
    """Variables the playbook's argument specs mark `secret: true` or `no_log: true`: its own
    and those of the roles it applies (none without a spec)."""
    if not playbook:
        return ()
    # Read leniently (no schema check): a spec validate refused still names its secrets.
    return argspecs.for_playbook(root, playbook, check=False).secret_names()


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def secret_values(root: Path, change: ChangeRequest) -> tuple[str, ...]:
    """The values of the change's secret variables (and standard-change parameters), its
    vault values opened (when the password is at hand), and every vault value this process
    has opened anywhere else (inventories)."""
    names = secret_names(root, change.playbook)
    found: list[str] = []
    for source in (change.variables, change.parameters):
        for name, value in source.items():
            if isinstance(value, VaultText):
                if vault.password(root) is not None:
                    vault.decrypt(value, f"{change.id}: variable {name}", root)
            elif name in names and value not in (None, ""):
                found.append(_as_text(value))
                if not isinstance(value, str):
                    found.append(str(value))
    return tuple(dict.fromkeys((*found, *sorted(vault.revealed()))))
