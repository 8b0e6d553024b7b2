"""Everything a change request is checked against, loaded once per validation run.

The estate and the policy are schema-checked first: a change cannot be judged against a
broken estate, so their problems stop the run. Catalogue templates, playbook specs and
inventories are checked too, but only the changes that use a broken one suffer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gcmschange import __version__, resources, yamlsafe
from gcmschange.errors import InvalidInputError, Location, Problem, ValidationError
from gcmschange.model import BlastRadius
from gcmschange.paths import state_dir
from gcmschange.rules import catalogue, estate, policy
from gcmschange.rules.catalogue import CatalogueEntry
from gcmschange.rules.estate import Estate, Inventory
from gcmschange.rules.policy import Policy
from gcmschange.validate.schema import SchemaChecker, checker


@dataclass(frozen=True)
class VariableSpec:
    name: str
    type: str  # Ansible argument_spec type: str int float bool list dict path raw
    choices: tuple[Any, ...] = ()
    required: bool = False
    secret: bool = False


@dataclass(frozen=True)
class PlaybookSpec:
    file: str  # playbooks/<name>.spec.yml
    options: dict[str, VariableSpec]


@dataclass(frozen=True)
class Context:
    root: Path
    estate: Estate
    policy: Policy
    change_schema: SchemaChecker
    catalogue: dict[str, CatalogueEntry]
    specs: dict[str, PlaybookSpec]
    playbooks: frozenset[str]  # names with playbooks/<name>.yml
    verify_files: frozenset[str]  # "verify/test_x.py"
    inventories: dict[str, Inventory]  # only environments whose inventory exists
    problems: tuple[Problem, ...]  # in shared files that some changes may depend on
    digest: str  # changes whenever anything a verdict depends on changes
    # Targets -> blast radius: thousands of changes share a handful of target sets.
    blast_memo: dict[tuple[str, ...], BlastRadius] = field(
        default_factory=dict, compare=False, repr=False
    )

    def related(self, a: str, b: str) -> bool:
        return self.estate.related(a, b)


def _schema_checked(root: Path, name: str, schema: str, check: bool) -> Any:
    doc = yamlsafe.load_file(root / name, name, root=root)
    problems = checker(resources.schemas_dir() / schema).problems(doc) if check else []
    if problems:
        raise ValidationError(
            f"{name} is invalid; fix it before validating changes", tuple(problems)
        )
    return doc


def _estate_references(doc: yamlsafe.Document) -> list[Problem]:
    systems = doc.data["systems"]
    found = [
        Problem(f"unknown system {dep!r}", doc.locate(("systems", sid, "depends_on", i)))
        for sid, system in systems.items()
        for i, dep in enumerate(system.get("depends_on", ()))
        if dep not in systems
    ]
    found += [
        Problem(f"unknown system {used!r}", doc.locate(("partners", pid, "consumes", i)))
        for pid, partner in (doc.data.get("partners") or {}).items()
        for i, used in enumerate(partner.get("consumes", ()))
        if used not in systems
    ]
    return found


def _load_estate(root: Path, check: bool) -> Estate:
    doc = _schema_checked(root, "estate.yml", "estate.schema.json", check)
    problems = _estate_references(doc)
    if problems:
        raise ValidationError(
            "estate.yml is invalid; fix it before validating changes", tuple(problems)
        )
    return estate.load_estate(root)


def _spec(root: Path, path: Path, check: bool) -> PlaybookSpec:
    rel = str(path.relative_to(root))
    doc = yamlsafe.load_file(path, rel, root=root)
    schema = checker(resources.schema("playbook-spec"))
    problems = schema.problems(doc) if check else []
    if problems:
        raise ValidationError(f"{rel} is invalid", tuple(problems))
    options = {
        name: VariableSpec(
            name=name,
            type=str(opt.get("type", "raw")),
            choices=tuple(opt.get("choices", ())),
            required=bool(opt.get("required", False)),
            secret=bool(opt.get("secret", False)),
        )
        for name, opt in doc.data["options"].items()
    }
    return PlaybookSpec(rel, options)


def _specs(root: Path, check: bool) -> tuple[dict[str, PlaybookSpec], list[Problem]]:
    specs: dict[str, PlaybookSpec] = {}
    problems: list[Problem] = []
    for path in sorted((root / "playbooks").glob("*.spec.yml")):
        try:
            specs[path.name.removesuffix(".spec.yml")] = _spec(root, path, check)
        except ValidationError as err:
            problems.extend(err.problems)
    return specs, problems


def _inventories(root: Path, envs: tuple[str, ...]) -> tuple[dict[str, Inventory], list[Problem]]:
    found: dict[str, Inventory] = {}
    problems: list[Problem] = []
    for env in envs:
        if not (root / "inventories" / env / "hosts.yml").is_file():
            continue  # the lab's is generated by `lab up`; without it, host checks are skipped
        try:
            found[env] = estate.load_inventory(root, env)
        except InvalidInputError as err:
            problems.append(Problem(err.message, Location(f"inventories/{env}/hosts.yml")))
    return found, problems


def _digest(root: Path) -> str:
    """A digest of everything a change's verdict depends on besides the change itself."""
    sha = hashlib.sha256(__version__.encode())
    package = Path(__file__).resolve().parent.parent
    parts = [*sorted(package.glob("validate/*.py")), *sorted(package.glob("rules/*.py"))]
    parts += [package / "yamlsafe.py", *sorted(resources.schemas_dir().glob("*.json"))]
    parts += [root / "estate.yml", root / "policy.yml"]
    for pattern in ("catalogue/*.yml", "playbooks/*", "inventories/*/hosts.yml"):
        parts += sorted(root.glob(pattern))
    for path in parts:
        sha.update(path.name.encode() + b"\0")  # names, not places: the root may be spelt "."
        if path.is_file():
            sha.update(path.read_bytes())
    for path in sorted(root.glob("verify/*")):
        sha.update(path.name.encode() + b"\0")
    return sha.hexdigest()


def _known_good(root: Path, digest: str) -> Path:
    """Marks shared files already schema-checked at this digest, so they are not again."""
    return state_dir(root) / "cache" / f"context-{digest[:24]}.ok"


def load_context(root: Path) -> Context:
    digest = _digest(root)
    marker = _known_good(root, digest)
    check = not marker.is_file()
    the_estate = _load_estate(root, check)
    entries, catalogue_problems = catalogue.load_catalogue(root, check=check)
    specs, spec_problems = _specs(root, check)
    inventories, inventory_problems = _inventories(root, the_estate.environments)
    playbooks = {p.stem for p in (root / "playbooks").glob("*.yml") if ".spec" not in p.suffixes}
    problems = (*catalogue_problems, *spec_problems, *inventory_problems)
    context = Context(
        root=root,
        estate=the_estate,
        policy=policy.load_policy(root, check=check),
        change_schema=checker(resources.schema("change-request")),
        catalogue=entries,
        specs=specs,
        playbooks=frozenset(playbooks),
        verify_files=frozenset(f"verify/{p.name}" for p in (root / "verify").glob("*.py")),
        inventories=inventories,
        problems=problems,
        digest=digest,
    )
    if check and not problems:
        _mark(marker)
    return context


def _mark(marker: Path) -> None:
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        for stale in marker.parent.glob("context-*.ok"):
            stale.unlink(missing_ok=True)
        marker.touch()
    except OSError:
        return  # read-only checkout: check again next time
