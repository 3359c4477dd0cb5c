"""Attribute values: validation, normalization, comparison and equality.

This module owns the rules for one AttributeValue in DynamoDB's JSON wire form
({"S": "x"}, {"N": "1.5"}, {"B": "<base64>"}, {"BOOL": true}, {"NULL": true},
{"M": {...}}, {"L": [...]}, {"SS"|"NS"|"BS": [...]}) and for an item (a map
of attribute name to value). See "Supported data types" and "Naming rules and
data types" in the DynamoDB Developer Guide; messages are DynamoDB's own.

Invariants of a validated value (what `validate_value` returns):
- exactly one known type key, holding the Python type JSON gives it;
- N and NS members are canonical number text (numbers.normalize_number);
- B and BS members are canonical, padded base64 text;
- sets are non-empty and duplicate-free (NS numerically, BS by bytes);
- M/L nest at most NESTING_DEPTH_MAX containers deep: the top-level attribute
  value has depth 0, and an M or L at depth >= 32 is rejected.
The input is never mutated; validated values are fresh dicts and lists.
Keys of the input dict other than the ten type names, and type keys holding
JSON null, are ignored (as DynamoDB's JSON reader does for unknown members).
"""
from __future__ import annotations

import base64
import binascii
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable

from triplica.errors import SerializationException, ValidationException
from triplica.model.limits import ATTRIBUTE_NAME_BYTES_MAX, NESTING_DEPTH_MAX
from triplica.model.numbers import normalize_number, parse_number

MESSAGE_EMPTY = (
    "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
)
MESSAGE_MANY_TYPES = (
    "Supplied AttributeValue has more than one datatypes set, "
    "must contain exactly one of the supported datatypes"
)
MESSAGE_NULL_FALSE = (
    "One or more parameter values were invalid: "
    "Null attribute value types must have the value of true"
)
MESSAGE_NESTING = (
    "Nesting Levels have exceeded supported limits: Attributes in the item have nested levels "
    "beyond supported limit"
)
MESSAGE_EMPTY_NAME = (
    "One or more parameter values are not valid. Empty attribute name is not allowed"
)
MESSAGE_LONG_NAME = (
    "One or more parameter values were invalid: Attribute name exceeds the maximum size of "
    f"{ATTRIBUTE_NAME_BYTES_MAX} bytes"
)
_SET_NAMES = {"SS": "string", "NS": "number", "BS": "binary"}

TYPE_NAMES = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
_BINARY_CACHE_SIZE = 4096


def value_type(av: dict) -> str:
    """The single type key of a validated AttributeValue."""
    for key in av:
        return key
    raise AssertionError("value_type of an empty AttributeValue")


def decode_binary(text: str) -> bytes:
    """Strict base64 decode (padding required, no stray characters).

    Raises SerializationException for non-text or invalid base64.
    """
    if type(text) is not str:
        raise SerializationException(wrong_type_message(text, "Blob"))
    return _decode_base64(text)


@lru_cache(maxsize=_BINARY_CACHE_SIZE)
def _decode_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SerializationException(
            "Base64 encoded binary value is not valid: " + text[:64]
        ) from None


def validate_value(av: object, depth: int = 0) -> dict:
    """Validate one AttributeValue and return a normalized copy.

    Raises ValidationException for DynamoDB's semantic errors and
    SerializationException when a member has the wrong JSON type.
    """
    if type(av) is dict and len(av) == 1:
        # Hot path: one key, the overwhelmingly common shape.
        for type_name, inner in av.items():
            validator = _VALIDATORS.get(type_name)
            if validator is not None and inner is not None:
                return validator(inner, depth)
    if type(av) is not dict:
        if isinstance(av, list):
            raise SerializationException("Start of list found where not expected")
        if av is None:
            raise ValidationException(MESSAGE_EMPTY)
        raise SerializationException(wrong_type_message(av, "AttributeValue"))
    present = [key for key in TYPE_NAMES if av.get(key) is not None]
    if not present:
        raise ValidationException(MESSAGE_EMPTY)
    if len(present) > 1:
        raise ValidationException(MESSAGE_MANY_TYPES)
    return _VALIDATORS[present[0]](av[present[0]], depth)


def validate_item(item: object) -> dict:
    """Validate an item (attribute name -> AttributeValue); return a normalized copy."""
    if type(item) is not dict:
        raise SerializationException(wrong_type_message(item, "Map"))
    result = {}
    for name, av in item.items():
        check_attribute_name(name)
        result[name] = validate_value(av, 0)
    return result


def check_attribute_name(name: str) -> None:
    """A top-level attribute name: 1 to 65,535 bytes of UTF-8."""
    if not name:
        raise ValidationException(MESSAGE_EMPTY_NAME)
    # Four bytes per character at most: most names skip the encoding.
    if len(name) * 4 > ATTRIBUTE_NAME_BYTES_MAX \
            and len(name.encode("utf-8", "surrogatepass")) > ATTRIBUTE_NAME_BYTES_MAX:
        raise ValidationException(MESSAGE_LONG_NAME)


def compare_values(a: dict, b: dict) -> int | None:
    """Order two values: -1, 0 or 1 for S/S, N/N, B/B; None otherwise.

    S compares by UTF-8 bytes, which equals Python's code point order.
    """
    type_a = value_type(a)
    if type_a != value_type(b):
        return None
    x, y = a[type_a], b[type_a]
    if type_a == "S":
        pass
    elif type_a == "N":
        if x == y:
            return 0
        x, y = _to_decimal(x), _to_decimal(y)
    elif type_a == "B":
        x, y = decode_binary(x), decode_binary(y)
    else:
        return None
    return (x > y) - (x < y)


def values_equal(a: dict, b: dict) -> bool:
    """Deep equality with DynamoDB semantics (sets unordered, N numeric, B by bytes)."""
    type_a = value_type(a)
    if type_a != value_type(b):
        return False
    x, y = a[type_a], b[type_a]
    if x == y:
        return True
    if type_a == "N":
        return _to_decimal(x) == _to_decimal(y)
    if type_a == "B":
        return decode_binary(x) == decode_binary(y)
    if type_a == "SS":
        return set(x) == set(y)
    if type_a == "NS":
        return {_to_decimal(v) for v in x} == {_to_decimal(v) for v in y}
    if type_a == "BS":
        return {decode_binary(v) for v in x} == {decode_binary(v) for v in y}
    if type_a == "L":
        return len(x) == len(y) and all(map(values_equal, x, y))
    if type_a == "M":
        return x.keys() == y.keys() and all(values_equal(v, y[k]) for k, v in x.items())
    return False  # S, BOOL, NULL: plain equality already failed


def _to_decimal(text: str) -> Decimal:
    return parse_number(text)


# --- validators per type: (inner value, depth) -> normalized AttributeValue ---

def _validate_s(inner: Any, depth: int) -> dict:
    if type(inner) is not str:
        raise SerializationException(wrong_type_message(inner, "String"))
    return {"S": inner}


def _validate_n(inner: Any, depth: int) -> dict:
    if type(inner) is not str:
        raise SerializationException(wrong_type_message(inner, "String"))
    return {"N": normalize_number(inner)}


def _validate_b(inner: Any, depth: int) -> dict:
    return {"B": _canonical_base64(inner)}


def _validate_bool(inner: Any, depth: int) -> dict:
    if type(inner) is not bool:
        raise SerializationException(wrong_type_message(inner, "Boolean"))
    return {"BOOL": inner}


def _validate_null(inner: Any, depth: int) -> dict:
    if type(inner) is not bool:
        raise SerializationException(wrong_type_message(inner, "Boolean"))
    if not inner:
        raise ValidationException(MESSAGE_NULL_FALSE)
    return {"NULL": True}


def _validate_m(inner: Any, depth: int) -> dict:
    if type(inner) is not dict:
        raise SerializationException(wrong_type_message(inner, "Map"))
    if depth >= NESTING_DEPTH_MAX:
        raise ValidationException(MESSAGE_NESTING)
    child_depth = depth + 1
    return {"M": {name: validate_value(av, child_depth) for name, av in inner.items()}}


def _validate_l(inner: Any, depth: int) -> dict:
    if type(inner) is not list:
        raise SerializationException(wrong_type_message(inner, "List"))
    if depth >= NESTING_DEPTH_MAX:
        raise ValidationException(MESSAGE_NESTING)
    child_depth = depth + 1
    return {"L": [validate_value(av, child_depth) for av in inner]}


def _validate_ss(inner: Any, depth: int) -> dict:
    members = _set_members(inner, "SS")
    _check_duplicates(members, members)
    return {"SS": list(members)}


def _validate_ns(inner: Any, depth: int) -> dict:
    members = _set_members(inner, "NS")
    canonical = [normalize_number(text) for text in members]
    # Canonical text is unique per numeric value, so text equality is numeric equality.
    _check_duplicates(members, canonical)
    return {"NS": canonical}


def _validate_bs(inner: Any, depth: int) -> dict:
    members = _set_members(inner, "BS")
    canonical = [_canonical_base64(text) for text in members]
    _check_duplicates(members, canonical)
    return {"BS": canonical}


def _set_members(inner: Any, type_name: str) -> list:
    if type(inner) is not list:
        raise SerializationException(wrong_type_message(inner, "List"))
    if not inner:
        if type_name == "BS":   # DynamoDB words this one differently
            raise ValidationException(
                "One or more parameter values were invalid: Binary sets should not be empty")
        raise ValidationException(
            "One or more parameter values were invalid: "
            f"An {_SET_NAMES[type_name]} set  may not be empty"
        )
    for member in inner:
        if type(member) is not str:
            raise SerializationException(wrong_type_message(member, "String"))
    return inner


def _check_duplicates(members: list, keys: list) -> None:
    if len(set(keys)) != len(keys):
        raise ValidationException(
            "One or more parameter values were invalid: "
            f"Input collection [{', '.join(members)}] contains duplicates."
        )


def _canonical_base64(text: Any) -> str:
    raw = decode_binary(text)
    # Re-encoding only when needed keeps the common case allocation-free.
    encoded = base64.b64encode(raw).decode("ascii")
    return text if encoded == text else encoded


def wrong_type_message(value: Any, expected: str) -> str:
    """Text in the style of DynamoDB's JSON reader for a member of the wrong type."""
    if isinstance(value, dict):
        return "Start of structure or map found where not expected"
    if isinstance(value, list):
        return "Start of list found where not expected"
    if value is True:
        token = "TRUE_VALUE"
    elif value is False:
        token = "FALSE_VALUE"
    elif isinstance(value, (int, float)):
        token = "NUMBER_VALUE"
    elif isinstance(value, str):
        token = "STRING_VALUE"
    elif value is None:
        token = "NULL_VALUE"
    else:
        token = type(value).__name__
    return f"{token} can not be converted to a {expected}"


_VALIDATORS: dict[str, Callable[[Any, int], dict]] = {
    "S": _validate_s,
    "N": _validate_n,
    "B": _validate_b,
    "BOOL": _validate_bool,
    "NULL": _validate_null,
    "M": _validate_m,
    "L": _validate_l,
    "SS": _validate_ss,
    "NS": _validate_ns,
    "BS": _validate_bs,
}
