"""Locks per environment x system, kept as refs on the GitOps repository's remote.

A lock is `refs/gcmschange/locks/<env>/<system>` pointing at a parentless commit whose message
is the holder's JSON (change, holder, since, pid, host, nonce). It is taken by one atomic push
of every ref a change needs, each leased on "must not exist" (`--force-with-lease=REF:`), so
the remote grants all of them or none, and a second pusher is refused. It is released by a
push leased on the holder's own commit, so nobody releases a lock they do not hold. If the
remote cannot be reached nothing runs: a lock store that cannot answer is a refusal.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from gcmschange import gitrepo
from gcmschange.audit import trail
from gcmschange.errors import ExternalError, GcmsError, InvalidInputError, LockHeldError

PREFIX = "refs/gcmschange/locks/"
DEFAULT_REMOTE = "origin"


class LockStoreError(GcmsError):
    """The lock store cannot be reached or used: fail closed, nothing runs."""


@dataclass(frozen=True)
class Holder:
    change: str
    holder: str  # user@host
    since: str  # ISO 8601, UTC
    pid: int
    host: str
    nonce: str = ""

    def describe(self) -> str:
        return f"{self.change} (held by {self.holder}, pid {self.pid}, since {self.since})"


@dataclass(frozen=True)
class Lock:
    name: str  # "<env>/<system>"
    ref: str
    sha: str
    holder: Holder | None  # None when the commit message is not a holder record


def ref_of(environment: str, system: str) -> str:
    return f"{PREFIX}{environment}/{system}"


def name_of(ref: str) -> str:
    return ref.removeprefix(PREFIX)


def _ref_from_name(name: str) -> str:
    ref = name if name.startswith(PREFIX) else f"{PREFIX}{name}"
    if len(name_of(ref).split("/")) != 2 or any(not p for p in name_of(ref).split("/")):
        raise InvalidInputError(f"{name}: a lock is named ENV/SYSTEM (see `gcmschange locks`)")
    return ref


def new_holder(change: str) -> Holder:
    host = socket.gethostname()
    return Holder(
        change=change,
        holder=f"{trail.default_actor()}@{host}",
        since=datetime.now(UTC).isoformat(timespec="seconds"),
        pid=os.getpid(),
        host=host,
        nonce=secrets.token_hex(8),  # two lock commits are never the same object
    )


def _parse_holder(message: str | None) -> Holder | None:
    try:
        raw = json.loads(message or "")
        return Holder(**raw) if isinstance(raw, dict) else None
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True)
class Store:
    """The remote that holds the lock refs (a local bare repository in tests)."""

    root: Path
    remote: str = DEFAULT_REMOTE

    def _require_remote(self) -> None:
        if not gitrepo.has_remote(self.root, self.remote):
            raise LockStoreError(
                f"no lock store: {self.root} has no git remote {self.remote!r}; locks live on "
                "the shared GitOps remote so that every release manager sees them"
            )

    def list(self) -> tuple[Lock, ...]:
        self._require_remote()
        try:
            refs = gitrepo.remote_refs(self.root, self.remote, PREFIX)
            gitrepo.fetch_objects(self.root, self.remote, sorted(refs))
        except ExternalError as exc:
            raise LockStoreError(f"lock store unreachable, refusing: {exc.message}") from exc
        return tuple(
            Lock(name_of(ref), ref, sha, _parse_holder(gitrepo.commit_message(self.root, sha)))
            for ref, sha in sorted(refs.items())
        )

    def acquire(self, refs: Sequence[str], holder: Holder) -> dict[str, str]:
        """Take every ref in one atomic push, or none; return ref -> lock commit."""
        self._require_remote()
        sha = gitrepo.make_commit(self.root, json.dumps(asdict(holder), sort_keys=True))
        updates = [gitrepo.RefUpdate(ref, sha, "") for ref in refs]
        outcome = gitrepo.push_leased(self.root, self.remote, updates)
        if outcome.unreachable:
            raise LockStoreError(f"lock store unreachable, refusing: {outcome.unreachable}")
        if not outcome.ok:
            raise LockHeldError(self._held_message(refs, holder.change, outcome.rejected))
        return dict.fromkeys(refs, sha)

    def _held_message(self, refs: Sequence[str], change: str, rejected: dict[str, str]) -> str:
        wanted = set(refs)
        try:
            held = [lk for lk in self.list() if lk.ref in wanted]
        except LockStoreError:
            held = []
        if not held:
            why = "; ".join(f"{name_of(r)}: {w}" for r, w in sorted(rejected.items()))
            return f"{change}: lock refused ({why or 'the remote refused the push'})"
        names = "; ".join(
            f"{lk.name} by {lk.holder.describe() if lk.holder else lk.sha[:12]}" for lk in held
        )
        return f"{change}: locked: {names}"

    def release(self, held: dict[str, str]) -> tuple[str, ...]:
        """Delete our refs, leased on our commits; return the refs we no longer held."""
        if not held:
            return ()
        self._require_remote()
        updates = [gitrepo.RefUpdate(ref, "", sha) for ref, sha in held.items()]
        outcome = gitrepo.push_leased(self.root, self.remote, updates)
        if outcome.unreachable:
            raise LockStoreError(f"lock store unreachable, locks kept: {outcome.unreachable}")
        if outcome.ok:
            return ()
        # Someone force-unlocked one of them: release what is still ours, one by one.
        lost = []
        for ref, sha in held.items():
            one = gitrepo.push_leased(self.root, self.remote, [gitrepo.RefUpdate(ref, "", sha)])
            if not one.ok:
                lost.append(ref)
        return tuple(lost)

    def adopt(self, refs: Sequence[str], holder: Holder) -> dict[str, str]:
        """For resume: keep the refs this change already holds and take the missing ones."""
        current = {lk.ref: lk for lk in self.list()}
        ours = {r: current[r].sha for r in refs if r in current and _holds(current[r], holder)}
        others = [current[r] for r in refs if r in current and r not in ours]
        if others:
            names = "; ".join(
                f"{lk.name} by {lk.holder.describe() if lk.holder else lk.sha[:12]}"
                for lk in others
            )
            raise LockHeldError(f"{holder.change}: locked: {names}")
        missing = [r for r in refs if r not in ours]
        return {**ours, **(self.acquire(missing, holder) if missing else {})}

    def force_unlock(self, name: str, reason: str) -> Lock:
        """Release someone else's lock, leased on what it holds now; recorded in the audit."""
        if not reason.strip():
            raise InvalidInputError("unlock: --reason must say why the lock is forced")
        ref = _ref_from_name(name)
        found = {lk.ref: lk for lk in self.list()}.get(ref)
        if found is None:
            raise InvalidInputError(f"{name_of(ref)}: no such lock (see `gcmschange locks`)")
        outcome = gitrepo.push_leased(
            self.root, self.remote, [gitrepo.RefUpdate(ref, "", found.sha)]
        )
        if outcome.unreachable:
            raise LockStoreError(f"lock store unreachable: {outcome.unreachable}")
        if not outcome.ok:
            raise LockHeldError(f"{found.name}: changed while unlocking; look again")
        trail.record(
            self.root,
            "lock.forced",
            outcome="ok",
            change=found.holder.change if found.holder else None,
            details={
                "lock": found.name,
                "sha": found.sha,
                "holder": asdict(found.holder) if found.holder else None,
                "reason": reason,
            },
        )
        return found


def _holds(lock: Lock, holder: Holder) -> bool:
    return lock.holder is not None and lock.holder.change == holder.change


def refs_for(environment: str, systems: Sequence[str]) -> tuple[str, ...]:
    return tuple(ref_of(environment, s) for s in dict.fromkeys(systems))
