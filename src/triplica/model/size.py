"""Item size in bytes, by DynamoDB's accounting rules.

This module owns the size of an item as DynamoDB counts it for the 400 KB item
limit, capacity units and the 1 MB page limit ("Item sizes and formats" in the
DynamoDB Developer Guide). For a validated value:

- S: UTF-8 length; B: length of the decoded bytes.
- N: (significant digits + 1) // 2 + 1 (about one byte per two digits plus
  one); leading and trailing zeros are not significant, zero counts 1.
- BOOL, NULL: 1.
- M: 3 bytes + for each entry 1 + UTF-8 length of the name + its value size.
- L: 3 bytes + for each element 1 + its value size.
- SS / NS / BS: sum of the member sizes (NS members sized as N).

An item is the sum over its attributes of UTF-8 name length + value size.
Inputs are assumed validated (values.validate_value): N is canonical text.
"""
from __future__ import annotations

from triplica.model.values import decode_binary

_CONTAINER_OVERHEAD_BYTES = 3
_ELEMENT_OVERHEAD_BYTES = 1


def item_size_bytes(item: dict) -> int:
    """Size of an item: attribute name bytes plus value sizes."""
    total = 0
    for name, av in item.items():
        total += _text_size(name) + value_size_bytes(av)
    return total


def attribute_size_bytes(name: str, av: dict) -> int:
    """Size one top-level attribute adds to its item."""
    return _text_size(name) + value_size_bytes(av)


def value_size_bytes(av: dict) -> int:
    """Size of one AttributeValue (see module docstring for the rules)."""
    for type_name, inner in av.items():
        if type_name == "S":
            return _text_size(inner)
        if type_name == "N":
            return _number_size(inner)
        if type_name == "B":
            return len(decode_binary(inner))
        if type_name == "BOOL" or type_name == "NULL":
            return 1
        if type_name == "M":
            total = _CONTAINER_OVERHEAD_BYTES
            for name, child in inner.items():
                total += _ELEMENT_OVERHEAD_BYTES + _text_size(name) + value_size_bytes(child)
            return total
        if type_name == "L":
            total = _CONTAINER_OVERHEAD_BYTES
            for child in inner:
                total += _ELEMENT_OVERHEAD_BYTES + value_size_bytes(child)
            return total
        if type_name == "SS":
            return sum(map(_text_size, inner))
        if type_name == "NS":
            return sum(map(_number_size, inner))
        if type_name == "BS":
            return sum(len(decode_binary(member)) for member in inner)
        raise AssertionError(f"unknown AttributeValue type {type_name!r}")
    raise AssertionError("empty AttributeValue")


def significant_digit_count(text: str) -> int:
    """Significant digits of canonical (or plain) number text; 0 for zero."""
    digits = text.lstrip("-+").replace(".", "", 1).strip("0")
    return len(digits)


def _number_size(text: str) -> int:
    return (significant_digit_count(text) + 1) // 2 + 1


def _text_size(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))
