"""Compiled-expression cache: a second request with the same text and context
shape must behave exactly like a fresh resolution (its own values, its own
used-name bookkeeping, value-dependent errors), and the number fast paths
must agree with Decimal arithmetic and comparison."""
from __future__ import annotations

import pytest

from triplica.expressions import (ExpressionContext, parse_condition, parse_key_condition,
                                  parse_projection, parse_update)
from triplica.expressions.evaluate import compare, equal_values, order_values
from triplica.model.values import compare_values, values_equal

from tests.unit.expr_cases.helpers import L, M, N, S, outcome


def ctx(values=None, names=None):
    return ExpressionContext(names, values)


def test_cache_hit_binds_each_requests_values():
    item = {"n": N(5)}
    text = "n > :v"
    assert parse_condition(text, ctx({":v": N(4)})).evaluate(item) is True
    assert parse_condition(text, ctx({":v": N(6)})).evaluate(item) is False
    plan = parse_update("SET n = n + :d", ctx({":d": N(1)}))
    assert plan.apply(item) == {"n": N(6)}
    plan = parse_update("SET n = n + :d", ctx({":d": N(-7)}))
    assert plan.apply(item) == {"n": N(-2)}


def test_cache_hit_marks_used_and_reports_unused():
    for _ in range(2):
        context = ctx({":a": N(1), ":b": N(2)}, {"#x": "x", "#y": "y"})
        parse_condition("#x = :a", context)
        assert outcome(context.check_unused) == (
            "error", "Value provided in ExpressionAttributeNames unused in expressions: "
                     "keys: {#y}")
    for _ in range(2):
        context = ctx({":a": N(1), ":b": N(2)}, {"#x": "x"})
        parse_update("SET #x = :a", context)
        assert outcome(context.check_unused) == (
            "error", "Value provided in ExpressionAttributeValues unused in expressions: "
                     "keys: {:b}")


def test_value_dependent_errors_on_cache_hit():
    text = "n BETWEEN :lo AND :hi"
    assert parse_condition(text, ctx({":lo": N(1), ":hi": N(2)})).evaluate({"n": N(1)})
    assert outcome(parse_condition, text, ctx({":lo": N(3), ":hi": N(2)})) == (
        "error", "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be "
                 "greater than or equal to lower bound; lower bound operand: AttributeValue: "
                 "{N:3}, upper bound operand: AttributeValue: {N:2}")
    text = "attribute_type(n, :t)"
    assert parse_condition(text, ctx({":t": S("N")})).evaluate({"n": N(1)})
    assert outcome(parse_condition, text, ctx({":t": S("XX")}))[0] == "error"
    key_text = "pk = :p AND sk BETWEEN :lo AND :hi"
    condition = parse_key_condition(key_text, ctx({":p": S("a"), ":lo": N(1), ":hi": N(9)}),
                                    "pk", "sk")
    assert condition.partition_value == S("a") and condition.sort_values == (N(1), N(9))
    condition = parse_key_condition(key_text, ctx({":p": S("b"), ":lo": N(2), ":hi": N(3)}),
                                    "pk", "sk")
    assert condition.partition_value == S("b") and condition.sort_values == (N(2), N(3))
    assert outcome(parse_key_condition, key_text,
                   ctx({":p": S("b"), ":lo": N(4), ":hi": N(3)}), "pk", "sk")[0] == "error"


def test_different_value_types_are_resolved_again():
    text = "SET n = n + :v"
    assert parse_update(text, ctx({":v": N(1)})).apply({"n": N(1)}) == {"n": N(2)}
    assert outcome(parse_update, text, ctx({":v": S("x")})) == (
        "error", "Invalid UpdateExpression: Incorrect operand type for operator or function; "
                 "operator or function: +, operand type: STRING")


def test_different_names_are_resolved_again():
    item = {"a": N(1), "b": N(2)}
    assert parse_projection("#p", ctx(names={"#p": "a"})).apply(item) == {"a": N(1)}
    assert parse_projection("#p", ctx(names={"#p": "b"})).apply(item) == {"b": N(2)}


def test_filter_top_level_names():
    condition = parse_condition("#a.b = :v AND size(c[0]) > :v", ctx({":v": N(1)}, {"#a": "x"}),
                                "FilterExpression")
    assert condition.top_level_names() == {"x", "c"}


NUMBERS = ["0", "1", "-1", "9", "10", "-10", "999999999999999999", "-999999999999999999",
           "1000000000000000000", "12345678901234567890123", "1.5", "-0.5", "0.001", "2"]


@pytest.mark.parametrize("left", NUMBERS)
@pytest.mark.parametrize("right", NUMBERS)
def test_number_fast_paths_agree_with_decimal(left, right):
    assert order_values(N(left), N(right)) == compare_values(N(left), N(right))
    assert equal_values(N(left), N(right)) == values_equal(N(left), N(right))


def test_non_number_comparisons_unchanged():
    assert order_values(S("a"), N("1")) is None
    assert equal_values(L(N(1)), L(N(1)))
    assert not equal_values(M(a=N(1)), M(a=N(2)))
    assert compare("<", S("a"), S("b"))


@pytest.mark.parametrize("start, delta, expected", [
    ("1", "1", "2"), ("-5", "3", "-2"), ("999999999999999999", "1", "1000000000000000000"),
    ("1.5", "1", "2.5"), ("0.1", "-0.1", "0"),
    ("99999999999999999999999999999999999999", "1", "100000000000000000000000000000000000000"),
    ("99999999999999999999999999999999999999", "0.1", "error"),
])
def test_set_arithmetic(start, delta, expected):
    result = outcome(parse_update("SET n = n + :d", ctx({":d": N(delta)})).apply, {"n": N(start)})
    if expected == "error":
        assert result[0] == "error"
    else:
        assert result == {"n": N(expected)}
        assert parse_update("ADD n :d", ctx({":d": N(delta)})).apply({"n": N(start)}) == result
