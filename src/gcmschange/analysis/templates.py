"""Analysis templates: which Prometheus queries judge a wave, and by what conditions.

Modelled on Argo Rollouts' AnalysisTemplate: a query with arguments, an interval, a count, a
success and a failure condition, a failure limit and an inconclusive limit. The estate names
templates once (`estate.yml`, `analysis.templates`) and gives each system its defaults
(`systems.<id>.analysis`), so most changes are judged without writing any analysis; a change's
own `analysis:` block may override a named template's fields, add templates, choose which
ones run (`use`) and set the bake time. Both files are in the sealed tree, so what judges a
wave is part of what was approved.

Queries take arguments as `{{ args.NAME }}`: `system`, `hosts` (the wave's hosts of that
system as a regular expression alternation, for `host=~"..."`), `wave` and `environment`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gcmschange import yamlsafe
from gcmschange.analysis.expr import Condition, compile_condition
from gcmschange.errors import InvalidInputError
from gcmschange.model import ChangeRequest

DEFAULT_BAKE_SECONDS = 10.0
ARGS = ("system", "hosts", "wave", "environment")
_ARG = re.compile(r"\{\{\s*args\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Argument values end up inside PromQL string literals and regular expressions: only names
# (and the alternation and escaped dots `host_pattern` makes of them).
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:|\\-]*$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
FIELDS = (
    "query",
    "interval_seconds",
    "count",
    "success_condition",
    "failure_condition",
    "failure_limit",
    "inconclusive_limit",
)


@dataclass(frozen=True)
class Template:
    name: str
    query: str
    interval: float = 5.0  # seconds between measurements
    count: int = 3  # measurements taken
    success: Condition | None = None
    failure: Condition | None = None
    failure_limit: int = 0  # failed measurements tolerated
    inconclusive_limit: int = 0  # inconclusive (or unmeasurable) measurements tolerated
    # "estate", or how the change's own block made it: "changed" (an estate template with
    # fields the change overrides) or "added". Approvers must see a judge the change chose.
    origin: str = "estate"

    def bind(self, args: Mapping[str, str]) -> str:
        """The query with its arguments filled in; values are checked to be plain names."""
        for key, value in args.items():
            if not _SAFE_VALUE.match(value):
                raise InvalidInputError(f"analysis {self.name}: argument {key}={value!r}")

        def fill(match: re.Match[str]) -> str:
            return args[match.group(1)]

        return _ARG.sub(fill, self.query)

    def describe(self) -> str:
        parts = [f"{self.count} x every {self.interval:g}s"]
        if self.success is not None:
            parts.append(f"success: {self.success.text}")
        if self.failure is not None:
            parts.append(f"failure: {self.failure.text}")
        parts.append(f"failure limit {self.failure_limit}")
        if self.origin != "estate":
            parts.append(f"query {self.query!r} ({self.origin.upper()} BY THIS CHANGE)")
        return ", ".join(parts)


@dataclass(frozen=True)
class Check:
    """One template bound to one system: the unit that is measured."""

    template: Template
    system: str

    @property
    def name(self) -> str:
        return f"{self.template.name}@{self.system}"


@dataclass(frozen=True)
class Spec:
    """What judges every wave of one change: the bake time and the checks per system."""

    bake: float
    checks: tuple[Check, ...]

    def for_systems(self, systems: Sequence[str]) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.system in systems)


def _number(raw: Any, where: str, *, minimum: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < minimum:
        raise InvalidInputError(f"{where}: expected a number >= {minimum:g}, found {raw!r}")
    return float(raw)


def _whole(raw: Any, where: str, *, minimum: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
        raise InvalidInputError(f"{where}: expected a whole number >= {minimum}, found {raw!r}")
    return raw


def _condition(raw: Any, where: str) -> Condition | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidInputError(f"{where}: expected a condition such as 'result < 0.05'")
    return compile_condition(raw, where)


def unknown_arguments(query: str) -> list[str]:
    """The `{{ args.NAME }}` a query uses that no wave gives (validate reports them too)."""
    return sorted({m.group(1) for m in _ARG.finditer(query)} - set(ARGS))


def _query(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInputError(f"{where}: expected a PromQL query")
    unknown = unknown_arguments(raw)
    if unknown:
        raise InvalidInputError(
            f"{where}: unknown argument(s) {', '.join(unknown)} (known: {', '.join(ARGS)})"
        )
    return raw


def _limit(raw: dict[str, Any], key: str, at: str, current: int) -> int:
    return _whole(raw[key], at + key, minimum=0) if key in raw else current


def parse(name: str, raw: Any, where: str, base: Template | None = None) -> Template:
    """A template from its document, on top of `base` (a named template being overridden)."""
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{where}: expected a mapping of template fields")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise InvalidInputError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}")
    if base is None and "query" not in raw:
        raise InvalidInputError(f"{where}: a new template needs a query")
    made = base or Template(name, "")
    at = f"{where}."
    made = replace(
        made,
        query=_query(raw["query"], at + "query") if "query" in raw else made.query,
        interval=(
            _number(raw["interval_seconds"], at + "interval_seconds", minimum=0.1)
            if "interval_seconds" in raw
            else made.interval
        ),
        count=_whole(raw["count"], at + "count", minimum=1) if "count" in raw else made.count,
        success=(
            _condition(raw["success_condition"], at + "success_condition")
            if "success_condition" in raw
            else made.success
        ),
        failure=(
            _condition(raw["failure_condition"], at + "failure_condition")
            if "failure_condition" in raw
            else made.failure
        ),
        failure_limit=_limit(raw, "failure_limit", at, made.failure_limit),
        inconclusive_limit=_limit(raw, "inconclusive_limit", at, made.inconclusive_limit),
    )
    if made.success is None and made.failure is None:
        raise InvalidInputError(f"{where}: needs a success_condition or a failure_condition")
    return made


@dataclass(frozen=True)
class EstateAnalysis:
    """The estate's templates and each system's defaults."""

    bake: float
    templates: dict[str, Template]
    defaults: dict[str, tuple[str, ...]]  # system -> template names


def from_estate_document(doc: Mapping[str, Any], where: str = "estate.yml") -> EstateAnalysis:
    section = doc.get("analysis") or {}
    raw_templates = section.get("templates") or {}
    templates = {
        str(name): parse(str(name), body, f"{where}: $.analysis.templates.{name}")
        for name, body in raw_templates.items()
    }
    defaults: dict[str, tuple[str, ...]] = {}
    for sid, system in (doc.get("systems") or {}).items():
        names = tuple(str(n) for n in (system or {}).get("analysis") or ())
        for index, name in enumerate(names):
            if name not in templates:
                raise InvalidInputError(
                    f"{where}: $.systems.{sid}.analysis[{index}]: no template named {name!r}"
                )
        defaults[str(sid)] = names
    bake = section.get("bake_seconds", DEFAULT_BAKE_SECONDS)
    return EstateAnalysis(
        _number(bake, f"{where}: $.analysis.bake_seconds", minimum=0), templates, defaults
    )


def load_estate_analysis(root: Path) -> EstateAnalysis:
    """The analysis section of `root/estate.yml` (a sealed tree's, during a run)."""
    doc = yamlsafe.load_file(root / "estate.yml", "estate.yml", root=root).data
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{root / 'estate.yml'}: expected a mapping at the top level")
    return from_estate_document(doc)


def spec_for(estate: EstateAnalysis, change: ChangeRequest) -> Spec:
    """What judges `change`'s waves: the estate's defaults, as the change's block adjusts them."""
    block = change.raw.get("analysis") or {}
    where = f"{change.path or change.id}: $.analysis"
    templates = dict(estate.templates)
    own: list[str] = []
    for name, body in (block.get("templates") or {}).items():
        made = parse(name, body, f"{where}.templates.{name}", templates.get(name))
        templates[name] = replace(made, origin="changed" if name in estate.templates else "added")
        if name not in estate.templates:
            own.append(name)
    chosen = block.get("use")
    for index, name in enumerate(chosen or ()):
        if name not in templates:
            raise InvalidInputError(f"{where}.use[{index}]: no template named {name!r}")
    checks: list[Check] = []
    for system in change.systems:
        names = chosen if chosen is not None else (*estate.defaults.get(system, ()), *own)
        checks.extend(Check(templates[n], system) for n in dict.fromkeys(names))
    bake = block.get("bake_seconds", estate.bake)
    return Spec(_number(bake, f"{where}.bake_seconds", minimum=0), tuple(checks))


def host_pattern(hosts: Sequence[str]) -> str:
    """Hosts as a PromQL regular-expression alternation: dots escaped for the regular
    expression, the backslash doubled for the PromQL string literal it goes into."""
    for host in hosts:
        if not _SAFE_NAME.match(host):
            raise InvalidInputError(f"analysis: host name {host!r} cannot go into a query")
    return "|".join(h.replace(".", "\\\\.") for h in hosts)
