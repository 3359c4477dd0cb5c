"""Request values echoed in error messages the way DynamoDB's Java service
prints them.

DynamoDB's constraint messages quote the offending value with Java's
`toString`: maps as `{k=v, k2=v2}`, lists as `[a, b]`, model structures as
`KeySchemaElement(attributeName=pk, keyType=HASH)`, and some request
objects only by class and identity hash
(`com.amazonaws.dynamodb.v20120810.WriteRequest@5c0b9a1d`). A message must
never show a Python repr (`{'pk': ...}`, `None`, `True`).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import orjson

MODEL_PACKAGE = "com.amazonaws.dynamodb.v20120810"


@dataclass(frozen=True)
class Structure:
    """A model structure printed member by member: Name(member=value, ...)."""
    name: str
    members: dict[str, Any]


@dataclass(frozen=True)
class Opaque:
    """A model object printed by class and a hash: package.Name@1a2b3c4d."""
    name: str
    members: Any


def render(value: Any) -> str:
    """Java's text for a JSON value (wrapped in Structure/Opaque where needed)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(render(element) for element in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={render(inner)}" for key, inner in value.items()) + "}"
    if isinstance(value, Structure):
        members = ", ".join(f"{key[:1].lower()}{key[1:]}={render(inner)}"
                            for key, inner in value.members.items())
        return f"{value.name}({members})"
    if isinstance(value, Opaque):
        digest = zlib.crc32(orjson.dumps(value.members, option=orjson.OPT_SORT_KEYS))
        return f"{MODEL_PACKAGE}.{value.name}@{digest:x}"
    raise TypeError(f"no Java text for {type(value).__name__}")


def structures(name: str, elements: list[Any]) -> list[Any]:
    """A list of model structures (dicts become Structure, anything else stays)."""
    return [Structure(name, element) if isinstance(element, dict) else element
            for element in elements]
