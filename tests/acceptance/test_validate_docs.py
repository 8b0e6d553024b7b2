"""The reference page is generated from the schemas and kept current; the schemas are sound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from gcmschange import resources, yamlsafe
from gcmschange.errors import ValidationError
from gcmschange.validate import schemadoc
from gcmschange.validate.schema import checker

PROJECT = Path(__file__).resolve().parents[2]
EXAMPLES = Path(__file__).parent / "examples"


def test_reference_page_is_up_to_date() -> None:
    current = (PROJECT / schemadoc.DOC).read_text(encoding="utf-8")
    assert current == schemadoc.render(), "run: python -m gcmschange.validate.schemadoc"


@pytest.mark.parametrize("schema", sorted(resources.schemas_dir().glob("*.json")))
def test_every_schema_is_valid_2020_12_with_an_id_and_descriptions(schema: Path) -> None:
    body = json.loads(schema.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(body)
    assert body["$id"].endswith(schema.name)
    assert body["description"]


@pytest.mark.parametrize(
    "example",
    sorted([*(EXAMPLES / "valid").glob("*.yaml"), *(EXAMPLES / "invalid").glob("*.yaml")]),
    ids=lambda p: p.name,
)
def test_fast_and_reference_validators_agree(example: Path) -> None:
    # The generated validator decides "valid?" alone; it must never disagree with the
    # reference implementation of JSON Schema 2020-12.
    try:
        doc = yamlsafe.load_file(example, example.name)
    except ValidationError:
        return
    schema = checker(resources.schema("change-request"))
    assert schema.is_valid(doc.data) == schema.full.is_valid(doc.data)
