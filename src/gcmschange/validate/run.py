"""Validate change requests: every problem collected, located, and reported at once.

    files -> safe YAML -> schema -> references, variables, catalogue, policy (cached per file)
          -> duplicate ids, calendar conflicts, notice (across all open changes, every run)

The result is a `Report`; nothing here prints. A broken estate or policy raises
`ValidationError` (nothing can be judged against it); everything else is a `Problem`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from gcmschange import yamlsafe
from gcmschange.audit import trail
from gcmschange.errors import Location, Problem, ValidationError
from gcmschange.model import BlastRadius
from gcmschange.validate import crosscheck, rules
from gcmschange.validate.cache import AuditIndex, FileResult, ResultCache, signature
from gcmschange.validate.context import Context, load_context
from gcmschange.validate.schema import kind_of

Source = Path | os.DirEntry[str]  # a file to check: DirEntry saves a Path per listed change
__all__ = [
    "FileResult",
    "Report",
    "display_name",
    "present",
    "record_audit",
    "resolve",
    "shown",
    "validate",
]


@dataclass(frozen=True)
class Report:
    results: tuple[FileResult, ...]  # one per file asked for, in order
    problems: tuple[Problem, ...]  # in shared files (catalogue, specs, inventories)
    fresh: int = 0  # files checked this run; the others' verdicts came from the cache

    def all_problems(self) -> tuple[Problem, ...]:
        return (*self.problems, *(p for r in self.results for p in r.problems))

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.all_problems())


def display_name(root: Path, path: Path) -> str:
    """The path relative to the repository when inside it (as users and CI show files)."""
    full, base = path.absolute(), root.absolute()
    if full.is_relative_to(base):
        return shown(str(full.relative_to(base)))
    try:
        return shown(str(path.resolve().relative_to(root.resolve())))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a loop of links
        return shown(str(path))


def shown(name: str) -> str:
    """A file name as messages show it: on one line, whatever characters it holds.

    Names with control, invisible or undecodable characters (or a backslash) are shown
    quoted and escaped; no other name has a backslash, so two files never share a shown
    name (the name is also the file's key in the run and in the cache).
    """
    return name if name.isprintable() and "\\" not in name else ascii(name)


def resolve(root: Path, ref: str) -> Path:
    """A change given as a path, or as an id naming changes/<id>.yaml."""
    as_path = Path(ref)
    for candidate in (as_path, root / as_path, root / "changes" / f"{ref}.yaml"):
        if present(candidate):
            return candidate
    return root / as_path  # not there: the reader says so, of a name in the repository


def present(path: Path) -> bool:
    """Whether something non-folder is there: a link or a FIFO too, so the reader refuses it
    by name rather than the run saying the file is missing."""
    try:
        return not stat.S_ISDIR(path.lstat().st_mode)
    except (OSError, ValueError):
        return False


def _blast(ctx: Context, data: dict[str, object]) -> BlastRadius | None:
    systems = data.get("systems")
    if not isinstance(systems, list):
        return None
    known = tuple(s for s in systems if isinstance(s, str) and s in ctx.estate.systems)
    if not known:
        return None
    found = ctx.blast_memo.get(known)
    if found is None:
        found = ctx.blast_memo[known] = ctx.estate.blast_radius(known)
    return found


def content_key(file: str, raw: bytes) -> str:
    return hashlib.sha256(file.encode() + b"\0" + raw).hexdigest()


def check_bytes(ctx: Context, raw: bytes, file: str, key: str | None = None) -> FileResult:
    """Everything about one file that depends only on its content and the context."""
    key = key or content_key(file, raw)
    try:
        doc = yamlsafe.load_bytes(raw, file)
    except ValidationError as err:
        return FileResult(file, key, None, err.problems, None, None)
    if not isinstance(doc.data, dict):
        message = f"a change request is a mapping of fields, not {kind_of(doc.data)}"
        return FileResult(file, key, None, (Problem(message, doc.locate(())),), None, None)
    schema_problems = ctx.change_schema.problems(doc)
    rule_problems, facts = rules.check(ctx, doc, schema_problems)
    problems = [*schema_problems, *rule_problems]
    change_id = _valid_id(doc.data, schema_problems)
    if len(problems) > 1:
        problems.sort(key=_order)
    blast = _blast(ctx, doc.data)
    at = doc.locate(("id",))
    return FileResult(file, key, change_id, tuple(problems), facts, blast, (at.line, at.column))


def _valid_id(data: dict[str, object], schema_problems: list[Problem]) -> str | None:
    """The id, once the schema accepted it: reports, JUnit and the audit log show it as is."""
    change_id = data.get("id")
    if not isinstance(change_id, str) or any(p.location.path == "$.id" for p in schema_problems):
        return None
    return change_id


def _order(p: Problem) -> tuple[str, int, int]:
    return (p.location.file, p.location.line, p.location.column)


def _refused(
    root: Path, paths: dict[str, Source], listed: dict[str, Source]
) -> dict[str, FileResult]:
    """Files not read at all: named with characters a message cannot show as they are, or
    named under the root but held outside it (their folder is a link leading out).

    The entries of changes/ share one folder, checked once; other files one by one.
    """
    changes_inside = not listed or yamlsafe.folder_inside(root, root / "changes")
    found: dict[str, FileResult] = {}
    for file, path in paths.items():
        if "\\" in file:  # `shown` escaped it
            found[file] = _refusal(file, "name", _NAME_MESSAGE)
        elif not (changes_inside if file in listed else yamlsafe.inside(root, path)):
            found[file] = _refusal(file, "outside", yamlsafe.OUTSIDE_MESSAGE)
    return found


_NAME_MESSAGE = "the file name holds control, invisible or undecodable characters; rename it"


def _refusal(file: str, code: str, message: str) -> FileResult:
    return FileResult(file, "", None, (Problem(message, Location(file), code),), None, None)


def _signature(path: Source) -> str | None:
    try:
        # Of the entry itself: a link swapped in for a checked file must not inherit its verdict.
        return signature(path.stat(follow_symlinks=False))
    except OSError:
        return None  # reading it says why, in the words the loader uses


def _check_file(
    ctx: Context, cache: ResultCache, path: Source, file: str, sig: str | None
) -> FileResult:
    """Read, hash and check a file the cache could not vouch for by its signature alone."""
    try:
        raw = yamlsafe.read_limited(path, file)
    except ValidationError as err:
        return FileResult(file, "", None, err.problems, None, None)
    key = content_key(file, raw)
    cached = cache.get(file, key, sig)
    if cached is not None:
        return cached
    result = check_bytes(ctx, raw, file, key)
    cache.put(result, sig)
    return result


def _cross_file(
    ctx: Context, results: list[FileResult], targets: set[str], now: datetime | None
) -> dict[str, list[Problem]]:
    """Problems per file that depend on other files or on the clock."""
    extra: dict[str, list[Problem]] = defaultdict(list)
    ids: dict[str, list[str]] = defaultdict(list)
    for result in results:
        if result.change_id:
            ids[result.change_id].append(result.file)
    duplicates = crosscheck.duplicate_ids(ids)
    for result in results if duplicates else ():
        if result.file in duplicates:
            problem = Problem(duplicates[result.file], result.id_at, "duplicate-id")
            extra[result.file].append(problem)
    facts = [r.facts for r in results if r.facts is not None]
    for file, problem in crosscheck.conflicts(ctx, facts, targets):
        extra[file].append(problem)
    if now is not None:
        for file, problem in crosscheck.clock_all(ctx.policy, facts, targets, now):
            extra[file].append(problem)
    return extra


def _listed(root: Path) -> dict[str, Source]:
    """Every changes/*.yaml (as glob finds them, in name order): shown name -> entry."""
    try:
        with os.scandir(root / "changes") as found:
            entries = {shown(f"changes/{e.name}"): e for e in found if e.name.endswith(".yaml")}
    except OSError:
        return {}
    return dict(sorted(entries.items()))


def validate(
    root: Path,
    refs: Sequence[str] = (),
    *,
    now: datetime | None = None,
    clock: bool = True,
    use_cache: bool = True,
) -> Report:
    """Validate the named changes (paths or ids; default: every changes/*.yaml).

    `now` is the moment notice is measured from (default: the real clock); `clock=False`
    skips the checks that depend on it, for stages that run inside the window.
    """
    ctx = load_context(root)
    listed = _listed(root)
    paths = dict(listed)
    wanted = list(paths)
    if refs:
        # Files found under changes/ are named cheaply; only paths given by the user are resolved.
        wanted = []
        for ref in refs:
            path = resolve(root, ref)
            file = display_name(root, path)
            paths.setdefault(file, path)
            wanted.append(file)
    cache = ResultCache(root, ctx.digest, enabled=use_cache)
    refused = _refused(root, paths, listed)
    # Signatures are taken before any read, so a write in between leaves a newer one.
    sigs = {file: None if file in refused else _signature(path) for file, path in paths.items()}
    known = cache.unchanged(sigs)
    by_file = {
        file: refused.get(file)
        or known.get(file)
        or _check_file(ctx, cache, source, file, sigs[file])
        for file, source in paths.items()
    }
    cache.save()
    targets = set(wanted)
    moment = (now or datetime.now(UTC)) if clock else None
    extra = _cross_file(ctx, list(by_file.values()), targets, moment)
    results = tuple(_with(by_file[file], extra.get(file)) for file in dict.fromkeys(wanted))
    return Report(results, ctx.problems, fresh=cache.fresh)


def _with(result: FileResult, extra: list[Problem] | None) -> FileResult:
    if not extra:
        return result
    return replace(result, problems=tuple(sorted([*result.problems, *extra], key=_order)))


def record_audit(root: Path, report: Report) -> int:
    """A `validated` event per change whose content or outcome is new; returns how many.

    All of them in one batch: one lock, one write, one fsync, however many changes.
    """
    index = AuditIndex(root)
    batch: list[trail.NewEvent] = []
    for result in report.results:
        outcome = "failed" if any(p.severity == "error" for p in result.problems) else "ok"
        if not index.is_new(result.file, result.key, outcome):
            continue
        details = {"file": result.file, "sha256": result.key, "problems": len(result.problems)}
        batch.append(trail.NewEvent("validated", outcome, result.change_id, details=details))
        index.mark(result.file, result.key, outcome)
    trail.record_many(root, batch)
    index.save()
    return len(batch)
