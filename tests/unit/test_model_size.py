"""Unit tests for triplica.model.size: DynamoDB item size accounting."""
from __future__ import annotations

import pytest

from triplica.model.size import item_size_bytes, significant_digit_count, value_size_bytes


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ({"S": ""}, 0),
        ({"S": "abc"}, 3),
        ({"S": "é"}, 2),
        ({"S": "😀"}, 4),
        ({"B": "AAEC"}, 3),
        ({"B": ""}, 0),
        ({"N": "0"}, 1),
        ({"N": "1"}, 2),
        ({"N": "12"}, 2),
        ({"N": "123"}, 3),
        ({"N": "-1200"}, 2),  # two significant digits
        ({"N": "0.0012"}, 2),
        ({"N": "9" * 38}, 20),
        ({"BOOL": False}, 1),
        ({"NULL": True}, 1),
        ({"M": {}}, 3),
        ({"L": []}, 3),
        ({"L": [{"S": "ab"}, {"NULL": True}]}, 3 + (1 + 2) + (1 + 1)),
        ({"M": {"k": {"S": "ab"}}}, 3 + 1 + 1 + 2),
        ({"M": {"a": {"N": "12345"}, "b": {"L": [{"NULL": True}]}}}, 3 + (1 + 1 + 4) + (1 + 1 + 5)),
        ({"SS": ["a", "bc"]}, 3),
        ({"NS": ["1", "123"]}, 2 + 3),
        ({"BS": ["AA==", "AAE="]}, 3),
    ],
)
def test_value_size(value: dict, size: int) -> None:
    assert value_size_bytes(value) == size


def test_item_size() -> None:
    item = {"pk": {"S": "user"}, "n": {"N": "42"}, "é": {"BOOL": True}}
    assert item_size_bytes(item) == (2 + 4) + (1 + 2) + (2 + 1)
    assert item_size_bytes({}) == 0


def test_significant_digit_count() -> None:
    assert significant_digit_count("0") == 0
    assert significant_digit_count("-10.05") == 4
    assert significant_digit_count("0.000100") == 1
