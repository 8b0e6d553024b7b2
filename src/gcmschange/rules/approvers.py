"""The approvers file: who may approve, with which SSH key, in which roles.

The key lines are git's allowed-signers format, unchanged, so `ssh-keygen -Y verify -f
approvers` checks signatures against the very file people review. Roles cannot be a key
option there: ssh-keygen rejects the whole line on an unknown option ("bad options:
unknown key option"), and the trailing text after a key is undocumented. So roles sit on
a structured comment directly above the key line, which ssh-keygen skips as a comment:

    # roles: cab-carol change-board
    cab-carol,carol@gcms.example namespaces="gcmschange-approval" ssh-ed25519 AAAA...

The first principal is the person's id (as in change requests and estate.yml); the others
are aliases, such as the e-mail git records as a commit's author. ssh-keygen silently
skips a line it cannot parse, so this parser is strict and reports every problem.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gcmschange.approvals.sshsig import NAMESPACE
from gcmschange.errors import InvalidInputError, Location, Problem, ValidationError

FILENAME = "approvers"
ROLES_PREFIX = "# roles:"
ROLE_RE = re.compile(r"^[a-z][a-z0-9-]*(:[a-z0-9][a-z0-9_-]*)?$")
PRINCIPAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
# The options ssh-keygen accepts in allowed-signers (ssh-keygen(1), ALLOWED SIGNERS).
KEY_OPTIONS = frozenset({"cert-authority", "namespaces", "valid-after", "valid-before"})


@dataclass(frozen=True)
class Approver:
    principal: str
    aliases: tuple[str, ...]  # every principal on the key line, the id first
    roles: tuple[str, ...]
    key: str  # "keytype base64"
    line: int


@dataclass(frozen=True)
class Approvers:
    path: Path
    entries: tuple[Approver, ...]

    def by_alias(self, name: str) -> Approver | None:
        return next((a for a in self.entries if name in a.aliases), None)

    def by_key(self, key: str) -> Approver | None:
        return next((a for a in self.entries if a.key == key), None)

    def holds(self, principal: str, role: str) -> bool:
        who = self.by_alias(principal)
        return who is not None and role in who.roles

    def identify(self, *names: str) -> str | None:
        """The principal one of `names` (git author name or e-mail) belongs to."""
        for name in names:
            who = self.by_alias(name) if name else None
            if who is not None:
                return who.principal
        return None


@dataclass(frozen=True)
class _Roles:
    principal: str
    roles: tuple[str, ...]
    line: int


class _Parser:
    def __init__(self, file: str, systems: frozenset[str] | None) -> None:
        self.file = file
        self.systems = systems
        self.problems: list[Problem] = []
        self.entries: list[Approver] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(message, Location(self.file, line), code="approvers"))

    def roles_line(self, text: str, line: int) -> _Roles | None:
        fields = text[len(ROLES_PREFIX) :].split(None, 1)
        if not fields:
            self.problem(line, "roles line names no principal (expected '# roles: ID ROLE,...')")
            return None
        roles = tuple(r.strip() for r in fields[1].split(",")) if len(fields) > 1 else ()
        for role in roles:
            self.check_role(role, line)
        return _Roles(fields[0], roles, line)

    def check_role(self, role: str, line: int) -> None:
        if not ROLE_RE.match(role):
            self.problem(
                line,
                f"role {role!r} is not a role (lower-case words with '-', optionally "
                "':<system>', e.g. change-board, owner:portal)",
            )
        elif role.startswith("owner:") and self.systems is not None:
            system = role.split(":", 1)[1]
            if system not in self.systems:
                self.problem(line, f"role {role!r} names system {system!r}, not in estate.yml")

    def options(self, text: str, line: int) -> bool:
        items = _split_options(text)
        if items is None:
            self.problem(line, f"key options {text!r} have an unclosed quote")
            return False
        ok = True
        for name, value in items:
            if name.lower() not in KEY_OPTIONS:
                self.problem(
                    line,
                    f"key option {name!r} is not one ssh-keygen accepts "
                    f"({', '.join(sorted(KEY_OPTIONS))}); it would ignore this key",
                )
                ok = False
            elif name.lower() == "namespaces" and not any(
                fnmatch.fnmatchcase(NAMESPACE, pat) for pat in value.split(",")
            ):
                self.problem(
                    line,
                    f"namespaces={value!r} excludes {NAMESPACE!r}: "
                    "this key could never sign an approval",
                )
                ok = False
        return ok

    def key(self, keytype: str, blob: str, line: int) -> bool:
        if keytype not in KEY_TYPES:
            self.problem(line, f"{keytype!r} is not an SSH public key type")
            return False
        try:
            raw = base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            self.problem(line, "the public key is not valid base64")
            return False
        size = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
        if raw[4 : 4 + size] != keytype.encode():
            self.problem(line, f"the public key does not encode a {keytype} key")
            return False
        return True

    def key_line(self, text: str, line: int, roles: _Roles | None) -> None:
        head, _, rest = text.partition(" ")
        aliases = tuple(p for p in head.split(",") if p)
        bad = [p for p in aliases if not PRINCIPAL_RE.match(p)]
        if not aliases or bad:
            self.problem(line, f"principal {(bad or [head])[0]!r} is not a valid principal")
            return
        options, keytype, blob = _split_key(rest.strip())
        if options and not self.options(options, line):
            return
        if not keytype or not blob:
            self.problem(line, "key line unparsable (expected 'PRINCIPALS [OPTIONS] TYPE KEY')")
            return
        if not self.key(keytype, blob, line):
            return
        if roles is not None and roles.principal != aliases[0]:
            self.problem(
                roles.line,
                f"roles line names {roles.principal!r} but the key line "
                f"below it (line {line}) is {aliases[0]!r}",
            )
            return
        self.add(
            Approver(aliases[0], aliases, roles.roles if roles else (), f"{keytype} {blob}", line)
        )

    def add(self, new: Approver) -> None:
        for old in self.entries:
            for alias in set(old.aliases) & set(new.aliases):
                self.problem(
                    new.line, f"duplicate principal {alias!r} (already on line {old.line})"
                )
                return
            if old.key == new.key:
                self.problem(
                    new.line,
                    f"this key is already listed for {old.principal!r} on "
                    f"line {old.line}; one key, one person",
                )
                return
        self.entries.append(new)

    def parse(self, lines: Iterable[str]) -> None:
        pending: _Roles | None = None
        for number, raw in enumerate(lines, start=1):
            text = raw.strip()
            if pending is not None and not (text and not text.startswith("#")):
                self.problem(
                    pending.line,
                    f"roles line for {pending.principal!r} is not directly above its key line",
                )
                pending = None
            if text.startswith(ROLES_PREFIX):
                pending = self.roles_line(text, number)
            elif text and not text.startswith("#"):
                self.key_line(text, number, pending)
                pending = None
        if pending is not None:
            self.problem(
                pending.line, f"roles line for {pending.principal!r} has no key line below it"
            )


def _split_options(text: str) -> list[tuple[str, str]] | None:
    """`name[="value"]` items separated by commas outside quotes, as sshd reads them."""
    items: list[str] = [""]
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append("")
        else:
            items[-1] += char
    if quoted:
        return None
    return [(i.partition("=")[0], i.partition("=")[2]) for i in items if i]


def _split_key(rest: str) -> tuple[str, str, str]:
    """(options, keytype, base64) from what follows the principals on a key line."""
    tokens = rest.split()
    if tokens and tokens[0] in KEY_TYPES:
        return "", tokens[0], tokens[1] if len(tokens) > 1 else ""
    # Options may hold quoted spaces: the key type is the first token after them.
    for index, token in enumerate(tokens):
        if token in KEY_TYPES:
            blob = tokens[index + 1] if index + 1 < len(tokens) else ""
            return " ".join(tokens[:index]), token, blob
    if len(tokens) == 2:  # no options, and a key type we do not know
        return "", tokens[0], tokens[1]
    padded = [*tokens, "", "", ""]
    return padded[0], padded[1], padded[2]


def parse_approvers(
    text: str, file: str = FILENAME, systems: frozenset[str] | None = None
) -> Approvers:
    """Parse the file's text; raise `ValidationError` listing every problem."""
    parser = _Parser(file, systems)
    parser.parse(text.splitlines())
    if parser.problems:
        first = parser.problems[0]
        more = f" (and {len(parser.problems) - 1} more)" if len(parser.problems) > 1 else ""
        raise ValidationError(f"{first}{more}", tuple(parser.problems))
    return Approvers(Path(file), tuple(parser.entries))


def approvers_path(root: Path) -> Path:
    return root / FILENAME


def load_approvers(root: Path, systems: frozenset[str] | None = None) -> Approvers:
    path = approvers_path(root)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidInputError(f"{path}: file not found (who may approve is unknown)") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: not UTF-8 text: {exc}") from exc
    parsed = parse_approvers(text, FILENAME, systems)
    return Approvers(path, parsed.entries)
