"""The catalogue of standard changes: pre-approved templates with bounded parameters.

A standard change names a template and gives parameters; instantiating copies the
template's playbook and fixed variables and maps each parameter, as data, onto a variable.
Nothing is templated, so a parameter's text reaches the hosts exactly as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from gcmschange import resources, yamlsafe
from gcmschange.errors import Problem, ValidationError
from gcmschange.validate.schema import SchemaChecker, checker, checker_for

IMPACT_ORDER = ("none", "degraded", "outage")


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    file: str  # relative to the repository
    playbook: str
    systems: tuple[str, ...]
    environments: tuple[str, ...]
    max_window: timedelta
    max_impact: str
    variables: dict[str, Any]
    variables_from_parameters: dict[str, str]
    parameters: SchemaChecker

    def allows_impact(self, level: str) -> bool:
        return IMPACT_ORDER.index(level) <= IMPACT_ORDER.index(self.max_impact)


def load_entry(root: Path, path: Path, *, check: bool = True) -> CatalogueEntry:
    """One template, schema-checked unless known good; a broken one is a `ValidationError`."""
    rel = str(path.relative_to(root))
    doc = yamlsafe.load_file(path, rel, root=root)
    schema = checker(resources.schema("catalogue-entry"))
    problems = schema.problems(doc) if check else []
    data = doc.data
    if not problems and data["name"] != path.stem:
        problems = [Problem(f"name must be {path.stem!r}, as the file", doc.locate(("name",)))]
    if problems:
        raise ValidationError(f"{rel}: invalid catalogue template", tuple(problems))
    try:
        parameters = checker_for(data["parameters"], f"{rel} parameters", check=check)
    except ValueError as exc:
        problem = Problem(str(exc), doc.locate(("parameters",)))
        raise ValidationError(f"{rel}: invalid catalogue template", (problem,)) from exc
    return CatalogueEntry(
        name=data["name"],
        file=rel,
        playbook=data["playbook"],
        systems=tuple(data["systems"]),
        environments=tuple(data["environments"]),
        max_window=timedelta(hours=data["max_window_hours"]),
        max_impact=data["max_impact"],
        variables=dict(data.get("variables") or {}),
        variables_from_parameters=dict(data.get("variables_from_parameters") or {}),
        parameters=parameters,
    )


def load_catalogue(
    root: Path, *, check: bool = True
) -> tuple[dict[str, CatalogueEntry], tuple[Problem, ...]]:
    """Every template under catalogue/, and the problems of those that cannot be used."""
    entries: dict[str, CatalogueEntry] = {}
    problems: list[Problem] = []
    for path in sorted((root / "catalogue").glob("*.yml")):
        try:
            entry = load_entry(root, path, check=check)
        except ValidationError as err:
            problems.extend(err.problems)
            continue
        entries[entry.name] = entry
    return entries, tuple(problems)


def instantiate(doc: dict[str, Any], entry: CatalogueEntry) -> dict[str, Any]:
    """The change as it will run: the template's playbook and variables, parameters copied in."""
    params = doc.get("parameters") or {}
    variables = dict(entry.variables)
    for variable, parameter in entry.variables_from_parameters.items():
        if parameter in params:
            variables[variable] = params[parameter]
    return {**doc, "playbook": entry.playbook, "variables": variables}
