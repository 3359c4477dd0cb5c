"""Scripted ProjectionExpression and KeyConditionExpression cases."""
from __future__ import annotations

import pytest

from triplica.expressions import ExpressionContext, Projection, parse_key_condition, parse_projection

from tests.unit.expr_cases.helpers import L, M, N, S, outcome

ITEM = {
    "a": N(1), "b": S("x"),
    "m": M(x=N(1), y=M(z=S("deep")), l=L(N(0), N(1), N(2))),
    "lst": L(M(p=N(1), q=N(2)), M(p=N(3)), N(9)),
}

PROJECTIONS = [
    ("a", {"a": N(1)}),
    ("a, b, absent", {"a": N(1), "b": S("x")}),
    ("m.x", {"m": M(x=N(1))}),
    ("m.y.z, m.x", {"m": M(y=M(z=S("deep")), x=N(1))}),
    ("m.l[2], m.l[0]", {"m": M(l=L(N(0), N(2)))}),
    ("lst[0].p, lst[1].q, lst[5]", {"lst": L(M(p=N(1)))}),
    ("lst[1], lst[0].q", {"lst": L(M(q=N(2)), M(p=N(3)))}),
    ("m.absent, a.b, b[0]", {}),
    ("#m.#x", {"m": M(x=N(1))}),
]


@pytest.mark.parametrize("expression, expected", PROJECTIONS)
def test_projection(expression, expected):
    ctx = ExpressionContext({"#m": "m", "#x": "x"} if "#" in expression else None, None)
    assert parse_projection(expression, ctx).apply(ITEM) == expected


PROJECTION_ERRORS = [
    ("a, a", "Invalid ProjectionExpression: Two document paths overlap with each other; must "
             "remove or rewrite one of these paths; path one: [a], path two: [a]"),
    ("m, m.x", "Invalid ProjectionExpression: Two document paths overlap with each other; must "
               "remove or rewrite one of these paths; path one: [m], path two: [m, x]"),
    ("m.x, m[0]", "Invalid ProjectionExpression: Two document paths conflict with each other; must "
                  "remove or rewrite one of these paths; path one: [m, x], path two: [m, [0]]"),
    ("a,", 'Invalid ProjectionExpression: Syntax error; token: "<EOF>", near: ","'),
    ("a-b", 'Invalid ProjectionExpression: Syntax error; token: "-", near: "a-b"'),
    ("size", "Invalid ProjectionExpression: Attribute name is a reserved keyword; reserved keyword: size"),
    ("", "Invalid ProjectionExpression: The expression can not be empty;"),
    ("#x", "Invalid ProjectionExpression: An expression attribute name used in the document path "
           "is not defined; attribute name: #x"),
]


@pytest.mark.parametrize("expression, message", PROJECTION_ERRORS)
def test_projection_errors(expression, message):
    assert outcome(parse_projection, expression, ExpressionContext()) == ("error", message)


def test_projection_from_names():
    assert Projection.from_names(["a", "m.x", "absent"]).apply(ITEM) == {"a": N(1)}


KEY_VALUES = {":h": S("h"), ":a": N(1), ":b": N(5), ":p": S("ab")}
KEY_CASES = [
    ("pk = :h", None, ()),
    ("pk = :h AND sk = :a", "=", (N(1),)),
    ("sk < :a AND pk = :h", "<", (N(1),)),
    (":a > sk AND pk = :h", "<", (N(1),)),
    ("#p = :h AND #s >= :a", ">=", (N(1),)),
    ("pk = :h AND sk BETWEEN :a AND :b", "BETWEEN", (N(1), N(5))),
    ("(pk = :h) and begins_with(sk, :p)", "begins_with", (S("ab"),)),
]


@pytest.mark.parametrize("expression, op, values", KEY_CASES)
def test_key_condition(expression, op, values):
    names = {"#p": "pk", "#s": "sk"} if "#" in expression else None
    condition = parse_key_condition(expression, ExpressionContext(names, KEY_VALUES), "pk", "sk")
    assert condition.partition_value == S("h")
    assert condition.sort_op == op
    assert condition.sort_values == values


def test_sort_matches():
    ctx = ExpressionContext(None, KEY_VALUES)
    between = parse_key_condition("pk = :h AND sk BETWEEN :a AND :b", ctx, "pk", "sk")
    assert [between.sort_matches(N(v)) for v in (0, 1, 3, 5, 6)] == [False, True, True, True, False]
    prefix = parse_key_condition("pk = :h AND begins_with(sk, :p)", ctx, "pk", "sk")
    assert prefix.sort_matches(S("abc")) and not prefix.sort_matches(S("b"))


KEY_ERRORS = [
    ("sk = :a", "Query condition missed key schema element: pk"),
    ("pk < :a", "Query key condition not supported"),
    ("pk = :h AND foo = :a", "Query condition missed key schema element: sk"),
    ("pk = :h OR sk = :a", "Invalid KeyConditionExpression: Invalid operator used in KeyConditionExpression: OR"),
    ("pk = :h AND NOT sk = :a", "Invalid KeyConditionExpression: Invalid operator used in KeyConditionExpression: NOT"),
    ("pk = :h AND sk <> :a", "Invalid KeyConditionExpression: Invalid operator used in KeyConditionExpression: <>"),
    ("pk = :h AND sk IN (:a)", "Invalid KeyConditionExpression: Invalid operator used in KeyConditionExpression: IN"),
    ("pk = :h AND attribute_exists(sk)",
     "Invalid KeyConditionExpression: Invalid operator used in KeyConditionExpression: attribute_exists"),
    ("pk = :h AND size(sk) = :a",
     "Invalid KeyConditionExpression: Invalid operator used in KeyConditionExpression: size"),
    ("pk = :h AND pk = :h",
     "Invalid KeyConditionExpression: KeyConditionExpressions must only contain one condition per key"),
    ("pk = :h AND sk = :a AND sk = :b", "Conditions can be of length 1 or 2 only"),
    ("pk = :h AND sk BETWEEN :b AND :a",
     "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than "
     "or equal to lower bound; lower bound operand: AttributeValue: {N:5}, upper bound operand: "
     "AttributeValue: {N:1}"),
    ("pk = :h AND", 'Invalid KeyConditionExpression: Syntax error; token: "<EOF>", near: "AND"'),
    ("pk = :nope", "Invalid KeyConditionExpression: An expression attribute value used in expression "
                   "is not defined; attribute value: :nope"),
]


@pytest.mark.parametrize("expression, message", KEY_ERRORS)
def test_key_condition_errors(expression, message):
    ctx = ExpressionContext(None, KEY_VALUES)
    assert outcome(parse_key_condition, expression, ctx, "pk", "sk") == ("error", message)
