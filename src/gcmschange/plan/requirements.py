"""`requirements.yml` installed offline into the sealed tree: pinned roles and collections
from local sources only, each recorded with its version and hashes.

A repository names the roles and collections it needs in Ansible's `requirements.yml`. A run
must load only what its approvers saw, so each entry is installed, at seal time, into the
sealed copy (`.gcms-requirements/roles` and `.gcms-requirements/collections`, which the run's
ansible.cfg puts on its paths) and hashed there with everything else: a moved tag or an edited
tarball changes the digest. Sources are local: a git repository (`git+file://` or a path), a
tarball, a directory, or a collection already installed from a Python package
(`site-packages/ansible_collections`, for an entry with a name and a version but no source).
Galaxy, HTTP(S) and SSH sources are refused, as is an entry without an exact version.
A local source must lie inside the repository or under a folder the controller's operator
lists in `GCMS_REQUIREMENTS_SOURCES`: a branch's requirements.yml must not copy whatever the
controller holds (its keys, another repository) into a run that can ship it to a host.
`ansible-galaxy` does the installing, as a program (gcmschange never imports ansible-core),
with `--no-deps`: a dependency is one more line in requirements.yml, pinned like the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gcmschange import proc, yamlsafe
from gcmschange.errors import GcmsError, InvalidInputError
from gcmschange.paths import state_dir

FILE = "requirements.yml"
SOURCES_ENV = "GCMS_REQUIREMENTS_SOURCES"  # the controller's folders runs may install from
INSTALLED = ".gcms-requirements"  # inside the sealed tree; never a folder of the repository
RECORD = f"{INSTALLED}/installed.json"
ROLES = f"{INSTALLED}/roles"
COLLECTIONS = f"{INSTALLED}/collections"
ROLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)?$")
EXACT = re.compile(r"^(==)?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$")
NETWORK = re.compile(r"^(git\+)?(https?|ssh|git)://|^[^/]+@[^/]+:", re.IGNORECASE)
# What a galaxy install writes that is not content: the date it ran would make every seal's
# hash differ, so the digest would move between plan and apply.
BOOKKEEPING = ("meta/.galaxy_install_info",)
SKIPPED = frozenset({"__pycache__"})


@dataclass(frozen=True)
class Installed:
    kind: str  # "role" or "collection"
    name: str  # the role's folder, or namespace.collection
    version: str  # as pinned (and, for a collection, as its MANIFEST says)
    source: str  # as written in requirements.yml
    tree_sha256: str  # of the installed files: relative paths and contents
    source_sha256: str = ""  # of the tarball, when the source is one


@dataclass(frozen=True)
class _Entry:
    kind: str
    index: int
    raw: dict[str, Any]
    name: str
    version: str
    source: str  # "" when the entry names a collection only (a Python package's)
    how: str  # git, file, dir, python

    @property
    def where(self) -> str:
        shown = self.raw.get("name") or self.raw.get("src") or ""
        return f"{FILE}: {self.kind}s[{self.index}] ({shown})"


def _refuse(entry: str, why: str) -> InvalidInputError:
    return InvalidInputError(f"{entry}: {why}")


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    return str(value).strip() if value is not None else ""


def _how(source: str, declared: str) -> str:
    if declared in ("git", "file", "dir"):
        return declared
    if source.startswith("git+") or declared == "git" or source.endswith(".git"):
        return "git"
    if source.endswith((".tar.gz", ".tgz", ".tar")):
        return "file"
    return "dir"


def _entry(kind: str, index: int, raw: Any, root: Path) -> _Entry:
    where = f"{FILE}: {kind}s[{index}]"
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise _refuse(where, "must be a mapping with name, src and version")
    source_key = "src" if kind == "role" else "name"
    name, source = _text(raw, "name"), _text(raw, source_key)
    version, declared = _text(raw, "version"), _text(raw, "type") or _text(raw, "scm")
    where = f"{where} ({raw.get('name') or raw.get('src') or '?'})"
    if kind == "role" and not source:
        raise _refuse(where, "no src: a Galaxy role; runs install offline, from local sources only")
    if declared in ("galaxy", "url") or raw.get("source") or NETWORK.search(source):
        raise _refuse(where, "a network source; runs install offline, from local sources only")
    if not version or version in ("*", "latest", "HEAD"):
        raise _refuse(where, "not pinned: give the exact version (a tag or commit for git)")
    git = declared == "git" or source.startswith("git+")
    if kind == "collection" and not git and not EXACT.match(version):
        raise _refuse(where, f"version {version!r} is a range: pin one exact version")
    if kind == "role":
        if not ROLE_NAME.match(name):
            # ansible-galaxy joins the name to the install folder: `../..` would write outside
            # the sealed tree, somewhere a later run loads plugins from.
            raise _refuse(
                where,
                f"name {name!r}: a role installs as one folder, named with letters, "
                "digits, _ . and - (namespace.role allowed)",
            )
        how = _how(source, declared)
    elif "/" not in source and not source.startswith((".", "git+", "file:")):
        how, source = "python", ""  # namespace.name: from the Python environment
        if declared == "dir":
            raise _refuse(where, "type dir needs a path as its name")
    else:
        how = _how(source, declared)
    local = _local(source, root)
    if local:
        _allowed(where, _path_of(local), root)
    return _Entry(kind, index, raw, name, version.removeprefix("=="), local, how)


def _local(source: str, root: Path) -> str:
    """A relative path is the repository's; `file://` and `git+` are kept as galaxy reads them."""
    if not source or source.startswith(("git+", "file:")) or Path(source).is_absolute():
        return source
    return str((root / source).resolve())


def _path_of(source: str) -> Path:
    """The controller path a local source reads: `git+file:///srv/x.git` -> /srv/x.git."""
    path = source.removeprefix("git+").removeprefix("file://")
    if path.startswith("file:"):  # file:relative, which galaxy would read from its cwd
        path = path.removeprefix("file:")
    return Path(path)


def allowed_roots(root: Path) -> tuple[Path, ...]:
    """Where requirements may come from: the repository, and the operator's folders."""
    listed = os.environ.get(SOURCES_ENV, "")
    # A relative entry would be read from wherever the run happens to start: ignored.
    folders = [Path(p) for p in listed.split(os.pathsep) if p.strip()]
    extra = [f.resolve() for f in folders if f.is_absolute()]
    return (root.resolve(), *extra)


def _allowed(where: str, path: Path, root: Path) -> None:
    if "%" in str(path):
        # git and urllib decode %2e%2e in a URL into `..`: what would be judged is not
        # what would be read.
        raise _refuse(where, f"{path}: percent-encoding in a source; write the path plainly")
    if not path.is_absolute():
        raise _refuse(where, f"{path}: a relative source URL; give a path or git+file:///PATH")
    resolved = path.resolve()  # `..` and links are judged where they lead
    roots = allowed_roots(root)
    if not any(resolved == r or resolved.is_relative_to(r) for r in roots):
        raise _refuse(
            where,
            f"{path} is outside the repository and outside every folder the controller allows "
            f"({SOURCES_ENV}={os.pathsep.join(str(r) for r in roots[1:]) or 'unset'}); "
            "ask the controller's operator to list the folder that holds it",
        )


def read(root: Path, content: Path) -> tuple[_Entry, ...]:
    """The entries of `content`'s requirements.yml, every one checked before any installs."""
    path = content / FILE
    if not path.is_file():
        return ()
    data = yamlsafe.load_file(path, FILE, root=content).data
    if isinstance(data, list):  # the old form: a list of roles
        data = {"roles": data}
    if not isinstance(data, dict) or not set(data) <= {"roles", "collections"}:
        raise InvalidInputError(f"{FILE}: must hold roles: and collections: lists, nothing else")
    return tuple(
        _entry(kind, i, raw, root)
        for kind in ("role", "collection")
        for i, raw in enumerate(data.get(f"{kind}s") or ())
    )


def _tree_sha256(folder: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(_files(folder)):
        sha.update(path.relative_to(folder).as_posix().encode() + b"\0")
        sha.update(hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    return sha.hexdigest()


def _files(folder: Path) -> Iterator[Path]:
    for base, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
        for name in files:
            path = Path(base) / name
            if path.is_symlink():
                raise InvalidInputError(f"{path}: a symbolic link among installed content")
            yield path


def _galaxy(entry: _Entry, args: list[str], spec: dict[str, Any], work: Path) -> None:
    request = work / f"{entry.kind}-{entry.index}.yml"
    request.write_text(json.dumps({f"{entry.kind}s": [spec]}), encoding="utf-8")
    env = {
        # The ansible-galaxy of this Python (its ansible-core, the one runs use) comes first.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "HOME": str(work),
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "ANSIBLE_CONFIG": str(work / "ansible.cfg"),  # none: no stray ansible.cfg applies
        # Nothing should ask a server; if anything did, it would meet a closed local port.
        "ANSIBLE_GALAXY_SERVER": "http://127.0.0.1:9/",
        "ANSIBLE_NOCOLOR": "1",
    }
    try:
        proc.run(["ansible-galaxy", *args, "-r", str(request)], cwd=work, env=env, timeout=300)
    except GcmsError as err:
        raise _refuse(
            entry.where, f"ansible-galaxy could not install it: {_why(err.message)}"
        ) from err


def _why(output: str) -> str:
    """ansible-galaxy's own reason, in one line: its first error that is not advice."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    said = [
        line
        for line in lines
        if ("ERROR" in line or "NOT installed" in line) and "--ignore-errors" not in line
    ]
    why = (said or lines or ["no reason given"])[0]
    for prefix in ("stdout: ", "stderr: ", "[WARNING]: ", "[ERROR]: ", "- "):
        why = why.removeprefix(prefix)
    return why


def _role(entry: _Entry, dest: Path, work: Path) -> Installed:
    spec = {"name": entry.name, "src": entry.source, "version": entry.version}
    if _text(entry.raw, "scm"):
        spec["scm"] = _text(entry.raw, "scm")
    _galaxy(entry, ["role", "install", "--no-deps", "-p", str(dest)], spec, work)
    folder = dest / entry.name
    if not folder.is_dir():
        raise _refuse(entry.where, f"ansible-galaxy installed nothing as {entry.name}")
    for bookkeeping in BOOKKEEPING:
        (folder / bookkeeping).unlink(missing_ok=True)
    return Installed(
        "role",
        entry.name,
        entry.version,
        _shown(entry),
        _tree_sha256(folder),
        _source_sha256(entry),
    )


def _shown(entry: _Entry) -> str:
    return str(entry.raw.get("src") or entry.raw.get("name") or "")


def _source_sha256(entry: _Entry) -> str:
    if entry.how != "file":
        return ""
    path = Path(entry.source.removeprefix("file://"))
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _collections(dest: Path) -> dict[str, Path]:
    top = dest / "ansible_collections"
    if not top.is_dir():
        return {}
    return {f"{c.parent.name}.{c.name}": c for c in top.glob("*/*") if c.is_dir()}


def version_of(folder: Path) -> str:
    """A collection's own word for its version: MANIFEST.json (built) or galaxy.yml (source)."""
    manifest = folder / "MANIFEST.json"
    if manifest.is_file():
        info = json.loads(manifest.read_text(encoding="utf-8")).get("collection_info", {})
        return str(info.get("version", ""))
    galaxy = folder / "galaxy.yml"
    if galaxy.is_file():
        data = yamlsafe.load_file(galaxy).data
        return str(data.get("version", "")) if isinstance(data, dict) else ""
    return ""


def _collection(entry: _Entry, dest: Path, work: Path) -> Installed:
    before = _collections(dest)
    if entry.how == "python":
        folder = _from_python(entry, dest)
    else:
        spec = {"name": entry.source, "type": entry.how, "version": entry.version}
        args = ["collection", "install", "--no-deps", "--offline", "-p", str(dest)]
        _galaxy(entry, args, spec, work)
        new = {n: p for n, p in _collections(dest).items() if n not in before}
        if len(new) != 1:
            raise _refuse(entry.where, f"expected one collection, ansible-galaxy gave {len(new)}")
        folder = next(iter(new.values()))
    found = version_of(folder)
    if entry.how != "git" and found != entry.version:
        raise _refuse(entry.where, f"pinned {entry.version} but the source holds {found or '?'}")
    name = f"{folder.parent.name}.{folder.name}"
    return Installed(
        "collection",
        name,
        found or entry.version,
        _shown(entry),
        _tree_sha256(folder),
        _source_sha256(entry),
    )


def python_collection(name: str) -> Path | None:
    """Where this Python environment holds collection `namespace.name` (a package's
    `site-packages/ansible_collections/...`), found on `sys.path` without importing it."""
    namespace, _, collection = name.partition(".")
    # Installed packages only: "" (the working directory) could be the repository itself.
    for entry in filter(os.path.isabs, sys.path):
        folder = Path(entry) / "ansible_collections" / namespace / collection
        if folder.is_dir():
            return folder
    return None


def _from_python(entry: _Entry, dest: Path) -> Path:
    source = python_collection(entry.name)
    if source is None:
        raise _refuse(
            entry.where,
            "not installed in this Python environment, and Galaxy is not reachable offline: "
            "install the package that ships it, or give a local source",
        )
    held = version_of(source)
    if held != entry.version:
        raise _refuse(entry.where, f"pinned {entry.version} but {source} holds {held or '?'}")
    folder = dest / "ansible_collections" / source.parent.name / source.name
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns(*SKIPPED), symlinks=True)
    return folder


def install(root: Path, content: Path) -> list[tuple[str, str]]:
    """Install `content`'s requirements.yml into it; return (relative path, sha256) of every
    file installed and of the record, for the seal's hash. Nothing is left half-installed:
    any refusal leaves the caller's partial tree to be thrown away."""
    entries = read(root, content)
    if not entries:
        return []
    records: list[Installed] = []
    with tempfile.TemporaryDirectory(prefix="gcms-galaxy-") as tmp:
        work = Path(tmp)
        for entry in entries:
            if entry.kind == "role":
                records.append(_role(entry, content / ROLES, work))
            else:
                records.append(_collection(entry, content / COLLECTIONS, work))
    record = content / RECORD
    record.write_text(json.dumps([asdict(r) for r in records], indent=2, sort_keys=True) + "\n")
    installed = sorted(_files(content / INSTALLED))
    return [
        (p.relative_to(content).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in installed
    ]


def installed(content: Path) -> tuple[Installed, ...]:
    """What a sealed tree had installed from requirements.yml (none when it had none)."""
    record = content / RECORD
    if not record.is_file():
        return ()
    return tuple(Installed(**r) for r in json.loads(record.read_text(encoding="utf-8")))


def recorded(root: Path, change_id: str) -> dict[str, list[dict[str, str]]]:
    """Per sealed tree of a change (by its hash), the roles and collections it installed:
    what the evidence bundle carries."""
    base = state_dir(root) / "sealed" / change_id
    found = {}
    for folder in sorted(base.glob("*")) if base.is_dir() else ():
        if folder.is_dir() and not folder.name.startswith("."):
            records = installed(folder)
            if records:
                found[folder.name] = [asdict(r) for r in records]
    return found
