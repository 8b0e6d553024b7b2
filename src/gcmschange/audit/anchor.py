"""Anchor the audit log on the GitOps remote, so a rewrite of the whole log is caught.

The hash chain and `audit.head` catch an edited, inserted, removed or reordered entry, but
not someone who rewrites the log and its head together from some entry on. An anchor is a
commit, pushed to `refs/gcmschange/audit/<log id>` on the remote, whose message records
(seq, hash) of the log's last entry; each anchor's parent is the previous anchor of the same
log, and the push is leased, so the remote holds the log's history of heads. With the ref
protected (GitLab: protected refs, no force push), rewriting what was anchored takes the
remote too. `verify` checks every anchored (seq, hash) against the local log.

A log is named by the hash of its first entry: each machine, and each CI pipeline, that
keeps its own `.gcmschange/` has its own log and its own anchor ref. Each anchor commit also
holds the log as it was (`audit.jsonl`), so the remote keeps every pipeline's record after
its job's files are gone: `remote_logs` reads them back (the status site's history does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gcmschange import gitrepo
from gcmschange.audit import trail
from gcmschange.audit.chain import check_lines, parse_entry
from gcmschange.errors import ExternalError, GcmsError
from gcmschange.paths import audit_log

PREFIX = "refs/gcmschange/audit/"
LOG_FILE = "audit.jsonl"
_LINE = re.compile(r"^(log|seq|hash): (\S+)$", re.MULTILINE)


class AnchorMismatchError(GcmsError):
    """The local audit log disagrees with what was anchored on the remote."""


@dataclass(frozen=True)
class Anchored:
    seq: int
    hash: str


@dataclass(frozen=True)
class AnchorReport:
    ok: bool
    log_id: str
    ref: str
    anchors: int  # anchors of this log on the remote
    anchored_seq: int  # the newest anchored entry (0: none)
    reason: str = ""

    def __str__(self) -> str:
        if not self.ok:
            return self.reason
        if not self.anchors:
            return f"no anchor for this log ({self.log_id}) on the remote yet"
        return (
            f"{self.anchors} anchor(s) on the remote agree with the log "
            f"(up to entry {self.anchored_seq})"
        )


def log_id(events: list[trail.AuditEvent]) -> str:
    return events[0].hash[:16] if events else ""


def _message(lid: str, event: trail.AuditEvent) -> str:
    return f"gcmschange audit anchor\n\nlog: {lid}\nseq: {event.seq}\nhash: {event.hash}\n"


def _parse(message: str) -> Anchored | None:
    fields = dict(_LINE.findall(message))
    try:
        return Anchored(int(fields["seq"]), fields["hash"])
    except (KeyError, ValueError):
        return None


def _remote_anchors(root: Path, remote: str, ref: str) -> tuple[str, list[Anchored]]:
    """(the ref's current sha or "", its anchors newest first)."""
    sha = gitrepo.remote_refs(root, remote, ref).get(ref, "")
    if not sha:
        return "", []
    gitrepo.fetch_objects(root, remote, [ref])
    anchors = [a for a in map(_parse, gitrepo.chain_messages(root, sha)) if a is not None]
    return sha, anchors


def _disagreement(events: list[trail.AuditEvent], anchors: list[Anchored]) -> str:
    for anchor in reversed(anchors):  # oldest first: name the earliest rewritten entry
        if anchor.seq > len(events):
            return (
                f"entry {anchor.seq} was anchored on the remote, but the log ends at entry "
                f"{len(events)} (entries were removed)"
            )
        if events[anchor.seq - 1].hash != anchor.hash:
            return (
                f"entry {anchor.seq}: the log's hash {events[anchor.seq - 1].hash[:16]} differs "
                f"from the anchored {anchor.hash[:16]} (the log was rewritten)"
            )
    return ""


def _events_of(data: bytes) -> list[trail.AuditEvent]:
    events = []
    for raw in data.split(b"\n")[:-1]:
        entry, _why = parse_entry(raw)
        if entry is not None:
            events.append(trail.AuditEvent(**entry))
    return events


def _read_checked(root: Path) -> tuple[bytes, list[trail.AuditEvent]]:
    """The log's bytes (read once, so a concurrent append cannot slip in) and its events."""
    path, head = audit_log(root), trail.head_path(root)
    data = path.read_bytes() if path.is_file() else b""
    report = check_lines(
        data, head.read_bytes() if head.is_file() else None, trail.GENESIS, trail.entry_hash
    )
    if not report.ok:
        raise AnchorMismatchError(f"the audit chain is broken, so it is not anchored: {report}")
    return data, _events_of(data)


def verify(root: Path, remote: str) -> AnchorReport:
    """Check the log against every anchor of it on `remote` (the local chain first)."""
    _data, events = _read_checked(root)
    lid = log_id(events)
    if not lid:
        return AnchorReport(True, "", "", 0, 0)
    ref = PREFIX + lid
    _sha, anchors = _remote_anchors(root, remote, ref)
    newest = anchors[0].seq if anchors else 0
    why = _disagreement(events, anchors)
    return AnchorReport(not why, lid, ref, len(anchors), newest, why)


def anchor(root: Path, remote: str) -> AnchorReport:
    """Record the log's last entry on `remote`, on top of its previous anchors."""
    for _attempt in range(2):  # a lease lost to a concurrent anchor of the same log: once more
        data, events = _read_checked(root)
        lid = log_id(events)
        if not lid:
            return AnchorReport(True, "", "", 0, 0)
        ref = PREFIX + lid
        old, anchors = _remote_anchors(root, remote, ref)
        why = _disagreement(events, anchors)
        if why:
            raise AnchorMismatchError(f"audit log vs its anchor on {remote!r}: {why}")
        last = events[-1]
        if anchors and anchors[0].seq >= last.seq:
            return AnchorReport(True, lid, ref, len(anchors), anchors[0].seq)
        new = gitrepo.make_commit(root, _message(lid, last), old, {LOG_FILE: data})
        pushed = gitrepo.push_leased(root, remote, [gitrepo.RefUpdate(ref, new, old)])
        if pushed.ok:
            return AnchorReport(True, lid, ref, len(anchors) + 1, last.seq)
        if pushed.unreachable:
            raise ExternalError(
                f"remote {remote!r}: cannot anchor the audit log: {pushed.unreachable}"
            )
    raise ExternalError(f"remote {remote!r}: the anchor of {ref} kept moving; try again")


@dataclass(frozen=True)
class RemoteLogs:
    logs: dict[str, list[trail.AuditEvent]]  # log id -> its events as last anchored
    problems: tuple[str, ...]  # anchored logs that failed their own checks (left out)


def remote_logs(root: Path, remote: str) -> RemoteLogs:
    """Every log anchored on `remote`, as its newest anchor holds it, each checked against
    its own chain and the (seq, hash) its anchor recorded."""
    refs = gitrepo.remote_refs(root, remote, PREFIX)
    gitrepo.fetch_objects(root, remote, sorted(refs))
    logs: dict[str, list[trail.AuditEvent]] = {}
    problems = []
    for ref, sha in sorted(refs.items()):
        lid = ref.removeprefix(PREFIX)
        data = gitrepo.file_at(root, sha, LOG_FILE)
        anchored = _parse(gitrepo.chain_messages(root, sha)[0])
        if data is None or anchored is None:
            continue  # an anchor without the log (or not ours): nothing to read
        head = f'{{"seq": {anchored.seq}, "hash": "{anchored.hash}"}}'.encode()
        report = check_lines(data, head, trail.GENESIS, trail.entry_hash)
        if not report.ok:
            problems.append(f"{remote} {ref}: {report}")
            continue
        logs[lid] = _events_of(data)
    return RemoteLogs(logs, tuple(problems))
