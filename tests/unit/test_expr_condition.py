"""Scripted condition / filter expression cases: (expression, names, values, item, expected)."""
from __future__ import annotations

import pytest

from triplica.errors import ValidationException
from triplica.expressions import ExpressionContext, parse_condition

from tests.unit.expr_cases.helpers import L, M, N, S, outcome

ITEM = {
    "id": S("k1"),
    "n": N(5),
    "s": S("hello"),
    "b": {"B": "aGVsbG8="},  # b"hello"
    "flag": {"BOOL": True},
    "nul": {"NULL": True},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": ["AQ=="]},
    "lst": L(S("x"), N(2), M(deep=S("y"))),
    "m": M(a=N(1), b=M(c=S("z")), lst=L(N(7), N(8))),
    "dash-name": S("d"),
}

VALUES = {
    ":five": N(5), ":five2": N("5.0"), ":six": N(6), ":one": N(1), ":hel": S("hel"),
    ":hello": S("hello"), ":x": S("x"), ":two": N(2), ":a": S("a"), ":z": S("z"),
    ":bhel": {"B": "aGVs"}, ":S": S("S"), ":SS": S("SS"), ":NS": S("NS"), ":M": S("M"),
    ":L": S("L"), ":B": S("B"), ":BOOL": S("BOOL"), ":NULL": S("NULL"), ":N": S("N"),
    ":true": {"BOOL": True}, ":deep": M(deep=S("y")), ":bone": {"B": "AQ=="},
    ":three": N(3), ":ten": N(10), ":seven": N(7),
}

TRUE_CASES = [
    "n = :five", "n = :five2", "n <> :six", "n < :six", "n <= :five", "n > :one", "n >= :five",
    "s > :hel", "s BETWEEN :hel AND :hello", "n BETWEEN :one AND :six", "n IN (:one, :five)",
    "attribute_exists(s)", "attribute_not_exists(absent)", "attribute_exists(m.b.c)",
    "attribute_exists(lst[2].deep)", "attribute_not_exists(lst[3])", "attribute_exists(m.lst[1])",
    "begins_with(s, :hel)", "begins_with(b, :bhel)", "contains(s, :hel)", "contains(ss, :a)",
    "contains(ns, :two) OR contains(ns, :one)", "contains(lst, :x)", "contains(lst, :deep)",
    "contains(bs, :bone)", "attribute_type(s, :S)", "attribute_type(ss, :SS)",
    "attribute_type(m, :M)", "attribute_type(lst, :L)", "attribute_type(b, :B)",
    "attribute_type(flag, :BOOL)", "attribute_type(nul, :NULL)", "attribute_type(n, :N)",
    "size(s) = :five", "size(b) = :five", "size(ss) = :two", "size(lst) = :three",
    "size(m) = :three", "size(m.lst) < :ten", "flag = :true",
    "NOT n = :six", "not n = :six", "n = :five and s = :hello", "n = :six OR s = :hello",
    "n = :six OR n = :five AND s = :hello",  # AND binds tighter
    "NOT (n = :six OR s = :x)", "NOT NOT n = :five", "(n = :five)",
    "absent <> :five", "n <> :hello", "m.lst[0] = :seven", "#d = :x OR #dash = :hello OR n = :five",
]

PARENTHESES_CASES = [
    # one pair around any operand or group is fine; only a pair directly around a pair is not
    "(n = :six)", "(n = :five) AND (NOT (s = :hello))", "((n = :five) AND s = :x) OR n = :six",
    "NOT (NOT (n = :five))", "((n = :five) OR n = :six)", " OR ".join(["n = :five"] * 150),
]


@pytest.mark.parametrize("expression", PARENTHESES_CASES)
def test_parentheses_and_operator_limits_allow(expression):
    ctx = ExpressionContext(None, VALUES)
    parse_condition(expression, ctx).evaluate(ITEM)


FALSE_CASES = [
    "n = :six", "n <> :five", "n = :hello", "n < :hello", "absent = :five", "absent < :five",
    "absent BETWEEN :one AND :six", "absent IN (:five)", "s IN (:x, :a)",
    "(n = :six OR s = :hello) AND n = :six", "ss < :a",
    "begins_with(n, :hel)", "begins_with(absent, :hel)", "contains(absent, :a)",
    "contains(ss, :five)", "contains(n, :five)", "attribute_type(absent, :S)",
    "attribute_type(s, :N)", "size(n) = :one", "size(absent) = :one", "NOT n = :five",
    "attribute_exists(m.a.b)", "attribute_exists(s[0])", "attribute_exists(lst.x)",
    "m.lst[5] = :seven",
]


@pytest.mark.parametrize("expression", TRUE_CASES)
def test_true(expression):
    ctx = ExpressionContext({"#d": "dash-name", "#dash": "s"}, VALUES)
    assert parse_condition(expression, ctx).evaluate(ITEM) is True


@pytest.mark.parametrize("expression", FALSE_CASES)
def test_false(expression):
    ctx = ExpressionContext(None, VALUES)
    assert parse_condition(expression, ctx).evaluate(ITEM) is False


def test_absent_item_is_empty():
    ctx = ExpressionContext(None, {":v": N(1)})
    assert parse_condition("attribute_not_exists(a)", ctx).evaluate(None)
    assert not parse_condition("a = :v", ctx).evaluate(None)


ERROR_CASES = [
    # (expression, names, values, kind, message)
    ("", None, None, "ConditionExpression", "Invalid ConditionExpression: The expression can not be empty;"),
    ("   ", None, None, "FilterExpression", "Invalid FilterExpression: The expression can not be empty;"),
    ("a = ", None, None, "ConditionExpression",
     'Invalid ConditionExpression: Syntax error; token: "<EOF>", near: "= "'),
    ("a = = :v", None, {":v": N(1)}, "ConditionExpression",
     'Invalid ConditionExpression: Syntax error; token: "=", near: "= = :v"'),
    ("a @ :v", None, {":v": N(1)}, "ConditionExpression",
     'Invalid ConditionExpression: Syntax error; token: "@", near: "a @ :v"'),
    ("a", None, None, "ConditionExpression",
     'Invalid ConditionExpression: Syntax error; token: "<EOF>", near: "a"'),
    ("a.1 = :v", None, {":v": N(1)}, "ConditionExpression",
     'Invalid ConditionExpression: Syntax error; token: "1", near: ".1 ="'),
    ("a = :v AND", None, {":v": N(1)}, "ConditionExpression",
     'Invalid ConditionExpression: Syntax error; token: "<EOF>", near: "AND"'),
    ("(a = :v", None, {":v": N(1)}, "ConditionExpression",
     'Invalid ConditionExpression: Syntax error; token: "<EOF>", near: ":v"'),
    ("a BETWEEN :v OR :v", None, {":v": N(1)}, "ConditionExpression",
     'Invalid ConditionExpression: Syntax error; token: "OR", near: ":v OR :v"'),
    ("name = :v", None, {":v": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: name"),
    ("a.Size = :v", None, {":v": N(1)}, "FilterExpression",
     "Invalid FilterExpression: Attribute name is a reserved keyword; reserved keyword: Size"),
    ("#x = :v", {"#y": "y"}, {":v": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: An expression attribute name used in the document path is "
     "not defined; attribute name: #x"),
    ("a = :w", None, {":v": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: An expression attribute value used in expression is not "
     "defined; attribute value: :w"),
    ("a = :w", None, None, "ConditionExpression",
     "Invalid ConditionExpression: An expression attribute value used in expression is not "
     "defined; attribute value: :w"),
    # parser limits: no recursion per parenthesis, NOT or call (issue 11)
    ("(" * 4095, None, None, "ConditionExpression",
     'Invalid ConditionExpression: Syntax error; token: "<EOF>", near: "("'),
    ("(" * 2046 + "a<:v" + ")" * 2046, None, {":v": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: The expression has redundant parentheses;"),
    ("a = :v AND ((a = :v))", None, {":v": N(1)}, "FilterExpression",
     "Invalid FilterExpression: The expression has redundant parentheses;"),
    ("not " * 1000 + "a < :v", None, {":v": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: The expression contains too many operators; "
     "operator count: 301"),
    (" OR ".join(["a = :v"] * 151), None, {":v": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: The expression contains too many operators; "
     "operator count: 301"),
    ("a < " + "f(" * 1355 + "b" + ")" * 1355, None, None, "ConditionExpression",
     "Invalid ConditionExpression: Invalid function name; function: f"),
    ("_a = :v", None, {":v": N(1)}, "ConditionExpression",
     'Invalid ConditionExpression: Syntax error; token: "_", near: "_a"'),
    # a :value that cannot be ordered is refused, not a false condition (issue 11)
    ("flag > :t", None, {":t": {"BOOL": True}}, "ConditionExpression",
     "Invalid ConditionExpression: Incorrect operand type for operator or function; "
     "operator or function: >, operand type: BOOLEAN"),
    ("a < :l", None, {":l": L(N(1))}, "ConditionExpression",
     "Invalid ConditionExpression: Incorrect operand type for operator or function; "
     "operator or function: <, operand type: LIST"),
    ("a BETWEEN :l AND :h", None, {":l": L(N(1)), ":h": L(N(2))}, "FilterExpression",
     "Invalid FilterExpression: Incorrect operand type for operator or function; "
     "operator or function: BETWEEN, operand type: LIST"),
    ("a BETWEEN :l AND :h", None, {":l": N(1), ":h": S("2")}, "ConditionExpression",
     "Invalid ConditionExpression: The BETWEEN operator requires same data type for lower and "
     "upper bounds; lower bound operand: AttributeValue: {N:1}, upper bound operand: "
     "AttributeValue: {S:2}"),
    ("attribute_type(a, b)", None, None, "FilterExpression",
     "Invalid FilterExpression: Operator or function requires an expression attribute value; "
     "operator or function: attribute_type"),
    ("foo(a)", None, None, "ConditionExpression",
     "Invalid ConditionExpression: Invalid function name; function: foo"),
    ("attribute_type(a, :t)", None, {":t": S("X")}, "ConditionExpression",
     "Invalid ConditionExpression: Invalid attribute type name found; type: X, valid types: "
     "{B,NULL,SS,BOOL,L,BS,N,NS,S,M}"),
    ("attribute_type(a, :t)", None, {":t": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: Incorrect operand type for operator or function; operator "
     "or function: attribute_type, operand type: NUMBER"),
    ("begins_with(a, :t)", None, {":t": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: Incorrect operand type for operator or function; operator "
     "or function: begins_with, operand type: NUMBER"),
    ("attribute_exists(a) = :t", None, {":t": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: The function is not allowed to be used this way in an "
     "expression; function: attribute_exists"),
    ("size(a)", None, None, "ConditionExpression",
     "Invalid ConditionExpression: The function is not allowed to be used this way in an "
     "expression; function: size"),
    ("if_not_exists(a, :t)", None, {":t": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: The function is not allowed to be used this way in an "
     "expression; function: if_not_exists"),
    ("attribute_exists(a, b)", None, None, "ConditionExpression",
     "Invalid ConditionExpression: Incorrect number of operands for operator or function; "
     "operator or function: attribute_exists, number of operands: 2"),
    ("attribute_exists(:t)", None, {":t": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: Operator or function requires a document path; operator "
     "or function: attribute_exists"),
    ("a BETWEEN :hi AND :lo", None, {":hi": N(5), ":lo": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be greater than "
     "or equal to lower bound; lower bound operand: AttributeValue: {N:5}, upper bound operand: "
     "AttributeValue: {N:1}"),
    ("a IN (" + ", ".join([":v"] * 101) + ")", None, {":v": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: The IN operator is provided with too many operands; "
     "number of operands: 101"),
    ("a = :v OR " * 500 + "a = :v", None, {":v": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: Expression size has exceeded the maximum allowed size; expression size: 5006"),
    ("a" + ".b" * 32 + " = :v", None, {":v": N(1)}, "ConditionExpression",
     "Invalid ConditionExpression: The document path has too many nesting levels; "
     "nesting levels: 33"),
]


@pytest.mark.parametrize("expression, names, values, kind, message", ERROR_CASES)
def test_errors(expression, names, values, kind, message):
    ctx = ExpressionContext(names, values)
    assert outcome(parse_condition, expression, ctx, kind) == ("error", message)


def test_error_is_cached_but_fresh():
    ctx = ExpressionContext()
    for _ in range(2):
        with pytest.raises(ValidationException) as info:
            parse_condition("a = ", ctx)
        assert "Syntax error" in info.value.message


def test_in_with_100_operands_is_fine():
    ctx = ExpressionContext(None, {":v": N(1)})
    assert parse_condition("a IN (" + ", ".join([":v"] * 100) + ")", ctx).evaluate({"a": N(1)})


def test_tree_cache_does_not_leak_values():
    text = "a = :v"
    one = parse_condition(text, ExpressionContext(None, {":v": N(1)}))
    two = parse_condition(text, ExpressionContext(None, {":v": N(2)}))
    assert one.evaluate({"a": N(1)}) and not one.evaluate({"a": N(2)})
    assert two.evaluate({"a": N(2)}) and not two.evaluate({"a": N(1)})


CONTEXT_ERRORS = [
    ({}, None, "ExpressionAttributeNames must not be empty"),
    (None, {}, "ExpressionAttributeValues must not be empty"),
    ({"x": "a"}, None, 'ExpressionAttributeNames contains invalid key: Syntax error; key: "x"'),
    ({"#a-b": "a"}, None, 'ExpressionAttributeNames contains invalid key: Syntax error; key: "#a-b"'),
    (None, {"v": N(1)}, 'ExpressionAttributeValues contains invalid key: Syntax error; key: "v"'),
    (None, {":v": N("abc")},
     "ExpressionAttributeValues contains invalid value: The parameter cannot be converted to a "
     "numeric value: abc for key :v"),
]


@pytest.mark.parametrize("names, values, message", CONTEXT_ERRORS)
def test_context_errors(names, values, message):
    assert outcome(ExpressionContext, names, values) == ("error", message)


def test_unused_names_then_values():
    ctx = ExpressionContext({"#a": "a", "#b": "b", "#c": "c"}, {":a": N(1), ":b": N(2)})
    parse_condition("#a = :a", ctx)
    assert outcome(ctx.check_unused) == (
        "error", "Value provided in ExpressionAttributeNames unused in expressions: keys: {#b, #c}")
    parse_condition("#b = :a AND #c = :a", ctx)
    assert outcome(ctx.check_unused) == (
        "error", "Value provided in ExpressionAttributeValues unused in expressions: keys: {:b}")
    parse_condition("#b = :b", ctx)
    ctx.check_unused()


def test_values_are_normalized():
    ctx = ExpressionContext(None, {":v": N("05.50")})
    assert parse_condition("a = :v", ctx).evaluate({"a": N("5.5")})
