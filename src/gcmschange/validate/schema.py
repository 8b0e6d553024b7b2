"""JSON Schema checks with every error located in the YAML file, compiled once per schema.

Valid documents are the common case, so a generated validator (fastjsonschema) answers
"valid?" in tens of microseconds; only an invalid document pays for the reference
implementation (jsonschema, 2020-12), which lists every error with its path. The shipped
schemas use only keywords that mean the same in draft 7 and 2020-12, so both agree
(a unit test holds them to it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError as SchemaError

from gcmschange.errors import Problem
from gcmschange.yamlsafe import Document, NodePath

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
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


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
    def full(self) -> Draft202012Validator:
        # jsonschema takes about as long to import as validating a thousand valid changes
        # with the generated code, so only an invalid document pays for it.
        from jsonschema import Draft202012Validator

        return Draft202012Validator(self.schema)

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
        return sorted(found, key=lambda p: (p.location.line, p.location.column))


def _fast(schema: dict[str, Any]) -> Callable[[Any], bool]:
    draft7 = {**schema, "$schema": "http://json-schema.org/draft-07/schema#"}
    check = fastjsonschema.compile(draft7)

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
    """
    found = SchemaChecker(name, schema)
    if check:
        try:
            found.is_valid(None)
        except fastjsonschema.JsonSchemaDefinitionException as exc:
            raise ValueError(f"not a usable JSON Schema: {exc}") from exc
    return found


def _at(doc: Document, path: NodePath, message: str, *, key: bool = False) -> Problem:
    return Problem(message, doc.locate(path, key=key), code="schema")


def _explain(err: SchemaError, doc: Document, prefix: NodePath) -> Iterator[Problem]:
    path: NodePath = (*prefix, *err.absolute_path)
    schema: dict[str, Any] = err.schema if isinstance(err.schema, dict) else {}
    instance: Any = err.instance
    custom = schema.get("errorMessage")
    validator = str(err.validator)
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
    elif isinstance(custom, str):
        yield _at(doc, path, custom)
    else:
        yield _at(doc, path, _message(err))


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
