"""Legacy parameters build the same executable objects as expressions."""
from __future__ import annotations

import pytest

from triplica.expressions import (
    check_no_mixing, condition_from_expected, condition_from_filter,
    key_condition_from_key_conditions, projection_from_attributes_to_get,
    update_from_attribute_updates,
)

from tests.unit.expr_cases.helpers import L, N, S, outcome

ITEM = {"a": N(5), "s": S("hello"), "ss": {"SS": ["x", "y"]}, "l": L(S("x"))}


def cond(op, *values):
    return {"ComparisonOperator": op, "AttributeValueList": list(values)}


EXPECTED_CASES = [
    ({"a": {"Value": N(5)}}, None, True),
    ({"a": {"Value": N(6)}}, None, False),
    ({"a": {"Value": N(5), "Exists": True}}, None, True),
    ({"z": {"Exists": False}}, None, True),
    ({"a": {"Exists": False}}, None, False),
    ({"a": cond("EQ", N(5)), "s": cond("EQ", S("no"))}, "OR", True),
    ({"a": cond("EQ", N(5)), "s": cond("EQ", S("no"))}, "AND", False),
    ({"a": cond("EQ", N(5)), "s": cond("EQ", S("no"))}, None, False),
    ({"a": cond("NE", N(6))}, None, True),
    ({"z": cond("NE", N(6))}, None, True),
    ({"a": cond("LT", N(6))}, None, True),
    ({"a": cond("LE", N(5))}, None, True),
    ({"a": cond("GT", N(5))}, None, False),
    ({"a": cond("GE", N(5))}, None, True),
    ({"a": cond("NOT_NULL")}, None, True),
    ({"a": cond("NULL")}, None, False),
    ({"s": cond("CONTAINS", S("ell"))}, None, True),
    ({"ss": cond("CONTAINS", S("x"))}, None, True),
    ({"ss": cond("NOT_CONTAINS", S("x"))}, None, False),
    ({"s": cond("NOT_CONTAINS", S("zzz"))}, None, True),
    ({"z": cond("NOT_CONTAINS", S("zzz"))}, None, False),
    ({"s": cond("BEGINS_WITH", S("he"))}, None, True),
    ({"a": cond("IN", N(1), N(5))}, None, True),
    ({"a": cond("BETWEEN", N(1), N(5))}, None, True),
    ({"a": {"ComparisonOperator": "EQ", "Value": N(5)}}, None, True),
    ({}, None, True),
]


@pytest.mark.parametrize("expected, operator, result", EXPECTED_CASES)
def test_expected(expected, operator, result):
    assert condition_from_expected(expected, operator).evaluate(ITEM) is result


P = "One or more parameter values were invalid: "
EXPECTED_ERRORS = [
    ({"a": cond("EQ")}, P + "Invalid number of argument(s) for the EQ ComparisonOperator"),
    ({"a": cond("NULL", N(1))}, P + "Invalid number of argument(s) for the NULL ComparisonOperator"),
    ({"a": cond("BETWEEN", N(1))}, P + "Invalid number of argument(s) for the BETWEEN ComparisonOperator"),
    ({"a": cond("IN")}, P + "Invalid number of argument(s) for the IN ComparisonOperator"),
    ({"a": cond("LT", {"SS": ["a"]})}, P + "ComparisonOperator LT is not valid for SS AttributeValue type"),
    ({"a": cond("BEGINS_WITH", N(1))}, P + "ComparisonOperator BEGINS_WITH is not valid for N AttributeValue type"),
    ({"a": cond("BETWEEN", N(1), S("a"))}, P + "AttributeValues inside AttributeValueList must be of same type"),
    ({"a": cond("BETWEEN", N(5), N(1))},
     "The BETWEEN condition was provided a range where the lower bound is greater than the upper bound"),
    ({"a": {"Exists": True}}, P + "Value must be provided when Exists is true for Attribute: a"),
    ({"a": {}}, P + "Value must be provided when Exists is true for Attribute: a"),
    ({"a": {"Exists": False, "Value": N(1)}}, P + "Value cannot be used when Exists is false for Attribute: a"),
    ({"a": {"Exists": True, "ComparisonOperator": "EQ", "AttributeValueList": [N(1)]}},
     P + "Exists and ComparisonOperator cannot be used together for Attribute: a"),
]


@pytest.mark.parametrize("expected, message", EXPECTED_ERRORS)
def test_expected_errors(expected, message):
    assert outcome(condition_from_expected, expected, None) == ("error", message)


def test_filter():
    assert condition_from_filter({"a": cond("GT", N(1)), "s": cond("BEGINS_WITH", S("x"))}, "OR").evaluate(ITEM)
    assert not condition_from_filter({"a": cond("GT", N(1)), "s": cond("BEGINS_WITH", S("x"))}, None).evaluate(ITEM)


def test_key_conditions():
    kc = key_condition_from_key_conditions(
        {"pk": cond("EQ", S("h")), "sk": cond("BETWEEN", N(1), N(3))}, "pk", "sk")
    assert kc.partition_value == S("h") and kc.sort_op == "BETWEEN"
    assert kc.sort_matches(N(2)) and not kc.sort_matches(N(4))
    assert outcome(key_condition_from_key_conditions, {"sk": cond("EQ", N(1))}, "pk", "sk") == (
        "error", "Query condition missed key schema element: pk")
    assert outcome(key_condition_from_key_conditions,
                   {"pk": cond("EQ", S("h")), "sk": cond("NE", N(1))}, "pk", "sk") == (
        "error", "Attempted conditional constraint is not an indexable operation")


def test_attribute_updates():
    plan = update_from_attribute_updates({
        "a": {"Action": "ADD", "Value": N(2)}, "s": {"Action": "DELETE"},
        "ss": {"Action": "DELETE", "Value": {"SS": ["x", "y"]}}, "n": {"Value": S("v")},
        "c": {"Action": "ADD", "Value": {"NS": ["1"]}},
    })
    assert plan.apply(ITEM) == {"a": N(7), "l": L(S("x")), "n": S("v"), "c": {"NS": ["1"]}}
    assert plan.top_level_names() == {"a", "s", "ss", "n", "c"}
    assert outcome(update_from_attribute_updates, {"a": {"Action": "PUT"}}) == (
        "error", P + "Only DELETE action is allowed when no attribute value is specified")
    assert outcome(update_from_attribute_updates, {"a": {"Action": "ADD", "Value": S("x")}}) == (
        "error", P + "ADD action is not supported for the type S")
    assert outcome(update_from_attribute_updates, {"a": {"Action": "DELETE", "Value": S("x")}}) == (
        "error", P + "DELETE action with value is not supported for the type S")


def test_attributes_to_get():
    assert projection_from_attributes_to_get(["a", "zz"]).apply(ITEM) == {"a": N(5)}


def test_no_mixing():
    pairs = [("Expected", "ConditionExpression"), ("AttributeUpdates", "UpdateExpression")]
    check_no_mixing({"Expected": {}, "AttributeUpdates": {}}, pairs)
    check_no_mixing({"ConditionExpression": "a", "UpdateExpression": "SET"}, pairs)
    assert outcome(check_no_mixing, {"Expected": {}, "ConditionExpression": "x"}, pairs) == (
        "error", "Can not use both expression and non-expression parameters in the same request: "
                 "Non-expression parameters: {Expected} Expression parameters: {ConditionExpression}")
