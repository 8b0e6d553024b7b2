"""Deterministic tar.gz writing and safe, manifest-checked reading of evidence bundles.

Same members in, same bytes out: members sorted, fixed mtime, owner and mode, gzip header
without a name or time. Reading never extracts to disk: members are hashed in memory, and
any member that is not a plain file under the bundle's top directory is refused by name.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gcmschange.errors import InvalidInputError, Location, Problem

MANIFEST = "MANIFEST.sha256"
FIXED_MTIME = 946684800  # 2000-01-01T00:00:00Z: a bundle's bytes depend on its content only
_LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")


@dataclass(frozen=True)
class BundleReport:
    path: Path
    ok: bool
    members: int
    manifest_sha256: str
    problems: tuple[Problem, ...]


def manifest_text(files: Mapping[str, bytes]) -> str:
    """`sha256sum`-compatible lines, sorted by path."""
    return "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in sorted(files))


def write_bundle(out: Path, top: str, files: Mapping[str, bytes]) -> str:
    """Write `files` (relative path -> bytes) and their manifest under `top/`; return the
    manifest's SHA-256."""
    manifest = manifest_text(files).encode("utf-8")
    members = {**files, MANIFEST: manifest}
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


def _unsafe(name: str) -> str:
    path = PurePosixPath(name)
    if name.startswith("/") or "\\" in name or ".." in path.parts or not path.parts:
        return "unsafe member path"
    if len(path.parts) < 2:
        return "outside the bundle's top directory"
    return ""


def _problem(bundle: Path, member: str, message: str) -> Problem:
    return Problem(f"member {member}: {message}", Location(file=str(bundle)), code="evidence")


def _read_members(bundle: Path) -> tuple[str, dict[str, bytes], list[Problem]]:
    problems: list[Problem] = []
    contents: dict[str, bytes] = {}
    try:
        with tarfile.open(bundle, mode="r:gz") as tar:
            tops = {PurePosixPath(m.name).parts[0] for m in tar.getmembers() if m.name}
            top = sorted(tops)[0] if len(tops) == 1 else ""
            for member in tar.getmembers():
                reason = _unsafe(member.name) or (
                    "" if member.isfile() else "not a regular file (links and devices refused)"
                )
                if not reason and PurePosixPath(member.name).parts[0] != top:
                    reason = "outside the bundle's top directory"
                if not reason and member.name in contents:
                    reason = "appears twice"
                if reason:
                    problems.append(_problem(bundle, member.name, reason))
                    continue
                handle = tar.extractfile(member)
                contents[member.name] = handle.read() if handle else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidInputError(f"{bundle}: not a readable tar.gz bundle ({exc})") from exc
    if not top:
        problems.append(_problem(bundle, "*", "the bundle must hold exactly one top directory"))
    return top, contents, problems


def _parse_manifest(bundle: Path, text: str) -> tuple[dict[str, str], list[Problem]]:
    sums: dict[str, str] = {}
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _LINE.match(line)
        if not match or _unsafe(f"x/{match.group(2)}"):
            where = Location(file=f"{bundle}:{MANIFEST}", line=number)
            problems.append(Problem("not a `sha256  path` line", where, code="evidence"))
            continue
        sums[match.group(2)] = match.group(1)
    return sums, problems


def verify_bundle(bundle: Path) -> BundleReport:
    """Check every member against MANIFEST.sha256; report all problems, each by member."""
    if not bundle.is_file():
        raise InvalidInputError(f"{bundle}: no such file")
    top, contents, problems = _read_members(bundle)
    manifest = contents.pop(f"{top}/{MANIFEST}", None)
    if manifest is None:
        problems.append(_problem(bundle, f"{top}/{MANIFEST}", "missing: nothing to check against"))
        return BundleReport(bundle, False, len(contents), "", tuple(problems))
    sums, bad_lines = _parse_manifest(bundle, manifest.decode("utf-8", "replace"))
    problems += bad_lines
    for name, data in sorted(contents.items()):
        relative = name.removeprefix(f"{top}/")
        expected = sums.pop(relative, None)
        if expected is None:
            problems.append(_problem(bundle, name, "not in the manifest (added after the build)"))
        elif hashlib.sha256(data).hexdigest() != expected:
            problems.append(_problem(bundle, name, "SHA-256 does not match the manifest (altered)"))
    problems += [_problem(bundle, f"{top}/{n}", "in the manifest but missing") for n in sums]
    digest = hashlib.sha256(manifest).hexdigest()
    return BundleReport(bundle, not problems, len(contents), digest, tuple(problems))
