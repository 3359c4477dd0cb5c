"""Request members of the wrong JSON type, refused before any handler runs.

DynamoDB's service deserializes a request against its model before it
validates anything: a member of the wrong JSON type is a
SerializationException ("STRING_VALUE can not be converted to a Long",
"Start of list found where not expected"), and a null element of a list or
a null value in a map is a constraint violation ("Member must not be
null"). Handlers can then trust the types of what they read. The types come
from the service model (request_shapes.py, generated from botocore's copy).

What is not checked here: members the model does not know (ignored, as
DynamoDB ignores them), a null member (read as absent), and AttributeValues
(model/values.py validates those, with their own messages).
"""
from __future__ import annotations

from typing import Any

from triplica.engine.operations.request_shapes import OPERATION_INPUTS, SHAPES
from triplica.errors import SerializationException, ValidationException
from triplica.model.values import wrong_type_message

# Scalar kind -> (accepted Python types from orjson, the name in messages).
_SCALARS: dict[str, tuple[tuple[type, ...], str]] = {
    "string": ((str,), "String"),
    "integer": ((int,), "Integer"),
    "long": ((int,), "Long"),
    "boolean": ((bool,), "Boolean"),
    "blob": ((str,), "Blob"),
    "double": ((int, float), "Double"),
    "timestamp": ((int, float), "Date"),
}
_INTEGER_BITS = {"integer": 31, "long": 63}   # Java int and long


def check_request(operation: str, request: dict[str, Any]) -> None:
    """Raise for the first member of the wrong type, in document order."""
    shape = OPERATION_INPUTS.get(operation)
    if shape is not None:
        _check_members(SHAPES[shape][1], request, "")


def _check_members(members: dict[str, str], document: dict[str, Any], path: str) -> None:
    for name, value in document.items():
        shape = members.get(name)
        if shape is None or value is None:
            continue
        _check(shape, value, path + name[:1].lower() + name[1:])


def _check(shape_name: str, value: Any, path: str) -> None:
    shape = SHAPES[shape_name]
    kind = shape[0]
    if kind == "attribute_value":
        return
    if kind == "structure":
        if type(value) is not dict:
            raise SerializationException(wrong_type_message(value, "Structure"))
        _check_members(shape[1], value, path + ".")
        return
    if kind == "list":
        if type(value) is not list:
            raise SerializationException(wrong_type_message(value, "List"))
        for position, element in enumerate(value, 1):
            _check_element(shape[1], element, f"{path}.{position}.member")
        return
    if kind == "map":
        if type(value) is not dict:
            raise SerializationException(wrong_type_message(value, "Map"))
        for key, element in value.items():
            _check_element(shape[1], element, f"{path}.{key}.member")
        return
    accepted, type_name = _SCALARS[kind]
    # bool is an int to Python, never to JSON.
    if type(value) not in accepted or (type(value) is bool and kind != "boolean"):
        raise SerializationException(wrong_type_message(value, type_name))
    bits = _INTEGER_BITS.get(kind)
    if bits is not None and not -(1 << bits) <= value < (1 << bits):
        raise SerializationException(f"NUMBER_VALUE can not be converted to a {type_name}")


def _check_element(shape_name: str, element: Any, path: str) -> None:
    if element is None:
        if SHAPES[shape_name][0] == "attribute_value":
            return   # values.py: "Supplied AttributeValue is empty, ..."
        raise ValidationException(
            f"1 validation error detected: Value null at '{path}' failed to satisfy "
            "constraint: Member must not be null")
    _check(shape_name, element, path)
