"""Validation: the one place where documents are checked against `schemas/`, and where
answers typed by people (the web UI, the console, the CLI) are checked field by field.

Every state file, every external document the appliance reads and every document
isobuild generates goes through `validate()`, so an invalid file is always reported
the same way: which document, where it came from, and the JSON pointer of the fault.
Typed answers fail with InputErrors, one FieldError per field naming the cause and the fix;
the address checks below are shared by the setup answers and the network settings.
"""

import functools
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

import jsonschema

# The schemas sit beside the package both in a checkout and in the appliance payload
# (/opt/alga-appliance/versions/<version>/{host,schemas}, through `current`):
# each running version reads its own schemas.
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


class DocumentInvalid(Exception):
    """A document failed its schema; names the document, its source and the JSON pointer."""

    def __init__(self, name: str, source: str, pointer: str, message: str):
        self.name, self.source, self.pointer, self.message = name, source, pointer, message
        super().__init__(f"{name} ({source}) is invalid at {pointer or '/'}: {message}")


@functools.cache
def load_schema(name: str) -> dict:
    """Load `schemas/<name>` (a path relative to the schema directory)."""
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


def _validator(schema_name: str) -> jsonschema.protocols.Validator:
    schema = load_schema(schema_name)
    # Our schemas declare draft 2020-12; subiquity's autoinstall schema declares none
    # and is written for draft 7, which is what subiquity itself validates with.
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def problems(document: dict, schema_name: str) -> list[dict]:
    """Every fault of the object `document`, one {"field", "message"} per top-level field in
    the schema's property order: for a request answered field by field."""
    schema = load_schema(schema_name)
    order = list(schema["properties"])
    found: dict[str, str] = {}
    for error in _validator(schema_name).iter_errors(document):
        if error.validator == "required":
            for field in error.validator_value:
                if field not in document:
                    found.setdefault(field, "required")
        elif error.validator == "additionalProperties":
            for field in set(document) - set(order):
                found.setdefault(field, f"unknown field; allowed: {', '.join(order)}")
        else:
            found.setdefault(str(error.absolute_path[0]) if error.absolute_path else "",
                             error.message)
    return [{"field": field, "message": found[field]} for field in
            sorted(found, key=lambda f: (order.index(f) if f in order else len(order), f))]


def validate(document: object, schema_name: str, *, name: str, source: str) -> None:
    """Raise DocumentInvalid if `document` does not satisfy `schemas/<schema_name>`."""
    error = jsonschema.exceptions.best_match(_validator(schema_name).iter_errors(document))
    if error is not None:
        pointer = "".join(f"/{part}" for part in error.absolute_path)
        raise DocumentInvalid(name, source, pointer, error.message)


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class InputErrors(ValueError):
    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def ip_address(text: str) -> IPAddress | None:
    """`text` as an IP address, or None when it is not one. A zone (fe80::1%eth0) raises
    ValueError: it names an interface of the machine it was typed on, which nothing else
    can use."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if getattr(address, "scope_id", None) is not None:
        raise ValueError(f"{text!r} has a zone (%...): give the address without it")
    return address


def not_a_resolver(address: IPAddress) -> str | None:
    """Why `address` cannot be a DNS resolver the appliance and k3s query, or None."""
    if getattr(address, "ipv4_mapped", None) is not None:
        return "an IPv4-mapped IPv6 address (an IPv4 resolver is given as IPv4)"
    if address.is_loopback or address.is_unspecified:
        return "a local address (k3s cannot use a loopback resolver)"
    if address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255"):
        return "a multicast or broadcast address, not one resolver"
    return None
