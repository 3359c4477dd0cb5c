"""Unit tests for triplica.model.values: validation, comparison, equality."""
from __future__ import annotations

import pytest

from triplica.errors import SerializationException, ValidationException
from triplica.model.values import (
    compare_values,
    decode_binary,
    validate_item,
    validate_value,
    value_type,
    values_equal,
)

EMPTY = "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
MANY = ("Supplied AttributeValue has more than one datatypes set, "
        "must contain exactly one of the supported datatypes")
INVALID = "One or more parameter values were invalid: "


def _nested(kind: str, levels: int) -> dict:
    value: dict = {"S": "leaf"}
    for _ in range(levels):
        value = {"M": {"a": value}} if kind == "M" else {"L": [value]}
    return value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"S": "x"}, {"S": "x"}),
        ({"S": ""}, {"S": ""}),
        ({"N": "1.50"}, {"N": "1.5"}),
        ({"N": "-0"}, {"N": "0"}),
        ({"B": "QQ=="}, {"B": "QQ=="}),
        ({"B": "QR=="}, {"B": "QQ=="}),  # non-canonical padding bits
        ({"B": ""}, {"B": ""}),
        ({"BOOL": False}, {"BOOL": False}),
        ({"NULL": True}, {"NULL": True}),
        ({"M": {}}, {"M": {}}),
        ({"L": []}, {"L": []}),
        ({"M": {"a": {"L": [{"N": "01"}, {"NS": ["2.0", "1e1"]}]}}},
         {"M": {"a": {"L": [{"N": "1"}, {"NS": ["2", "10"]}]}}}),
        ({"SS": ["b", "a"]}, {"SS": ["b", "a"]}),
        ({"BS": ["QQ==", "Qg=="]}, {"BS": ["QQ==", "Qg=="]}),
        ({"S": "x", "Unknown": 1}, {"S": "x"}),
        ({"S": None, "N": "2"}, {"N": "2"}),
    ],
)
def test_validate_value_normalizes(value: dict, expected: dict) -> None:
    original = repr(value)
    assert validate_value(value) == expected
    assert repr(value) == original  # input untouched


NESTING = ("Nesting Levels have exceeded supported limits: Attributes in the item have nested "
           "levels beyond supported limit")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({}, EMPTY),
        (None, EMPTY),
        ({"X": "1"}, EMPTY),
        ({"S": None}, EMPTY),
        ({"S": "a", "N": "1"}, MANY),
        ({"NULL": False}, INVALID + "Null attribute value types must have the value of true"),
        ({"SS": []}, INVALID + "An string set  may not be empty"),
        ({"NS": []}, INVALID + "An number set  may not be empty"),
        ({"BS": []}, INVALID + "Binary sets should not be empty"),   # DynamoDB's words (issue 11)
        ({"SS": ["a", "a"]}, INVALID + "Input collection [a, a] contains duplicates."),
        ({"NS": ["1", "1.0"]}, INVALID + "Input collection [1, 1.0] contains duplicates."),
        ({"BS": ["QQ==", "QR=="]}, INVALID + "Input collection [QQ==, QR==] contains duplicates."),
        ({"N": "abc"}, "The parameter cannot be converted to a numeric value: abc"),
        ({"NS": ["1", "x"]}, "The parameter cannot be converted to a numeric value: x"),
        (_nested("M", 33), NESTING),
        (_nested("L", 33), NESTING),
    ],
)
def test_validation_errors(value: object, message: str) -> None:
    with pytest.raises(ValidationException) as error:
        validate_value(value)
    assert error.value.message == message


def test_nesting_limit_is_32_levels() -> None:
    assert validate_value(_nested("M", 32)) == _nested("M", 32)
    assert validate_value(_nested("L", 32)) == _nested("L", 32)


@pytest.mark.parametrize(
    "value",
    [{"S": 5}, {"N": 5}, {"S": True}, {"BOOL": "true"}, {"NULL": 1}, {"M": []},
     {"L": {}}, {"SS": "a"}, {"SS": [1]}, {"B": "QQ"}, {"B": "Q Q=="}, {"B": "é"},
     {"BS": ["!!"]}, [], "S", {"B": 5}],
)
def test_serialization_errors(value: object) -> None:
    with pytest.raises(SerializationException):
        validate_value(value)


def test_validate_item() -> None:
    assert validate_item({"a": {"N": "1.0"}, "b": {"S": "x"}}) == {
        "a": {"N": "1"}, "b": {"S": "x"}}
    with pytest.raises(ValidationException) as error:
        validate_item({"": {"S": "x"}})
    assert error.value.message == (
        "One or more parameter values are not valid. Empty attribute name is not allowed")
    with pytest.raises(SerializationException):
        validate_item([])


def test_value_type() -> None:
    assert value_type({"SS": ["a"]}) == "SS"


def test_decode_binary() -> None:
    assert decode_binary("AAE=") == b"\x00\x01"
    with pytest.raises(SerializationException):
        decode_binary("AAE")


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"S": "a"}, {"S": "b"}, -1),
        ({"S": "b"}, {"S": "a"}, 1),
        ({"S": "a"}, {"S": "a"}, 0),
        ({"S": "Z"}, {"S": "a"}, -1),
        ({"S": "\uffff"}, {"S": "\U00010000"}, -1),  # UTF-8 byte order
        ({"S": "a"}, {"S": "ab"}, -1),
        ({"N": "10"}, {"N": "9"}, 1),
        ({"N": "-10"}, {"N": "-9"}, -1),
        ({"N": "1"}, {"N": "1.0"}, 0),
        ({"N": "0.001"}, {"N": "0"}, 1),
        ({"B": "AQ=="}, {"B": "/w=="}, -1),  # 0x01 < 0xff
        ({"B": "AA=="}, {"B": "AAA="}, -1),
        ({"S": "1"}, {"N": "1"}, None),
        ({"BOOL": True}, {"BOOL": True}, None),
        ({"SS": ["a"]}, {"SS": ["a"]}, None),
        ({"L": []}, {"L": []}, None),
    ],
)
def test_compare_values(a: dict, b: dict, expected: int | None) -> None:
    assert compare_values(a, b) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"S": "a"}, {"S": "a"}, True),
        ({"S": "a"}, {"S": "b"}, False),
        ({"N": "1"}, {"N": "1.00"}, True),
        ({"N": "1"}, {"S": "1"}, False),
        ({"B": "QQ=="}, {"B": "QR=="}, True),
        ({"BOOL": True}, {"BOOL": False}, False),
        ({"NULL": True}, {"NULL": True}, True),
        ({"SS": ["a", "b"]}, {"SS": ["b", "a"]}, True),
        ({"SS": ["a", "b"]}, {"SS": ["a"]}, False),
        ({"NS": ["1", "2.0"]}, {"NS": ["2", "1.0"]}, True),
        ({"BS": ["QQ==", "Qg=="]}, {"BS": ["Qg==", "QR=="]}, True),
        ({"L": [{"N": "1"}, {"S": "x"}]}, {"L": [{"N": "1.0"}, {"S": "x"}]}, True),
        ({"L": [{"N": "1"}, {"S": "x"}]}, {"L": [{"S": "x"}, {"N": "1"}]}, False),
        ({"L": [{"N": "1"}]}, {"L": [{"N": "1"}, {"N": "1"}]}, False),
        ({"M": {"a": {"N": "1"}, "b": {"L": []}}}, {"M": {"b": {"L": []}, "a": {"N": "1.0"}}}, True),
        ({"M": {"a": {"N": "1"}}}, {"M": {"b": {"N": "1"}}}, False),
        ({"M": {}}, {"L": []}, False),
    ],
)
def test_values_equal(a: dict, b: dict, expected: bool) -> None:
    assert values_equal(a, b) is expected
    assert values_equal(b, a) is expected
