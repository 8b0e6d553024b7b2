"""The checks of one change request beyond its schema: references, variables, catalogue, policy.

Each rule looks only at fields the schema accepted, so one typo gives one message, not a
cascade. Checks that depend on the clock or on other changes live in `validate_calendar`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gcmschange.analysis import templates
from gcmschange.analysis.expr import compile_condition
from gcmschange.errors import InvalidInputError, Location, Problem
from gcmschange.rules import argspecs, catalogue, policy
from gcmschange.rules.argspecs import Option, PlaybookArgs
from gcmschange.validate.context import Context
from gcmschange.validate.schema import kind_of
from gcmschange.yamlsafe import Document, NodePath, VaultText, json_path

MASK = "********"
# What every reader of a change holds exactly: JSON has no infinity, and the reports, the
# journal and the hosts' configuration readers stop at 64-bit integers.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
WINDOW_PATH = json_path(("window",))
TEMPLATE_MARKERS = ("{{", "{%", "{#")
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


class Facts(NamedTuple):
    """What the calendar and clock checks need from a change; kept in the cache.

    A NamedTuple rather than a dataclass: a warm run rebuilds 10,000 of these from the
    cache, and the window's `Location` is only built for the few that get a message.
    """

    id: str
    type: str
    environment: str
    systems: tuple[str, ...]
    start: float  # POSIX seconds: the calendar sweep compares thousands of these
    end: float
    file: str
    line: int  # where the window is written
    column: int

    @property
    def where(self) -> Location:
        return Location(self.file, self.line, self.column, WINDOW_PATH)


class _Rules:
    def __init__(self, ctx: Context, doc: Document, schema_problems: list[Problem]) -> None:
        self.ctx, self.doc, self.data = ctx, doc, doc.data
        self.bad = {p.location.path for p in schema_problems}
        self.found: list[Problem] = []

    def ok(self, key: str) -> bool:
        if not self.bad:
            return key in self.data
        prefix = json_path((key,))
        return key in self.data and not any(
            b == prefix or b.startswith((prefix + ".", prefix + "[")) for b in self.bad
        )

    def add(
        self, path: NodePath, message: str, code: str, severity: str = "error", *, key: bool = False
    ) -> None:
        self.found.append(Problem(message, self.doc.locate(path, key=key), code, severity))


def check(
    ctx: Context, doc: Document, schema_problems: list[Problem]
) -> tuple[list[Problem], Facts | None]:
    rules = _Rules(ctx, doc, schema_problems)
    _numbers(rules)
    _identity(rules)
    _references(rules)
    entry = _standard(rules)
    _variables(rules, entry)
    _emergency(rules)
    _analysis(rules)
    facts = _window(rules, entry)
    return rules.found, facts


def _numbers(r: _Rules) -> None:
    """Every number is one that later stages and the hosts hold exactly (see INT_MIN)."""
    for path, value in _out_of_range(r.data, ()):
        if json_path(path) in r.bad:
            continue  # the schema already said what is wrong there
        if isinstance(value, float):
            r.add(path, "not a finite number (.inf and .nan cannot be used)", "number")
        else:
            r.add(path, "whole number out of range (from -2**63 to 2**63-1)", "number")


def _out_of_range(value: Any, path: NodePath) -> Iterator[tuple[NodePath, Any]]:
    if isinstance(value, float):
        if not math.isfinite(value):
            yield path, value
    elif isinstance(value, int) and not isinstance(value, bool):
        if not INT_MIN <= value <= INT_MAX:
            yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _out_of_range(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _out_of_range(item, (*path, i))


def _identity(r: _Rules) -> None:
    folder, _, name = r.doc.file.rpartition("/")
    if r.ok("id") and folder == "changes" and name != f"{r.data['id']}.yaml":
        r.add(("id",), f"id {r.data['id']} does not match the file name {name}", "reference")


def _references(r: _Rules) -> None:
    ctx, data = r.ctx, r.data
    env = data["environment"] if r.ok("environment") else None
    if env is not None and env not in ctx.estate.environments:
        known = ", ".join(ctx.estate.environments)
        r.add(
            ("environment",), f"unknown environment {env!r} (estate.yml has {known})", "reference"
        )
    for i, system in enumerate(data["systems"] if r.ok("systems") else ()):
        if system not in ctx.estate.systems:
            r.add(("systems", i), f"unknown system {system!r} (not in estate.yml)", "reference")
        elif env in ctx.inventories and not ctx.inventories[env].groups.get(system):
            r.add(
                ("systems", i),
                f"no hosts for {system!r} in inventories/{env}/ (as Ansible reads it)",
                "reference",
            )
    if r.ok("playbook") and data["playbook"] not in ctx.playbooks:
        r.add(("playbook",), f"no playbook playbooks/{data['playbook']}.yml", "reference")
    rollback = data["rollback"] if r.ok("rollback") else {}
    if rollback.get("playbook") and rollback["playbook"] not in ctx.playbooks:
        r.add(
            ("rollback", "playbook"),
            f"no playbook playbooks/{rollback['playbook']}.yml",
            "reference",
        )
    for i, test in enumerate(data["verification"] if r.ok("verification") else ()):
        if test not in ctx.verify_files:
            r.add(("verification", i), f"no verification test file {test}", "reference")


def _standard(r: _Rules) -> catalogue.CatalogueEntry | None:
    if r.data.get("type") != "standard" or not r.ok("template"):
        return None
    name = r.data["template"]
    entry = r.ctx.catalogue.get(name)
    if entry is None:
        r.add(("template",), f"no catalogue template catalogue/{name}.yml", "reference")
        return None
    if r.ok("environment") and r.data["environment"] not in entry.environments:
        r.add(
            ("environment",),
            f"template {name} does not allow {r.data['environment']!r}",
            "catalogue",
        )
    for i, system in enumerate(r.data["systems"] if r.ok("systems") else ()):
        if system not in entry.systems:
            r.add(("systems", i), f"template {name} does not allow system {system!r}", "catalogue")
    if r.ok("impact") and not entry.allows_impact(r.data["impact"]["level"]):
        r.add(
            ("impact", "level"),
            f"template {name} allows impact up to {entry.max_impact!r}",
            "catalogue",
        )
    if r.ok("parameters"):
        problems = entry.parameters.problems(r.doc, ("parameters",))
        r.found.extend(problems)
        if problems:  # the template's bounds already said what is wrong with them
            return None
    return entry


def _variables(r: _Rules, entry: catalogue.CatalogueEntry | None) -> None:
    if entry is not None and r.ok("parameters"):
        variables, at = catalogue.instantiate(r.data, entry)["variables"], ("parameters",)
        playbook = entry.playbook
    elif (
        r.data.get("type") != "standard"
        and r.ok("playbook")  # the spec to judge them by
        and (r.ok("variables") or "variables" not in r.data)
    ):
        variables, at, playbook = r.data.get("variables") or {}, ("variables",), r.data["playbook"]
    else:
        return
    spec = r.ctx.specs.get(playbook)
    if spec is None or not spec.specs:
        if variables:
            r.add(at, _no_spec(r.ctx, playbook, spec), "reference")
        return
    _against_spec(r, spec, variables, at, entry)
    for path in _template_text(variables, at):
        r.add(
            path,
            "contains template syntax: it reaches the hosts as literal text, never evaluated",
            "template-text",
            "warning",
        )


def _no_spec(ctx: Context, playbook: str, spec: PlaybookArgs | None) -> str:
    where = argspecs.spec_path(ctx.root, playbook).relative_to(ctx.root).as_posix()
    if playbook in ctx.playbooks and spec is None:
        return f"the argument specs of playbooks/{playbook}.yml are invalid: no variable may be set"
    return f"{where} does not exist: no variable may be set"


def _param_path(at: NodePath, name: str, entry: catalogue.CatalogueEntry | None) -> NodePath:
    if entry is None:
        return (*at, name)
    source = entry.variables_from_parameters.get(name)
    return (*at, source) if source else at


def _against_spec(
    r: _Rules,
    spec: PlaybookArgs,
    variables: dict[str, Any],
    at: NodePath,
    entry: catalogue.CatalogueEntry | None,
) -> None:
    for name, value in variables.items():
        path = _param_path(at, name, entry)
        declared = spec.declaring(name)
        if not declared:
            message = f"unknown variable {name!r} (not declared in {spec.files()})"
            r.add(path, message, "variable", key=entry is None)
            continue
        for _, option in declared:  # a role's spec and the playbook's may both judge it
            for where, message in _judge(option, value, name, path):
                r.add(where, message, "variable")
    for option in spec.required():
        if option.name not in variables and spec.own is not None:
            message = f"missing required variable {option.name!r} (declared in {spec.own.file})"
            r.add(at, message, "variable")


_SPELT_AS = {"int": r"-?[0-9]+", "float": r"-?[0-9]+(\.[0-9]+)?", "bool": r"true|false"}


def _unquote(value: Any, wanted: str) -> str:
    """Ansible would convert "9091" to an int; a change file says what it means (YAML 1.2,
    no guessing), so the hint is to write the value as what it is."""
    pattern = _SPELT_AS.get(wanted)
    if isinstance(value, str) and pattern and re.fullmatch(pattern, value.strip()):
        return f" (the text {value!r}: write it without quotes)"
    if wanted == "bool" and isinstance(value, str) and value.lower() in ("yes", "no", "on", "off"):
        return " (YAML 1.2 reads yes/no/on/off as text: write true or false)"
    return ""


def _judge(option: Option, value: Any, name: str, path: NodePath) -> Iterator[tuple[NodePath, str]]:
    """What is wrong with `value` for `option`: its type, its choices, a list's elements and a
    dict's keys, as Ansible's own argument validation would say before anything runs."""
    shown = MASK if option.secret else repr(value)
    if not _is(value, option.type):
        hint = "" if option.secret else _unquote(value, option.type)  # never show a secret
        yield path, f"variable {name!r} must be {option.type}, not {kind_of(value)}{hint}"
        return
    if option.secret and not isinstance(value, VaultText) and value not in (None, ""):
        # In a change file, a value is in git for ever: only its vault text may be there.
        yield (
            path,
            (
                f"variable {name!r} is secret and written in clear: put its vault text here "
                f"instead (ansible-vault encrypt_string --name {name})"
            ),
        )
    elif option.choices and not isinstance(value, VaultText) and value not in option.choices:
        allowed = ", ".join(map(str, option.choices))
        yield path, f"variable {name!r} must be one of {allowed} (got {shown})"
    items = list(enumerate(value)) if isinstance(value, list) else []
    if option.elements:
        for i, item in items:
            if not _is(item, option.elements):
                yield (*path, i), f"{name}[{i}] must be {option.elements}, not {kind_of(item)}"
    if option.options:
        dicts = [((*path, i), item) for i, item in items] if items else [(path, value)]
        for where, item in dicts:
            yield from _suboptions(option, item, name, where)


def _suboptions(
    option: Option, value: Any, name: str, path: NodePath
) -> Iterator[tuple[NodePath, str]]:
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        sub = option.options.get(key)
        if sub is None:
            known = ", ".join(option.options)
            yield (*path, key), f"{name}: unknown key {key!r} (it may have: {known})"
        else:
            yield from _judge(sub, item, f"{name}.{key}", (*path, key))
    for sub in option.options.values():
        if sub.required and sub.name not in value:
            yield path, f"{name}: missing required key {sub.name!r}"


def _is(value: Any, kind: str) -> bool:
    types = _PY_TYPES.get(kind)
    if not types:
        return True  # raw, json, bytes...: Ansible converts them itself
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def _template_text(value: Any, path: NodePath) -> Iterator[NodePath]:
    if isinstance(value, str) and any(m in value for m in TEMPLATE_MARKERS):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _template_text(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _template_text(item, (*path, i))


def _analysis(r: _Rules) -> None:
    """The change's `analysis:` block, as apply would read it, so a typo is found at review
    and not after the first wave: names it uses exist, conditions parse, queries take only
    the arguments a wave gives."""
    if not r.ok("analysis"):
        return
    block = r.data["analysis"]
    known = r.ctx.analysis_templates
    own: dict[str, Any] = block.get("templates") or {}
    for name, body in own.items():
        _analysis_template(r, ("analysis", "templates", name), body, known is None or name in known)
    for i, name in enumerate(block.get("use") or ()):
        if known is not None and name not in known and name not in own:
            names = ", ".join(sorted(known)) or "none"
            r.add(
                ("analysis", "use", i),
                f"no analysis template {name!r} (estate.yml has {names}; "
                "or define it under analysis.templates)",
                "analysis",
            )


def _analysis_template(r: _Rules, at: NodePath, body: dict[str, Any], named: bool) -> None:
    if not named and "query" not in body:
        r.add(
            at,
            f"no template {at[-1]!r} in estate.yml to override: a new one needs a query",
            "analysis",
            key=True,
        )
    if not named and not {"success_condition", "failure_condition"} & set(body):
        r.add(
            at,
            "a new template needs a success_condition or a failure_condition",
            "analysis",
            key=True,
        )
    if "query" in body:
        unknown = templates.unknown_arguments(body["query"])
        if unknown:
            known = ", ".join(templates.ARGS)
            r.add(
                (*at, "query"),
                f"unknown argument(s) {', '.join(unknown)} (known: {known})",
                "analysis",
            )
    for field in ("success_condition", "failure_condition"):
        if field in body:
            try:
                compile_condition(body[field], field)
            except InvalidInputError as err:
                # The location already names the field: the message says only what is wrong.
                r.add((*at, field), err.message.removeprefix(f"{field}: "), "analysis")


def _emergency(r: _Rules) -> None:
    required = r.ctx.policy.emergency.requires_incident
    if required and r.data.get("type") == "emergency" and "incident" not in r.data:
        message = "an emergency change must name the incident it answers (incident: INC-...)"
        r.add(("type",), message, "policy")


def _moments(r: _Rules) -> tuple[datetime, datetime] | None:
    window = r.data["window"]
    try:
        zone = ZoneInfo(window["timezone"])
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as America
        r.add(("window", "timezone"), f"unknown time zone {window['timezone']!r}", "window")
        return None
    moments = []
    for key in ("start", "end"):
        try:
            moments.append(datetime.fromisoformat(window[key]).replace(tzinfo=zone))
        except ValueError as exc:
            r.add(("window", key), f"not a real date and time ({exc})", "window")
    return (moments[0], moments[1]) if len(moments) == 2 else None


def _window(r: _Rules, entry: catalogue.CatalogueEntry | None) -> Facts | None:
    if not r.ok("window"):
        return None
    moments = _moments(r)
    if moments is None:
        return None
    start, end = moments
    # Only values the schema accepted: the policy looks them up by name.
    env = r.data["environment"] if r.ok("environment") else ""
    kind = r.data["type"] if r.ok("type") else ""
    if end <= start:
        r.add(("window", "end"), "window ends before it starts", "window")
    limit = r.ctx.policy.max_window(env)
    if limit is not None and end - start > limit:
        r.add(
            ("window",),
            f"window lasts {_hours(end - start)} h; {env} allows at most {_hours(limit)} h",
            "policy",
        )
    if entry is not None and end - start > entry.max_window:
        r.add(
            ("window",),
            f"template {entry.name} allows windows of at most {_hours(entry.max_window)} h",
            "catalogue",
        )
    for freeze in policy.freezes_overlapping(r.ctx.policy, env, start, end):
        if kind == "emergency":
            r.add(
                ("window",),
                f"runs during the freeze {freeze.name!r} (allowed: emergency)",
                "freeze",
                "warning",
            )
        else:
            r.add(
                ("window",),
                f"window overlaps the freeze {freeze.name!r} in {env} (only emergencies may run)",
                "freeze",
            )
    if not all(r.ok(k) for k in ("id", "type", "environment", "systems")):
        return None
    systems = tuple(r.data["systems"])
    at = r.doc.locate(("window",))
    begins, ends = start.timestamp(), end.timestamp()
    return Facts(r.data["id"], kind, env, systems, begins, ends, at.file, at.line, at.column)


def _hours(delta: Any) -> str:
    return f"{delta.total_seconds() / 3600:g}"
