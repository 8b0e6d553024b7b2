"""JSON Schema checks with every error located in the YAML file, compiled once per schema.

Valid documents are the common case, so a generated validator (fastjsonschema) answers
"valid?" in tens of microseconds; only an invalid document pays for the reference
implementation (jsonschema, 2020-12), which lists every error with its path. The shipped
schemas use only keywords that mean the same in draft 7 and 2020-12, so both agree
(a unit test holds them to it). Both read `$` in a pattern as the end of the text (as
ECMA-262 does; Python's `$` also matches before a final line break), and both check
`uniqueItems` in linear time.

A schema is data from the repository (a catalogue template's parameters), so it may only
refer to itself: a `$ref` to a file or a URL is refused before anything compiles, and
neither validator is given a way to fetch one.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError as SchemaError
    from jsonschema.protocols import Validator

from gcmschange.errors import Problem
from gcmschange.yamlsafe import Document, NodePath, printable

_KINDS = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
    type(None): "null",
}
_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def kind_of(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    return (
        printable(json.dumps(value, ensure_ascii=False)) if isinstance(value, str) else repr(value)
    )


@dataclass(frozen=True)
class SchemaChecker:
    """A schema compiled twice: a fast yes/no, and (only once needed) the full error lister."""

    name: str
    schema: dict[str, Any]

    @cached_property
    def fast(self) -> Callable[[Any], bool]:
        # Compiled on first use: a warm run whose verdicts all come from the cache (and
        # whose shared files are known good) compiles nothing.
        return _fast(self.schema)

    def is_valid(self, data: Any) -> bool:
        return self.fast(data)

    @cached_property
    def full(self) -> Validator:
        # jsonschema takes about as long to import as validating a thousand valid changes
        # with the generated code, so only an invalid document pays for it.
        from referencing import Registry

        return _reference_validator()(self.schema, registry=Registry())  # nothing to fetch

    def problems(self, doc: Document, prefix: NodePath = ()) -> list[Problem]:
        """Every error in `doc` (or in its node at `prefix`), located in the file."""
        data = doc.data
        for part in prefix:
            data = data[part]
        if self.is_valid(data):
            return []
        # One `required` error per missing name, but each explains them all: keep one copy.
        found = dict.fromkeys(
            p for err in self.full.iter_errors(data) for p in _explain(err, doc, prefix)
        )
        if not found:  # the two disagree: refuse rather than let the document through
            found[_at(doc, prefix, f"does not satisfy {self.name}")] = None
        return sorted(found, key=lambda p: (p.location.line, p.location.column))


def _fast(schema: dict[str, Any]) -> Callable[[Any], bool]:
    foreign = foreign_reference(schema)
    if foreign is not None:
        raise fastjsonschema.JsonSchemaDefinitionException(foreign)
    draft7 = {**schema, "$schema": "http://json-schema.org/draft-07/schema#"}
    check = fastjsonschema.compile(draft7, handlers=_NO_FETCH)

    def is_valid(data: Any) -> bool:
        try:
            check(data)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return is_valid


def checker(path: Path) -> SchemaChecker:
    """The compiled checker for a schema file (compiled once per process and content)."""
    return _compiled(path.name, path.read_text(encoding="utf-8"))


@cache
def _compiled(name: str, text: str) -> SchemaChecker:
    schema = json.loads(text)
    return SchemaChecker(name, schema)


def checker_for(schema: dict[str, Any], name: str, *, check: bool = True) -> SchemaChecker:
    """A checker for an inline schema (a catalogue template's parameters).

    With `check`, compiles it now and raises `ValueError` naming what is wrong with it.
    A reference outside the schema is refused even without `check`: nothing is fetched.
    """
    foreign = foreign_reference(schema)
    if foreign is not None:
        raise ValueError(f"not a usable JSON Schema: {foreign}")
    found = SchemaChecker(name, schema)
    if check:
        try:
            found.is_valid(None)
        except (fastjsonschema.JsonSchemaDefinitionException, re.error, TypeError) as exc:
            raise ValueError(f"not a usable JSON Schema: {printable(str(exc))}") from exc
    return found


_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
_BASE_KEYWORDS = ("$id", "id", "$schema")  # each would move where references resolve
_DATA_KEYWORDS = frozenset(("enum", "const", "default", "examples"))  # values, not schemas


def foreign_reference(schema: Any) -> str | None:
    """Why `schema` may reach outside itself (at one such place), or None.

    Only references within the document (`#...`) are allowed, and only its root may say
    where it lives (`$id`) or which dialect it is (`$schema`).
    """
    stack: list[tuple[Any, NodePath]] = [(schema, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, list):
            stack.extend(((item, (*path, i)) for i, item in enumerate(node)))
            continue
        if not isinstance(node, dict):
            continue
        for key in _REF_KEYWORDS:
            target = node.get(key)
            if key in node and not (isinstance(target, str) and target.startswith("#")):
                shown = _show(target) if isinstance(target, str) else kind_of(target)
                return (
                    f"{_inner(path, key)} is {shown}, not a reference inside the schema "
                    '(only local references such as "#/$defs/name" are allowed)'
                )
        for key in _BASE_KEYWORDS if path else ():
            if isinstance(node.get(key), str):
                return f"{_inner(path, key)}: only the schema's root may set {key}"
        stack.extend(
            (value, (*path, key))
            for key, value in node.items()
            if key not in _DATA_KEYWORDS and isinstance(value, dict | list)
        )
    return None


def _inner(path: NodePath, key: str) -> str:
    """A place inside a schema, as its author wrote it: `properties.level.$ref`."""
    return printable(".".join(map(str, (*path, key))))


class _NoFetch(Mapping[str, Callable[[str], Any]]):
    """fastjsonschema's handlers for every URI scheme: each refuses (it would fetch)."""

    def __getitem__(self, scheme: str) -> Callable[[str], Any]:
        return _refuse_fetch

    def __contains__(self, scheme: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _refuse_fetch(uri: str) -> Any:
    raise fastjsonschema.JsonSchemaDefinitionException(f"{printable(uri)}: not fetched")


_NO_FETCH = _NoFetch()
# Unescaped `$`, as fastjsonschema finds it to make it `\Z` (so the two agree exactly).
_DOLLAR = re.compile(r"(?<!\\)\$")


@lru_cache(maxsize=1024)
def _to_the_end(pattern: str) -> re.Pattern[str]:
    """`pattern` with `$` meaning the end of the text (Python's also matches before a final
    line break, which let "CHG-DEV-0200\n" pass for an id)."""
    return re.compile(_DOLLAR.sub(r"\\Z", pattern))


@cache
def _reference_validator() -> type[Validator]:
    """Draft 2020-12, with `pattern` and `uniqueItems` as the generated validator reads them."""
    from jsonschema import Draft202012Validator, validators
    from jsonschema.exceptions import ValidationError as SchemaError

    def pattern(_v: Validator, regex: str, instance: Any, _schema: Any) -> Iterator[SchemaError]:
        if isinstance(instance, str) and not _to_the_end(regex).search(instance):
            yield SchemaError(f"{_show(instance)} does not match {regex!r}")

    def unique(_v: Validator, wanted: bool, instance: Any, _schema: Any) -> Iterator[SchemaError]:
        if (
            wanted
            and isinstance(instance, list)
            and len(set(map(_frozen, instance))) < len(instance)
        ):
            yield SchemaError("has non-unique elements")

    extend: Callable[..., type[Validator]] = validators.extend  # untyped in the stubs
    return extend(Draft202012Validator, {"pattern": pattern, "uniqueItems": unique})


def _frozen(value: Any) -> Any:
    """A hashable stand-in equal exactly when JSON Schema calls two values equal (1 == 1.0,
    true != 1): uniqueness by hashing, linear, where jsonschema compares every pair."""
    if isinstance(value, bool):
        return (bool, value)
    if isinstance(value, list):
        return (list, tuple(map(_frozen, value)))
    if isinstance(value, dict):
        return (dict, frozenset((k, _frozen(v)) for k, v in value.items()))
    return value


def _at(doc: Document, path: NodePath, message: str, *, key: bool = False) -> Problem:
    return Problem(message, doc.locate(path, key=key), code="schema")


def _explain(err: SchemaError, doc: Document, prefix: NodePath) -> Iterator[Problem]:
    path: NodePath = (*prefix, *err.absolute_path)
    schema: dict[str, Any] = err.schema if isinstance(err.schema, dict) else {}
    instance: Any = err.instance
    custom = schema.get("errorMessage")
    validator = str(err.validator)
    hidden = _hidden_character(instance, err.validator_value) if validator == "pattern" else None
    if "propertyNames" in err.schema_path:
        yield _at(
            doc,
            (*path, str(err.instance)),
            f"name {_show(err.instance)}: {custom or _message(err)}",
            key=True,
        )
    elif validator == "additionalProperties":
        allowed = schema.get("properties", {})
        for extra in sorted(k for k in instance if k not in allowed):
            yield _at(doc, (*path, extra), f"unknown field {_show(extra)}", key=True)
    elif validator == "required":
        yield from (
            _at(doc, path, f"missing required field {_show(name)}")
            for name in schema.get("required", ())
            if name not in instance
        )
    elif hidden is not None:
        rule = custom if isinstance(custom, str) else "must be plain text"
        yield _at(doc, path, f"{rule}; it holds {hidden}")
    elif isinstance(custom, str):
        yield _at(doc, path, custom)
    else:
        yield _at(doc, path, _message(err))


_CONTROL_NAMES = {
    "\t": "TAB",
    "\n": "LINE FEED",
    "\r": "CARRIAGE RETURN",
    "\x1b": "ESCAPE",
    "\x7f": "DELETE",
}


def _hidden_character(instance: Any, pattern: Any) -> str | None:
    """The first control or invisible character in `instance` that `pattern` refuses, named
    with its place: the message must say what is wrong without printing it."""
    if not isinstance(instance, str) or not isinstance(pattern, str) or instance.isprintable():
        return None
    allowed = _to_the_end(pattern)
    for place, char in enumerate(instance, 1):
        if not char.isprintable() and not allowed.search(char):
            name = _CONTROL_NAMES.get(char) or unicodedata.name(char, "a control character")
            return f"U+{ord(char):04X} ({name}) at character {place}"
    return None


def _message(err: SchemaError) -> str:
    value: Any = err.instance
    limit: Any = err.validator_value
    messages: dict[str, Callable[[], str]] = {
        "type": lambda: f"must be {_TYPE_NAMES.get(str(limit), limit)}, not {kind_of(value)}",
        "enum": lambda: f"must be one of {', '.join(map(str, limit))} (got {_show(value)})",
        "const": lambda: f"must be {_show(limit)}",
        "pattern": lambda: f"{_show(value)} does not match {limit}",
        "minItems": lambda: f"needs at least {limit} item{'s' if limit != 1 else ''}",
        "maxItems": lambda: f"allows at most {limit} items",
        "uniqueItems": lambda: "items must be unique",
        "minLength": lambda: f"must be at least {limit} characters long",
        "maxLength": lambda: f"must be at most {limit} characters long",
        "minimum": lambda: f"must be at least {limit} (got {value})",
        "maximum": lambda: f"must be at most {limit} (got {value})",
        "not": lambda: "is not allowed here",
    }
    explain = messages.get(str(err.validator))
    return explain() if explain else err.message
