"""Signed approval statements as files under `approvals/<CHANGE>/`, and their verdicts.

A statement is canonical JSON; its `.sig` beside it is an SSH signature of exactly the
statement's bytes under the `gcmschange-approval` namespace. The file is what is signed,
so what a reviewer reads in the merge request is what the gate checks.
"""

from __future__ import annotations

import json
import secrets
import stat
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gcmschange.approvals import sshsig
from gcmschange.errors import InvalidInputError
from gcmschange.rules.approvers import Approvers

APPROVALS_DIR = "approvals"
FORMAT = "gcmschange-approval/v1"
REVIEW_ROLE = "review"  # a post-implementation review, signed by a change-board member
REVIEWER_ROLE = "change-board"

# Verdicts, most serious first; an approval gets the first one that applies.
VALID = "valid"
MALFORMED = "malformed"
UNKNOWN_KEY = "unknown-key"
INVALID_SIGNATURE = "invalid-signature"
WRONG_CHANGE = "wrong-change"
WRONG_ENVIRONMENT = "wrong-environment"
REPLAYED_NONCE = "replayed-nonce"
STALE = "stale"
EXPIRED = "expired"
NOT_YET_VALID = "not-yet-valid"
SELF_APPROVAL = "self-approval"
ROLE_NOT_HELD = "role-not-held"
# Stale and expired approvals are history; every other failure means someone went around
# `gcmschange approve` (or tampered with a file), so it blocks the gate even when enough
# valid approvals exist.
BENIGN = frozenset({VALID, STALE, EXPIRED})


@dataclass(frozen=True)
class Statement:
    change: str
    digest: str
    environment: str
    principal: str
    role: str
    issued: str  # ISO 8601, UTC
    expires: str  # ISO 8601, UTC
    nonce: str
    comment: str = ""
    format: str = FORMAT


@dataclass(frozen=True)
class Verdict:
    source: str  # "file" or "gitlab"
    ref: str  # the statement file (relative to the repository), or the MR approval
    status: str
    reason: str
    principal: str | None  # the verified signer; None when unknown
    roles: tuple[str, ...]  # the roles this approval may count for
    statement: Statement | None = None


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def statement_text(statement: Statement) -> str:
    return json.dumps(asdict(statement), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


MAX_STATEMENT_BYTES = 64 * 1024  # a statement is a few hundred bytes


def read_statement_text(path: Path, where: str) -> str:
    """A statement file's text: a regular file of modest size, or a located refusal. Anyone
    can commit under approvals/, and every gate reads all of it (the replay check)."""
    try:
        mode = path.lstat()
        if not stat.S_ISREG(mode.st_mode):
            raise InvalidInputError(f"{where}: not a regular file")
        if mode.st_size > MAX_STATEMENT_BYTES:
            raise InvalidInputError(f"{where}: {mode.st_size} bytes, more than a statement holds")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{where}: cannot be read: {exc}") from exc


def parse_statement(text: str, where: str) -> Statement:
    try:
        doc: Any = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidInputError(f"{where}: not JSON: {reason}") from exc
    names = {f.name for f in fields(Statement)}
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{where}: not a statement (a JSON object is expected)")
    if set(doc) - names:
        raise InvalidInputError(f"{where}: unexpected fields {sorted(set(doc) - names)}")
    missing = sorted(n for n in names - {"comment", "format"} if not isinstance(doc.get(n), str))
    wrong = sorted(n for n in ("comment", "format") if n in doc and not isinstance(doc[n], str))
    if missing or wrong:
        raise InvalidInputError(f"{where}: missing or non-text fields {missing + wrong}")
    statement = Statement(**doc)
    if statement.format != FORMAT:
        raise InvalidInputError(f"{where}: unknown format {statement.format!r}")
    try:
        parse_time(statement.issued), parse_time(statement.expires)
    except ValueError as exc:
        raise InvalidInputError(f"{where}: bad time: {exc}") from exc
    return statement


def new_nonce() -> str:
    return secrets.token_hex(16)


def change_dir(root: Path, change_id: str) -> Path:
    return root / APPROVALS_DIR / change_id


def write_signed(root: Path, statement: Statement, key: Path) -> tuple[Path, Path]:
    """Sign the statement with `key` and write it and its signature; return both paths."""
    text = statement_text(statement)
    signature = sshsig.sign(key, text)
    stamp = statement.issued.replace("-", "").replace(":", "")
    role = statement.role.replace(":", ".")  # ':' is not portable in file names
    name = f"{stamp}-{statement.principal}-{role}.json"
    json_path = change_dir(root, statement.change) / name
    sig_path = json_path.with_name(name + ".sig")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with json_path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError as exc:
        raise InvalidInputError(f"{json_path}: already exists; approve again in a second") from exc
    sig_path.write_text(signature, encoding="utf-8")
    return json_path, sig_path


Nonces = dict[str, list[tuple[Path, str]]]  # nonce -> (file, its text) of every statement


def _nonces(root: Path) -> Nonces:
    # Read over every change's approvals: one nonce in two statements that say different
    # things, each signed by an approver, is a replayed or reworked approval.
    found: Nonces = {}
    for path in sorted((root / APPROVALS_DIR).glob("*/*.json")):
        try:
            text = read_statement_text(path, str(path))
            nonce = json.loads(text).get("nonce")
        except (ValueError, InvalidInputError, AttributeError, RecursionError):
            continue
        if isinstance(nonce, str):
            found.setdefault(nonce, []).append((path, text))
    return found


def _replays(path: Path, text: str, nonce: str, approvers: Approvers, nonces: Nonces) -> int:
    """Other statements holding this nonce that say something else and that an approver
    signed. A byte-for-byte copy is the same approval (it counts once, and in another
    change's folder it names the wrong change); an unsigned file with a copied nonce proves
    nothing: neither may cancel a real approval, which anyone who can push could then do."""
    count = 0
    for other, other_text in nonces.get(nonce, []):
        if other == path or other_text == text:
            continue
        sig = other.with_name(other.name + ".sig")
        try:
            read_statement_text(sig, str(sig))
        except InvalidInputError:
            continue
        if _signer(approvers, other_text, sig)[0] == VALID:
            count += 1
    return count


@dataclass(frozen=True)
class Expectation:
    """What a statement must say to count for this change, now."""

    change: str
    environment: str
    digest: str
    now: datetime
    max_days: int
    requesters: dict[str, str]  # principal -> why they count as the requester
    skew: timedelta = timedelta(minutes=5)  # how far clocks may disagree
    timeless: bool = False  # judge without the clock (a rules version already merged)


def _signer(approvers: Approvers, text: str, sig: Path) -> tuple[str, str | None]:
    """(status, principal) of the signature on `text`."""
    found = sshsig.find_principals(approvers.path, sig)
    who = next((approvers.by_alias(p) for p in found if approvers.by_alias(p)), None)
    if who is None:
        return UNKNOWN_KEY, None
    if not sshsig.verify(approvers.path, who.principal, text, sig):
        return INVALID_SIGNATURE, who.principal
    return VALID, who.principal


def _content_check(
    st: Statement, signer: str, approvers: Approvers, want: Expectation, replays: int
) -> tuple[str, str]:
    issued, expires = parse_time(st.issued), parse_time(st.expires)
    # A review attests to work already done: it can neither go stale nor expire. Nor can the
    # approval of a rules version already merged: it was judged when it was.
    review = st.role == REVIEW_ROLE
    clockless = review or want.timeless
    role_needed = REVIEWER_ROLE if st.role == REVIEW_ROLE else st.role
    checks: tuple[tuple[bool, str, str], ...] = (
        (
            st.principal != signer,
            INVALID_SIGNATURE,
            f"the statement names {st.principal!r} but was signed with {signer!r}'s key",
        ),
        (
            st.change != want.change,
            WRONG_CHANGE,
            f"approves {st.change}, not {want.change} (replayed from another change)",
        ),
        (
            st.environment != want.environment,
            WRONG_ENVIRONMENT,
            f"approves environment {st.environment!r}; {want.change} targets {want.environment!r}",
        ),
        (
            replays > 0,
            REPLAYED_NONCE,
            f"nonce {st.nonce} is also in {replays} other signed statement(s) that say "
            "something else (replay)",
        ),
        (
            st.digest != want.digest and not review,
            STALE,
            f"approved digest {st.digest[:12]}, the change is now at {want.digest[:12]} "
            "(something it covers changed since)",
        ),
        (
            issued > want.now + want.skew and not want.timeless,
            NOT_YET_VALID,
            f"issued {st.issued}, in the future (clock skew allowed: {want.skew})",
        ),
        (expires <= want.now and not clockless, EXPIRED, f"expired at {st.expires}"),
        (
            expires - want.now > timedelta(days=want.max_days) + want.skew and not clockless,
            EXPIRED,
            f"valid until {st.expires}, more than {want.max_days} days from now "
            "(the policy's limit)",
        ),
        (
            (expires - issued).days > want.max_days and not review,
            EXPIRED,
            f"valid for {(expires - issued).days} days; policy allows at most {want.max_days}",
        ),
        (
            signer in want.requesters,
            SELF_APPROVAL,
            f"self-approval: {want.requesters.get(signer, '')}",
        ),
        (
            not approvers.holds(signer, role_needed),
            ROLE_NOT_HELD,
            f"{signer} does not hold role {role_needed!r} in the approvers file",
        ),
    )
    return next(((status, why) for bad, status, why in checks if bad), (VALID, "valid"))


def verdict_of(
    root: Path, path: Path, approvers: Approvers, want: Expectation, nonces: Nonces
) -> Verdict:
    ref = str(path.relative_to(root))
    sig = path.with_name(path.name + ".sig")
    try:
        text = read_statement_text(path, ref)
        statement = parse_statement(text, ref)
    except InvalidInputError as exc:
        return Verdict("file", ref, MALFORMED, str(exc), None, ())
    if not sig.is_file():
        return Verdict("file", ref, MALFORMED, f"{ref}: no signature file beside it", None, ())
    try:
        read_statement_text(sig, f"{ref}.sig")  # ssh-keygen reads it: a small regular file
    except InvalidInputError as exc:
        return Verdict("file", ref, MALFORMED, str(exc), None, ())
    status, signer = _signer(approvers, text, sig)
    if signer is None:
        reason = (
            f"claims to be from {statement.principal!r} but is signed by a key that is not "
            "in the approvers file"
        )
    elif status != VALID:
        reason = f"the signature does not match the statement (altered after {signer} signed)"
    else:
        replays = _replays(path, text, statement.nonce, approvers, nonces)
        status, reason = _content_check(statement, signer, approvers, want, replays)
    return Verdict("file", ref, status, reason, signer, (statement.role,), statement)


class FileSource:
    """Approvals signed with SSH keys, committed under `approvals/<CHANGE>/`."""

    name = "file"

    def collect(self, root: Path, approvers: Approvers, want: Expectation) -> tuple[Verdict, ...]:
        nonces = _nonces(root)
        paths = sorted(change_dir(root, want.change).glob("*.json"))
        return tuple(verdict_of(root, p, approvers, want, nonces) for p in paths)
