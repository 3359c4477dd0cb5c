"""Requests that cannot succeed, judged from botocore's service model alone.

DynamoDB deserializes and validates a request against its model before it
runs anything, so a request with a member of the wrong JSON type, an
integer outside the member's range or a string outside its enum is refused,
whatever else it holds. The harness asks `must_be_refused` about every case
and fails a 200 answer to such a request: an error the server forgot to
raise (the router once dropped a Scan Limit it could not count down and
answered every item) is caught even though the answer looked well formed.

Deliberately narrower than the model: null members count as absent (DynamoDB
reads them so), members the model does not know are ignored, AttributeValue
contents are model/values.py's business, and string lengths and patterns
are left out (DynamoDB does not check every one the model lists).
"""
from __future__ import annotations

from typing import Any

from tests.fuzz.shapes import service_model

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "blob": (str,), "boolean": (bool,),
    "integer": (int,), "long": (int,),
    "double": (int, float), "timestamp": (int, float),
}
_INTEGER_BITS = {"integer": 31, "long": 63}   # Java int and long


def must_be_refused(operation: str, document: Any) -> str | None:
    """Why the request can't succeed (a path and a reason), or None if it may."""
    model = service_model()
    if operation not in model.operation_names or type(document) is not dict:
        return None
    shape = model.operation_model(operation).input_shape
    if shape is None:
        return None
    return _structure(shape, document, operation)


def _structure(shape: Any, document: dict[str, Any], path: str) -> str | None:
    for name, value in document.items():
        member = shape.members.get(name)
        if member is None or value is None:
            continue
        reason = _value(member, value, f"{path}.{name}")
        if reason is not None:
            return reason
    return None


def _value(shape: Any, value: Any, path: str) -> str | None:
    if shape.name == "AttributeValue":
        return None
    kind = shape.type_name
    if kind == "structure":
        return _structure(shape, value, path) if type(value) is dict else f"{path}: not an object"
    if kind == "list":
        if type(value) is not list:
            return f"{path}: not a list"
        return _first(_value(shape.member, element, f"{path}[{position}]")
                      for position, element in enumerate(value) if element is not None)
    if kind == "map":
        if type(value) is not dict:
            return f"{path}: not a map"
        return _first(_value(shape.value, element, f"{path}.{key}")
                      for key, element in value.items() if element is not None)
    accepted = _JSON_TYPES[kind]
    if type(value) not in accepted:   # bool is no int in JSON
        return f"{path}: {type(value).__name__} where the model has {kind}"
    if kind in _INTEGER_BITS:
        return _integer_range(shape, value, path, _INTEGER_BITS[kind])
    if kind == "string" and shape.enum and value not in shape.enum:
        return f"{path}: {value!r} not in the enum"
    return None


def _integer_range(shape: Any, value: int, path: str, bits: int) -> str | None:
    low = max(shape.metadata.get("min", -(1 << bits)), -(1 << bits))
    high = min(shape.metadata.get("max", (1 << bits) - 1), (1 << bits) - 1)
    if not low <= value <= high:
        return f"{path}: {value} outside [{low}, {high}]"
    return None


def _first(reasons: Any) -> str | None:
    return next((reason for reason in reasons if reason is not None), None)
