"""Verification of the audit chain: which entry is the first bad one, and why.

Kept apart from `audit.py` (which appends) so the rules an auditor relies on read in one
place. Entries are numbered from 1 by their line in the log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FIELDS = ("seq", "time", "actor", "event", "outcome", "change", "digest", "details", "prev", "hash")


@dataclass(frozen=True)
class AuditReport:
    ok: bool
    entries: int  # complete entries in the log
    first_bad: int | None = None  # 1-based entry number
    reason: str = ""
    truncated_tail: bool = False  # an append was interrupted: the last line is incomplete
    head: str = ""  # hash of the last good entry
    head_checked: bool = False  # the log's end was compared with audit.head

    def __str__(self) -> str:
        if self.first_bad is not None:
            return f"entry {self.first_bad}: {self.reason}"
        return f"audit chain intact: {self.entries} entries, head {self.head[:16] or '-'}"


def parse_entry(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """The entry on one line, or None and why it is not one."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not valid UTF-8"
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    reason = _shape_problem(value)
    return (None, reason) if reason else (value, "")


def _shape_problem(value: Any) -> str:
    if not isinstance(value, dict):
        return "not a JSON object"
    missing = [f for f in FIELDS if f not in value]
    if missing:
        return f"missing field '{missing[0]}'"
    extra = sorted(set(value) - set(FIELDS))
    if extra:
        return f"unexpected field '{extra[0]}'"
    if not isinstance(value["seq"], int) or not isinstance(value["hash"], str):
        return "seq must be an integer and hash a string"
    return ""


def _link_problem(
    entry: dict[str, Any], number: int, prev: str, hasher: Callable[[dict[str, Any]], str]
) -> str:
    if hasher(entry) != entry["hash"]:
        return "hash mismatch: the entry's content was edited"
    seq = entry["seq"]
    if seq > number:
        return f"sequence gap: expected seq {number}, found {seq} (an entry was deleted or moved)"
    if seq < number:
        return f"out of order: expected seq {number}, found {seq} (an entry was inserted or moved)"
    if entry["prev"] != prev:
        return (
            f"prev does not match the hash of entry {number - 1} "
            "(an entry was deleted, inserted or replaced)"
        )
    return ""


def _head_problem(head: bytes, hashes: list[str]) -> tuple[int, str]:
    try:
        record = json.loads(head.decode("utf-8"))
        seq, value = int(record["seq"]), str(record["hash"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return len(hashes) + 1, "audit.head is unreadable, so the end of the log cannot be checked"
    if seq > len(hashes):
        return len(hashes) + 1, (
            f"missing: the log ends after entry {len(hashes)} but audit.head records {seq} "
            "entries (entries were removed from the end)"
        )
    if seq >= 1 and hashes[seq - 1] != value:
        return seq, "does not match the hash audit.head recorded for it (the log was rewritten)"
    return 0, ""


def check_lines(
    data: bytes, head: bytes | None, genesis: str, hasher: Callable[[dict[str, Any]], str]
) -> AuditReport:
    """Walk the log's bytes and report the first bad entry, or that the chain is whole."""
    *lines, fragment = data.split(b"\n")
    hashes: list[str] = []
    prev = genesis
    for number, raw in enumerate(lines, start=1):
        entry, reason = parse_entry(raw)
        if entry is not None:
            reason = _link_problem(entry, number, prev, hasher)
        if reason:
            return AuditReport(False, len(lines), number, reason, head=prev)
        prev = entry["hash"] if entry is not None else prev
        hashes.append(prev)
    if fragment:
        why = (
            f"truncated tail: the last line is incomplete ({len(fragment)} bytes); an append "
            "was interrupted (the next record moves it aside and records that it did)"
        )
        return AuditReport(False, len(lines), len(lines) + 1, why, True, prev)
    if head is None:
        return AuditReport(True, len(lines), head=prev)
    bad, reason = _head_problem(head, hashes)
    if bad:
        return AuditReport(False, len(lines), bad, reason, head=prev, head_checked=True)
    return AuditReport(True, len(lines), head=prev, head_checked=True)
