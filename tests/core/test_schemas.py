"""Every schema is a valid draft 2020-12 schema with a valid and an invalid example."""

import json

import jsonschema
import pytest
from support.base import TESTS, altered_copies

from host.core.validation import SCHEMA_DIR, DocumentInvalid, validate

EXAMPLES = TESTS / "schema_examples"
OWN_SCHEMAS = sorted(p.name for p in SCHEMA_DIR.glob("*.schema.json"))


@pytest.mark.parametrize("name", OWN_SCHEMAS)
def test_schema_is_valid_2020_12(name):
    schema = json.loads((SCHEMA_DIR / name).read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    # Strict unless the schema says why not (the channel file: unknown fields are logged).
    assert schema.get("additionalProperties") is False or "accepted" in schema["description"]


@pytest.mark.parametrize("name", OWN_SCHEMAS)
def test_schema_has_valid_and_invalid_examples(name):
    folder = EXAMPLES / name.removesuffix(".schema.json")
    valid, invalid = sorted(folder.glob("valid*.json")), sorted(folder.glob("invalid*.json"))
    assert valid and invalid, f"{folder} needs valid*.json and invalid*.json"
    for path in valid:
        validate(json.loads(path.read_text()), name, name=path.name, source=str(path))
    for path in invalid:
        with pytest.raises(DocumentInvalid):
            validate(json.loads(path.read_text()), name, name=path.name, source=str(path))


def test_invalid_document_is_reported_with_name_source_and_pointer():
    with pytest.raises(DocumentInvalid) as caught:
        validate({"grub_timeout": "5"}, "isobuild-options.schema.json", name="options file",
                 source="/tmp/o.yaml")
    assert caught.value.pointer == "/grub_timeout"
    assert str(caught.value).startswith("options file (/tmp/o.yaml) is invalid at /grub_timeout")


def test_vendored_subiquity_schema_is_the_reference_copy():
    assert altered_copies(SCHEMA_DIR / "external") == []
