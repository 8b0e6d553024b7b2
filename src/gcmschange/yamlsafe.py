"""Hardened YAML loading that keeps the line and column of every node.

Change requests come from merge requests, so the loader treats them as hostile: it works
on parser events (libyaml when present) and refuses at the first offending event, before
anything is composed, so an alias bomb costs microseconds, not gigabytes. Scalars follow
the YAML 1.2 core schema (`no`, `on` and `2026-01-01` stay strings), because a change
request is JSON data written in YAML.

Validating 10,000 changes is mostly this loop, so it runs twice over: a lean pass that
builds the data and notes where the top-level entries are, and stops at anything unusual;
and the exact pass, which says precisely what was refused and where, and which also runs
(lazily) when a message needs the position of a deeper node. Both apply the same rules to
the same libyaml events, so they cannot disagree about what a file holds.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from gcmschange.errors import Location, Problem, ValidationError

MAX_BYTES = 256 * 1024
MAX_DEPTH = 64
PathPart = str | int
NodePath = tuple[PathPart, ...]

_Parser: Any = getattr(yaml, "CBaseLoader", None) or yaml.BaseLoader
_STRING_TAGS = {"tag:yaml.org,2002:str", "!unsafe", "!"}  # !unsafe: Ansible's "never template"
_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
_SCALAR, _ALIAS = yaml.ScalarEvent, yaml.AliasEvent
_MAPPING_START, _MAPPING_END = yaml.MappingStartEvent, yaml.MappingEndEvent
_SEQUENCE_START, _SEQUENCE_END = yaml.SequenceStartEvent, yaml.SequenceEndEvent
_DOCUMENT_START, _STREAM_END = yaml.DocumentStartEvent, yaml.StreamEndEvent
_MAYBE_NOT_TEXT = frozenset("0123456789+-.~nNtTfF") | {""}
_WORD_START = frozenset("nNtTfF")
_NULLS = frozenset(("null", "Null", "NULL"))
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
# Python refuses to convert more than 4,300 digits (and takes quadratic time up to there);
# no datum has a tenth as many, so longer numbers are refused. Where a value must also fit
# later stages (64-bit integers, say), the schema or the checks that use it bound it.
MAX_DIGITS = 400
_NUMBER_MESSAGES = {
    "digits": f"number longer than {MAX_DIGITS} digits (quote it if it is text)",
    "overflow": "number too large to hold: only .inf means infinity (quote it if it is text)",
}


class VaultText(str):
    """An Ansible Vault value as written in YAML (`!vault |`): the ciphertext, never the
    value. Only `gcmschange.vault` opens it, so every plaintext is registered for masking."""


_VAULT_TAG = "!vault"
_VAULT_HEADER = "$ANSIBLE_VAULT;"


class _NumberError(Exception):
    """A plain scalar that reads as a number the loader will not hold."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.message = _NUMBER_MESSAGES[why]


def _decimal(text: str) -> int:
    if len(text.lstrip("+-").lstrip("0")) > MAX_DIGITS:
        raise _NumberError("digits")
    return int(text)


def _based(text: str, base: int) -> int:
    if len(text[2:].lstrip("0")) > MAX_DIGITS:
        raise _NumberError("digits")
    return int(text[2:], base)


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999 is written as a finite number
        raise _NumberError("overflow")
    return value


# The YAML 1.2 core schema's implicit types, tried in order; anything else is a string.
_RESOLVERS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"^(?:~|null|Null|NULL|)$"), lambda _v: None),
    (re.compile(r"^[-+]?[0-9]+$"), _decimal),
    (re.compile(r"^0o[0-7]+$"), lambda v: _based(v, 8)),
    (re.compile(r"^0x[0-9a-fA-F]+$"), lambda v: _based(v, 16)),
    (re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"), _finite),
    (re.compile(r"^[-+]?\.(?:inf|Inf|INF)$"), lambda v: -math.inf if v[0] == "-" else math.inf),
    (re.compile(r"^\.(?:nan|NaN|NAN)$"), lambda _v: math.nan),
)
_DEPTH_MESSAGE = f"nesting deeper than {MAX_DEPTH} levels"
_KEY_KINDS = {bool: "a boolean", int: "a number", float: "a number", type(None): "null"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def printable(text: str) -> str:
    """`text` for a one-line message, every invisible character escaped (`\\u001b`): control
    characters, line breaks and bidirectional overrides in a value must not rewrite the
    terminal, the CI log or the report that shows it."""
    return text if text.isprintable() else "".join(map(_visible, text))


def _visible(char: str) -> str:
    if char.isprintable():
        return char
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def json_path(path: Sequence[PathPart]) -> str:
    """`$.window.start`, `$.systems[1]`, `$.variables['odd key']`."""
    out = ["$"]
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENT.fullmatch(part):
            out.append(f".{part}")
        else:
            out.append("['" + printable(part.replace("\\", "\\\\").replace("'", "\\'")) + "']")
    return "".join(out)


Positions = dict[NodePath, tuple[int, int]]


@dataclass(frozen=True)
class Document:
    """A loaded YAML document and where each of its nodes (and mapping keys) starts."""

    data: Any
    file: str
    # The root and its direct entries (values, keys); the lean pass knows no more.
    top: tuple[Positions, Positions] = field(repr=False, compare=False)
    source: bytes = field(default=b"", repr=False, compare=False)  # to find deeper nodes
    exact: tuple[Positions, Positions] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def _tables(self) -> tuple[Positions, Positions]:
        if self.exact is not None:
            return self.exact
        try:
            builder = _exact_pass(self.source, self.file)
        except _RefusedError:  # cannot happen: the lean pass accepted these bytes
            return self.top
        return builder.positions, builder.key_positions

    @property
    def positions(self) -> Positions:
        """Value node -> (line, column), 1-based."""
        return self._tables[0]

    @property
    def key_positions(self) -> Positions:
        """Mapping entry -> position of its key."""
        return self._tables[1]

    def locate(self, path: Sequence[PathPart], *, key: bool = False) -> Location:
        """The position of `path`, or of its nearest ancestor that has one."""
        parts = tuple(path)
        positions, keys = self.top if len(parts) <= 1 else self._tables
        table = keys if key else positions
        for cut in range(len(parts), -1, -1):
            pos = table.get(parts[:cut]) or positions.get(parts[:cut])
            if pos:
                return Location(self.file, pos[0], pos[1], json_path(parts))
        return Location(self.file, 1, 1, json_path(parts))


class _RefusedError(Exception):
    def __init__(
        self, code: str, message: str, mark: Any = None, *, path: NodePath | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.line = (mark.line + 1) if mark is not None else 0
        self.column = (mark.column + 1) if mark is not None else 0
        self.path = path


@dataclass(frozen=True)
class _Mark:
    """A position found in the raw bytes, shaped like a parser mark (0-based)."""

    line: int
    column: int

    @classmethod
    def at(cls, raw: bytes, offset: int) -> _Mark:
        line_start = raw.rfind(b"\n", 0, offset) + 1
        return cls(raw.count(b"\n", 0, offset), offset - line_start)


def _plain_scalar(value: str) -> Any:
    if value[:1] not in _MAYBE_NOT_TEXT:  # words, the common case, are text in YAML 1.2
        return value
    if value in _BOOL:
        return _BOOL[value]
    if value[:1] in _WORD_START:  # "normal", "none": only null is left (no number starts so)
        return None if value in _NULLS else value
    for pattern, convert in _RESOLVERS:
        if pattern.match(value):
            return convert(value)
    return value


def _scalar(event: Any) -> Any:
    tag = event.tag
    if tag == _VAULT_TAG:
        if not event.value.lstrip().startswith(_VAULT_HEADER):
            raise _RefusedError(
                "vault", "a !vault value must be an Ansible vault text", event.start_mark
            )
        return VaultText(event.value)
    if tag is not None and tag not in _STRING_TAGS:
        raise _RefusedError(
            "tag", f"tag '{printable(tag)}' is not allowed (plain data only)", event.start_mark
        )
    if tag is None and event.implicit[0] and not event.style:
        try:
            return _plain_scalar(event.value)
        except _NumberError as refused:
            raise _RefusedError("number", refused.message, event.start_mark) from None
    return event.value


class _Builder:
    """Turns a stream of parser events into plain data, refusing what a change cannot hold."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[NodePath, tuple[int, int]] = {}
        self.key_positions: dict[NodePath, tuple[int, int]] = {}
        # Each frame: [container, its path, pending key (mappings), first-seen key lines]
        self.stack: list[list[Any]] = []
        self.root: Any = None
        self.documents = 0

    def feed(self, event: Any) -> None:
        kind = type(event)
        if kind is yaml.ScalarEvent:  # most events: keep this path short
            if event.anchor is not None:
                raise _RefusedError(
                    "anchor", f"anchor '&{event.anchor}' is not allowed", event.start_mark
                )
            self._add(_scalar(event), event)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            if event.anchor is not None:
                raise _RefusedError(
                    "anchor", f"anchor '&{event.anchor}' is not allowed", event.start_mark
                )
            self._open(event)
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            self.stack.pop()
        elif kind is yaml.AliasEvent:
            raise _RefusedError(
                "alias", f"alias '*{event.anchor}' is not allowed", event.start_mark
            )
        elif kind is yaml.DocumentStartEvent:
            self.documents += 1
            if self.documents > 1:
                raise _RefusedError(
                    "multi-document", "more than one YAML document", event.start_mark
                )

    def where(self) -> NodePath:
        """The path of the node being read when a refusal interrupts."""
        if not self.stack:
            return ()
        container, base, pending = self.stack[-1][:3]
        if isinstance(container, list):
            return (*base, len(container))
        return (*base, pending) if pending is not None else base

    def _open(self, event: Any) -> None:
        tag = event.tag
        if tag is not None and tag not in _COLLECTION_TAGS and tag != "!":
            raise _RefusedError(
                "tag", f"tag '{printable(tag)}' is not allowed (plain data only)", event.start_mark
            )
        if len(self.stack) >= MAX_DEPTH:
            raise _RefusedError(
                "depth", f"nesting deeper than {MAX_DEPTH} levels", event.start_mark
            )
        if self.stack and self._expects_key():
            kind = "a mapping" if isinstance(event, yaml.MappingStartEvent) else "a list"
            raise _RefusedError(
                "key-type", f"{kind} cannot be a key: keys must be strings", event.start_mark
            )
        container: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
        path = self._add(container, event)
        self.stack.append([container, path, None, {}])

    def _expects_key(self) -> bool:
        frame = self.stack[-1]
        return isinstance(frame[0], dict) and frame[2] is None

    def _add(self, value: Any, event: Any) -> NodePath:
        mark = event.start_mark
        pos = (mark.line + 1, mark.column + 1)
        if not self.stack:
            self.root = value
            self.positions[()] = pos
            return ()
        frame = self.stack[-1]
        container = frame[0]
        base: NodePath = frame[1]
        if isinstance(container, list):
            path = (*base, len(container))
            container.append(value)
        elif frame[2] is None:
            self._key(frame, value, event)
            return base
        else:
            path = (*base, frame[2])
            container[frame[2]] = value
            frame[2] = None
        self.positions[path] = pos
        return path

    def _key(self, frame: list[Any], key: Any, event: Any) -> None:
        mark = event.start_mark
        if not isinstance(key, str):
            kind = _KEY_KINDS.get(type(key), type(key).__name__)
            message = f"key '{printable(event.value)}' is {kind}, not a string (quote it)"
            raise _RefusedError("key-type", message, mark)
        seen: dict[str, int] = frame[3]
        if key in seen:
            message = f"duplicate key '{printable(key)}' (first at line {seen[key]})"
            raise _RefusedError("duplicate-key", message, mark, path=(*frame[1], key))
        seen[key] = mark.line + 1
        frame[2] = key
        self.key_positions[(*frame[1], key)] = (mark.line + 1, mark.column + 1)


def _check_bytes(raw: bytes, limit: int) -> bytes:
    if len(raw) > limit:
        raise _RefusedError("too-large", f"file is larger than {limit} bytes")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _RefusedError(
            "encoding", "not UTF-8 (UTF-16 or UTF-32 byte order mark); save it as UTF-8"
        )
    nul = raw.find(b"\x00")
    if nul >= 0:
        message = f"binary content (NUL byte at offset {nul}), not YAML text"
        raise _RefusedError("binary", message, _Mark.at(raw, nul))
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        raise _RefusedError("encoding", message, _Mark.at(raw, exc.start)) from exc
    return raw.removeprefix(b"\xef\xbb\xbf")


def _exact_pass(text: bytes, file: str) -> _Builder:
    """Every node with its position, or the precise refusal (from the checked bytes)."""
    builder = _Builder(file)
    parser = _Parser(text)
    try:
        while parser.check_event():
            event = parser.get_event()
            try:
                builder.feed(event)
            except _RefusedError as refused:
                refused.path = builder.where() if refused.path is None else refused.path
                raise
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or exc.context or "malformed YAML"
        if "nesting depth" in problem:  # libyaml's own limit, hit while scanning ahead
            raise _RefusedError("depth", _DEPTH_MESSAGE, exc.problem_mark) from exc
        raise _RefusedError("syntax", f"YAML syntax error: {problem}", exc.problem_mark) from exc
    except yaml.YAMLError as exc:
        raise _RefusedError("syntax", f"YAML error: {exc}") from exc
    finally:
        parser.dispose()
    return builder


class _UnusualError(Exception):
    """The lean pass met something the exact pass must judge (and name precisely)."""


class _Lean:
    """The lean pass: the data and the top-level positions of a plain document.

    This loop is most of a cold validation run, so it keeps its state in a few slots,
    records positions only for the root and its direct entries, and does no more per event
    than placing the value. Anything unusual (anchors, aliases, tags, non-string or
    duplicate keys, depth, a second document, a syntax error) raises `_UnusualError`, and
    the exact pass takes over.
    """

    __slots__ = ("container", "depth", "documents", "in_map", "key", "keys", "root", "stack")
    stack: list[tuple[Any, bool, Any]]

    def __init__(self) -> None:
        self.stack = []
        self.container: Any = None  # the open list or dict (None: at the document root)
        self.in_map = False
        self.key: Any = None  # the mapping key waiting for its value (None: a key is next)
        self.root: Any = None
        self.depth = self.documents = 0
        self.keys: Positions = {}

    def scalar(self, event: Any, values: Positions) -> None:
        value, tag = event.value, event.tag
        if event.anchor is not None or (tag is not None and tag not in _STRING_TAGS):
            raise _UnusualError
        if tag is None and not event.style and event.implicit[0] and value[:1] in _MAYBE_NOT_TEXT:
            try:
                value = _plain_scalar(value)
            except _NumberError:
                raise _UnusualError from None  # the exact pass names it, with its place
        if self.in_map and self.key is None:
            if type(value) is not str or value in self.container:
                raise _UnusualError
            self.key = value
            if self.depth == 1:
                mark = event.start_mark
                self.keys[(value,)] = (mark.line + 1, mark.column + 1)
        else:
            self.place(value, event, values)

    def start(self, event: Any, values: Positions) -> None:
        tag = event.tag
        if event.anchor is not None or self.depth >= MAX_DEPTH:
            raise _UnusualError
        if (self.in_map and self.key is None) or (
            tag is not None and tag not in _COLLECTION_TAGS and tag != "!"
        ):
            raise _UnusualError
        node: Any = {} if type(event) is _MAPPING_START else []
        self.place(node, event, values)
        self.stack.append((self.container, self.in_map, self.key))
        self.container, self.in_map, self.key = node, type(node) is dict, None
        self.depth += 1

    def place(self, node: Any, event: Any, values: Positions) -> None:
        depth = self.depth
        if depth <= 1:  # the root or one of its entries: note where it starts
            mark = event.start_mark
            at = (mark.line + 1, mark.column + 1)
            if depth == 0:
                self.root, values[()] = node, at
            else:
                values[(self.key,) if self.in_map else (len(self.container),)] = at
        if self.in_map:
            self.container[self.key] = node
            self.key = None
        elif depth:
            self.container.append(node)

    def end(self, _event: Any, _values: Positions) -> None:
        self.container, self.in_map, self.key = self.stack.pop()
        self.depth -= 1

    def document(self, _event: Any, _values: Positions) -> None:
        self.documents += 1
        if self.documents > 1:
            raise _UnusualError

    def refuse(self, _event: Any, _values: Positions) -> None:
        raise _UnusualError

    def skip(self, _event: Any, _values: Positions) -> None:
        return


_ON_EVENT = {
    _SCALAR: _Lean.scalar,
    _MAPPING_START: _Lean.start,
    _SEQUENCE_START: _Lean.start,
    _MAPPING_END: _Lean.end,
    _SEQUENCE_END: _Lean.end,
    _DOCUMENT_START: _Lean.document,
    _ALIAS: _Lean.refuse,
}


def _lean_pass(text: bytes, file: str) -> Document:
    parser = _Parser(text)
    lean = _Lean()
    values: Positions = {}
    skip = _Lean.skip
    on_event = _ON_EVENT.get
    try:
        for event in iter(parser.get_event, None):
            on_event(type(event), skip)(lean, event, values)
    except yaml.YAMLError as exc:
        raise _UnusualError from exc
    finally:
        parser.dispose()
    return Document(lean.root, file, (values, lean.keys), text)


def load_bytes(raw: bytes, file: str, *, limit: int = MAX_BYTES) -> Document:
    """Parse `raw` as one safe YAML document; a refusal is a `ValidationError` with one problem."""
    try:
        text = _check_bytes(raw, limit)
        try:
            return _lean_pass(text, file)
        except _UnusualError:
            builder = _exact_pass(text, file)
    except _RefusedError as refused:
        path = "" if refused.path is None else json_path(refused.path)
        problem = Problem(
            refused.message, Location(file, refused.line, refused.column, path), refused.code
        )
        raise ValidationError(str(problem), (problem,)) from None
    tables = (builder.positions, builder.key_positions)
    return Document(builder.root, file, tables, text, tables)


_SYMLINK_MESSAGE = "is a symbolic link, not a regular file (links are never followed)"
OUTSIDE_MESSAGE = "is outside the repository (only files in it are read)"
# O_NONBLOCK: a FIFO swapped in after the lstat must not wait for a writer.
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW


def read_limited(
    path: os.PathLike[str], display: str | None = None, *, limit: int = MAX_BYTES
) -> bytes:
    """The bytes of a regular file, at most one past the size limit (50 MB cost 256 KiB).

    Only a regular file is read. A symbolic link is refused, never followed: a change file
    linked to /etc/passwd or a key must not be read, let alone quoted back in a report.
    FIFOs, sockets and devices are refused before they are opened.
    """
    name = display if display is not None else os.fspath(path)
    try:
        _must_be_regular(name, os.lstat(path).st_mode)
        fd = os.open(path, _OPEN_FLAGS)
        try:
            _must_be_regular(name, os.fstat(fd).st_mode)  # replaced since the lstat
            return _read_up_to(fd, limit + 1)
        finally:
            os.close(fd)
    except FileNotFoundError as exc:
        raise _refusal(name, "not-found", "file not found") from exc
    except IsADirectoryError as exc:
        raise _refusal(name, "unreadable", "is a directory, not a file") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link swapped in since the lstat
            raise _refusal(name, "unreadable", _SYMLINK_MESSAGE) from exc
        raise _refusal(name, "unreadable", f"cannot be read: {exc.strerror}") from exc
    except ValueError as exc:  # a NUL byte in the name
        raise _refusal(name, "unreadable", "cannot be read: not a usable file name") from exc


def read_inside(
    root: os.PathLike[str],
    path: os.PathLike[str],
    display: str | None = None,
    *,
    limit: int = MAX_BYTES,
) -> bytes:
    """`read_limited`, for a file that must also lie inside `root` (see `inside`)."""
    name = display if display is not None else os.fspath(path)
    if not inside(root, path):
        raise _refusal(name, "outside", OUTSIDE_MESSAGE)
    return read_limited(path, name, limit=limit)


def inside(root: os.PathLike[str], path: os.PathLike[str]) -> bool:
    """Whether `path` lies under `root` once the links of its folders are resolved (the
    name itself is not resolved: the reader refuses it if it is a link)."""
    full = Path(path).absolute()
    return folder_inside(root, full if full.name in ("", ".", "..") else full.parent)


def folder_inside(root: os.PathLike[str], folder: os.PathLike[str]) -> bool:
    """Whether `folder`, every link on its way resolved, is `root` or lies under it."""
    try:
        return Path(os.path.realpath(folder)).is_relative_to(os.path.realpath(root))
    except ValueError:  # a NUL byte in the name: nowhere at all
        return False


def _must_be_regular(name: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISLNK(mode):
        raise _refusal(name, "unreadable", _SYMLINK_MESSAGE)
    if stat.S_ISDIR(mode):
        raise _refusal(name, "unreadable", "is a directory, not a file")
    raise _refusal(name, "unreadable", "not a regular file (a FIFO, socket or device)")


def _read_up_to(fd: int, limit: int) -> bytes:
    # Plain os.read: no buffered file object per change, which a cold run creates 10,000 of.
    chunks = [os.read(fd, limit)]
    while chunks[-1] and (got := sum(map(len, chunks))) < limit:
        chunks.append(os.read(fd, limit - got))
    return b"".join(chunks)


def load_file(
    path: Path, display: str | None = None, *, limit: int = MAX_BYTES, root: Path | None = None
) -> Document:
    """Read (a regular file, within the size limit, inside `root` if given) and parse one file."""
    name = display if display is not None else str(path)
    raw = (
        read_limited(path, name, limit=limit)
        if root is None
        else read_inside(root, path, name, limit=limit)
    )
    return load_bytes(raw, name, limit=limit)


def _refusal(file: str, code: str, message: str) -> ValidationError:
    problem = Problem(message, Location(file), code)
    return ValidationError(str(problem), (problem,))
