"""Validate served responses against schemas/openapi.yaml (and the state schemas it uses)."""

import functools
import json

import jsonschema
import yaml

from host.core.validation import SCHEMA_DIR


@functools.cache
def document() -> dict:
    return yaml.safe_load((SCHEMA_DIR / "openapi.yaml").read_text())


@functools.cache
def _store() -> dict:
    schemas = [json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.schema.json")]
    return {schema["$id"]: schema for schema in schemas} | {"": document()}


def _resolve(node: dict) -> dict:
    while "$ref" in node and node["$ref"].startswith("#/"):
        node = functools.reduce(lambda n, k: n[k], node["$ref"][2:].split("/"), document())
    return node


def assert_documented(response, method: str, path: str) -> None:
    """The response's status is documented for the operation and its body fits."""
    operation = document()["paths"][path][method.lower()]
    documented = operation["responses"]
    assert str(response.status_code) in documented, (method, path, response.status_code)
    spec = _resolve(documented[str(response.status_code)])
    media = response.headers["Content-Type"].split(";")[0]
    assert media in spec["content"], (method, path, response.status_code, media)
    if media != "application/json":
        return  # a download: documented as binary
    schema = spec["content"]["application/json"]["schema"]
    resolver = jsonschema.RefResolver(base_uri="", referrer=document(), store=_store())
    jsonschema.Draft202012Validator(schema, resolver=resolver).validate(response.json())


def fits(body, pointer: str) -> bool:
    """Whether `body` fits the schema at `pointer` ("#/components/schemas/...") of the API;
    raises the validation error naming what does not."""
    resolver = jsonschema.RefResolver(base_uri="", referrer=document(), store=_store())
    jsonschema.Draft202012Validator({"$ref": pointer}, resolver=resolver).validate(body)
    return True
