"""Deterministic tar.gz writing and safe, manifest-checked reading of evidence bundles.

Same members in, same bytes out: members sorted, fixed mtime, owner and mode, gzip header
without a name or time. Reading never extracts to disk and never holds a member in memory
(but the manifest): the archive is read once, front to back, each member hashed as it
streams by. A bundle is refused, before its data is read, past any of the limits below
(members, bytes per member, bytes in all): a few compressed megabytes can declare a
gibibyte, or hundreds of thousands of members. `write_bundle` refuses the same, so every
bundle gcmschange writes can be verified. Any member that is not a plain file under the
bundle's top directory is refused by name.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path, PurePosixPath

from gcmschange.errors import InvalidInputError, Location, Problem
from gcmschange.textsafe import shown

MANIFEST = "MANIFEST.sha256"
FIXED_MTIME = 946684800  # 2000-01-01T00:00:00Z: a bundle's bytes depend on its content only
_LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")

# Far above any real bundle (text members are cut to 1 MiB when built; a change with many
# hosts and runs has thousands of runner events), far below what exhausts a CI runner.
MAX_MEMBERS = 50_000
MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 512 * 1024 * 1024
# Uncompressed bytes that may be read between two members, besides the first one's data:
# its padding and the next header, long names and pax records included. tarfile reads a pax
# record whole, so this bounds the memory a forged header can take.
HEADER_BYTES = 1024 * 1024
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class BundleReport:
    path: Path
    ok: bool
    members: int
    manifest_sha256: str
    problems: tuple[Problem, ...]
    top: str = ""  # the bundle's top directory, e.g. evidence-CHG-LAB-0001


class _Budget(io.BufferedIOBase):
    """A read-only stream that refuses to give more than it was last allowed to.

    tarfile reads what headers declare; this is what stops it, wherever the declaration.
    """

    def __init__(self, raw: io.BufferedIOBase, bundle: Path) -> None:
        super().__init__()
        self._raw = raw
        self._bundle = bundle
        self._left = HEADER_BYTES

    def allow(self, data_bytes: int) -> None:
        """From here, the current member's data (padded to 512-byte blocks) and one header."""
        self._left = -(-data_bytes // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE + HEADER_BYTES

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._left <= 0:
            raise InvalidInputError(
                f"{self._bundle}: a tar header or record runs past {HEADER_BYTES} bytes: "
                "refused without reading further (not a bundle gcmschange writes)"
            )
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._raw.read(want)
        self._left -= len(data)
        return data


@dataclass
class _Members:
    """What one pass over a bundle found: each member's SHA-256, the manifest's bytes."""

    top: str = ""
    tops: set[str] = field(default_factory=set)
    sums: dict[str, str] = field(default_factory=dict)  # member name -> SHA-256
    manifest: bytes | None = None
    count: int = 0
    total: int = 0
    problems: list[Problem] = field(default_factory=list)


def manifest_text(files: Mapping[str, bytes]) -> str:
    """`sha256sum`-compatible lines, sorted by path."""
    return "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in sorted(files))


def write_bundle(out: Path, top: str, files: Mapping[str, bytes]) -> str:
    """Write `files` (relative path -> bytes) and their manifest under `top/`; return the
    manifest's SHA-256."""
    manifest = manifest_text(files).encode("utf-8")
    members = {**files, MANIFEST: manifest}
    _writable(out, members)
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted(members):
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(members[name])
            info.mtime = FIXED_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(members[name]))
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(out)
    return hashlib.sha256(manifest).hexdigest()


def _writable(out: Path, members: Mapping[str, bytes]) -> None:
    """Refuse to write a bundle `verify_bundle` would refuse to read."""
    largest = max(members, key=lambda n: len(members[n]))
    total = sum(len(data) for data in members.values())
    if len(members) > MAX_MEMBERS:
        why = f"{len(members)} members, more than the {MAX_MEMBERS} a bundle may hold"
    elif len(members[largest]) > MAX_MEMBER_BYTES:
        size = _mib(len(members[largest]))
        why = f"{largest} is {size}, over the {_mib(MAX_MEMBER_BYTES)} one member may hold"
    elif total > MAX_TOTAL_BYTES:
        why = f"members add up to {_mib(total)}, over {_mib(MAX_TOTAL_BYTES)}"
    else:
        return
    raise InvalidInputError(f"{out}: cannot write the bundle: {why}")


def _unsafe(name: str) -> str:
    path = PurePosixPath(name)
    if name.startswith("/") or "\\" in name or ".." in path.parts or not path.parts:
        return "unsafe member path"
    if len(path.parts) < 2:
        return "outside the bundle's top directory"
    return ""


def _problem(bundle: Path, member: str, message: str) -> Problem:
    # Member names come from the archive: shown with their control characters escaped.
    text = f"member {shown(member)}: {message}"
    return Problem(text, Location(file=str(bundle)), code="evidence")


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _within_limits(bundle: Path, member: tarfile.TarInfo, found: _Members) -> None:
    """Refuse the bundle at the first limit `member` crosses, before reading its data."""
    if found.count >= MAX_MEMBERS:
        raise InvalidInputError(
            f"{bundle}: more than {MAX_MEMBERS} members: refused without reading further "
            "(an evidence bundle holds far fewer)"
        )
    if member.size > MAX_MEMBER_BYTES:
        raise InvalidInputError(
            f"{bundle}: member {shown(member.name)} is {_mib(member.size)}, over the "
            f"{_mib(MAX_MEMBER_BYTES)} one member may hold: refused without reading it"
        )
    if found.total + member.size > MAX_TOTAL_BYTES:
        raise InvalidInputError(
            f"{bundle}: members add up to more than {_mib(MAX_TOTAL_BYTES)} "
            f"(at {shown(member.name)}): refused without reading further"
        )


def _refusal(member: tarfile.TarInfo, found: _Members) -> str:
    """Why `member` is not hashed ("" when it is); the first safe name sets the top folder."""
    unsafe = _unsafe(member.name)
    if unsafe:
        return unsafe
    top = PurePosixPath(member.name).parts[0]
    found.tops.add(top)
    found.top = found.top or top
    if not member.isfile():
        return "not a regular file (links and devices refused)"
    if top != found.top:
        return "outside the bundle's top directory"
    if member.name in found.sums:
        return "appears twice"
    return ""


def _take(bundle: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, found: _Members) -> None:
    """Hash one member as it streams by; keep the bytes of the manifest only."""
    reason = _refusal(member, found)
    if reason:
        found.problems.append(_problem(bundle, member.name, reason))
        return
    handle = tar.extractfile(member)
    digest = hashlib.sha256()
    keep = member.name == f"{found.top}/{MANIFEST}"
    kept = bytearray()
    while handle is not None and (chunk := handle.read(_CHUNK)):
        digest.update(chunk)
        if keep:
            kept += chunk
    found.sums[member.name] = digest.hexdigest()
    if keep:
        found.manifest = bytes(kept)


def _read_members(bundle: Path) -> _Members:
    found = _Members()
    try:
        with gzip.open(bundle, "rb") as raw:
            budget = _Budget(raw, bundle)
            with tarfile.open(fileobj=budget, mode="r|") as tar:
                for member in tar:
                    _within_limits(bundle, member, found)
                    budget.allow(member.size)
                    found.count += 1
                    found.total += member.size
                    _take(bundle, tar, member, found)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise InvalidInputError(f"{bundle}: not a readable tar.gz bundle ({exc})") from exc
    if len(found.tops) != 1:
        found.top = ""
        found.problems.append(
            _problem(bundle, "*", "the bundle must hold exactly one top directory")
        )
    return found


def _parse_manifest(bundle: Path, text: str) -> tuple[dict[str, str], list[Problem]]:
    sums: dict[str, str] = {}
    problems = []
    # Read lazily, and no further than a bundle's members could need: a manifest of millions
    # of empty lines would otherwise become millions of strings and problems.
    lines = islice(io.StringIO(text, newline=None), MAX_MEMBERS + 1)
    for number, raw in enumerate(lines, start=1):
        if number > MAX_MEMBERS:
            where = Location(file=f"{bundle}:{MANIFEST}", line=number)
            problems.append(Problem(f"more than {MAX_MEMBERS} lines", where, code="evidence"))
            break
        line = raw.removesuffix("\n")
        match = _LINE.match(line)
        if not match or _unsafe(f"x/{match.group(2)}"):
            where = Location(file=f"{bundle}:{MANIFEST}", line=number)
            problems.append(Problem("not a `sha256  path` line", where, code="evidence"))
            continue
        sums[match.group(2)] = match.group(1)
    return sums, problems


def verify_bundle(bundle: Path) -> BundleReport:
    """Check every member against MANIFEST.sha256; report all problems, each by member.

    Raises `InvalidInputError` for a file that is not a readable bundle or that crosses a
    limit (MAX_MEMBERS, MAX_MEMBER_BYTES, MAX_TOTAL_BYTES, HEADER_BYTES).
    """
    if not bundle.is_file():
        raise InvalidInputError(f"{bundle}: no such file")
    found = _read_members(bundle)
    top, problems = found.top, found.problems
    sums = dict(found.sums)
    sums.pop(f"{top}/{MANIFEST}", None)
    if found.manifest is None:
        problems.append(_problem(bundle, f"{top}/{MANIFEST}", "missing: nothing to check against"))
        return BundleReport(bundle, False, len(sums), "", tuple(problems), top)
    listed, bad_lines = _parse_manifest(bundle, found.manifest.decode("utf-8", "replace"))
    problems += bad_lines
    for name, actual in sorted(sums.items()):
        expected = listed.pop(name.removeprefix(f"{top}/"), None)
        if expected is None:
            problems.append(_problem(bundle, name, "not in the manifest (added after the build)"))
        elif actual != expected:
            problems.append(_problem(bundle, name, "SHA-256 does not match the manifest (altered)"))
    problems += [_problem(bundle, f"{top}/{n}", "in the manifest but missing") for n in listed]
    digest = hashlib.sha256(found.manifest).hexdigest()
    return BundleReport(bundle, not problems, len(sums), digest, tuple(problems), top)
