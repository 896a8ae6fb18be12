"""Generated objects against the real schemas (plain helpers): Flux kinds against the
CRDs in tests/fixtures/flux-crds, core kinds against the API server's basic rules."""

import base64
import functools
import re

import jsonschema
import yaml

from support.base import TESTS

CRDS = TESTS / "fixtures" / "flux-crds"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
FLUX_KINDS = ("GitRepository", "OCIRepository", "Kustomization", "HelmRelease")


@functools.cache
def crd_validator(kind: str):
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            served = next(v for v in crd["spec"]["versions"] if v["served"] and v["storage"])
            schema = served["schema"]["openAPIV3Schema"]
            return f"{crd['spec']['group']}/{served['name']}", jsonschema.Draft7Validator(schema)
    raise KeyError(kind)


def crd_defaults(kind: str) -> dict:
    """The spec fields a Flux kind's CRD schema defaults, which the API server fills in."""
    spec = crd_validator(kind)[1].schema["properties"]["spec"]["properties"]
    return {field: schema["default"] for field, schema in spec.items() if "default" in schema}


def _undeclared(node: object, schema: dict, path: str = "") -> list[str]:
    """The paths of `node` that `schema` (a structural schema) does not declare."""
    if isinstance(node, list) and isinstance(schema.get("items"), dict):
        return [found for index, item in enumerate(node)
                for found in _undeclared(item, schema["items"], f"{path}[{index}]")]
    if not isinstance(node, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    properties, others = schema.get("properties"), schema.get("additionalProperties")
    found = []
    for key, value in node.items():
        if properties is not None and key in properties:
            found += _undeclared(value, properties[key], f"{path}.{key}")
        elif isinstance(others, dict):
            found += _undeclared(value, others, f"{path}.{key}")
        elif properties is not None:
            found.append(f"{path}.{key}")
    return found


def assert_valid(obj: dict) -> None:
    """Flux kinds against their CRD's openAPIV3Schema; core kinds against the basics."""
    metadata = obj["metadata"]
    assert DNS_SUBDOMAIN.match(metadata["name"])
    if "namespace" in metadata:
        assert DNS_LABEL.match(metadata["namespace"])
    if obj["kind"] in FLUX_KINDS:
        api_version, validator = crd_validator(obj["kind"])
        assert obj["apiVersion"] == api_version
        validator.validate(obj)
        # The API server refuses fields the structural schema does not declare ("field not
        # declared in schema"); JSON Schema alone lets them through.
        undeclared = _undeclared(obj, validator.schema)
        if undeclared:
            raise jsonschema.ValidationError(f"{obj['kind']}: field not declared in schema: "
                                             f"{', '.join(undeclared)}")
        return
    assert obj["apiVersion"] == "v1"
    if obj["kind"] == "Namespace":
        assert DNS_LABEL.match(metadata["name"]) and "namespace" not in metadata
    elif obj["kind"] == "ConfigMap":
        assert all(CONFIG_KEY.match(k) and isinstance(v, str) for k, v in obj["data"].items())
    elif obj["kind"] == "Secret":
        assert obj["type"] == "Opaque"
        assert all(CONFIG_KEY.match(k) and base64.b64decode(v, validate=True)
                   for k, v in obj["data"].items())
    else:
        raise AssertionError(f"unexpected kind {obj['kind']}")
