"""Scripted UpdateExpression cases: (expression, names, values, item) -> fresh item or error."""
from __future__ import annotations

import copy

import pytest

from triplica.expressions import ExpressionContext, parse_update

from tests.unit.expr_cases.helpers import L, M, N, S, outcome

BASE = {
    "id": S("k"),
    "n": N(5),
    "s": S("x"),
    "lst": L(N(0), N(1), N(2), N(3)),
    "m": M(a=N(1), kid=M(b=S("y")), l=L(S("p"))),
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2"]},
}
VALUES = {
    ":one": N(1), ":big": N("99999999999999999999999999999999999999"), ":half": N("0.5"),
    ":s": S("v"), ":l": L(S("q")), ":ss": {"SS": ["b", "c"]}, ":ssab": {"SS": ["a", "b"]},
    ":ns": {"NS": ["2.0", "3"]}, ":m": M(z=N(1)), ":bs": {"BS": ["AQ=="]},
}


def with_(**changes):
    item = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            item.pop(key, None)
        else:
            item[key] = value
    return item


CASES = [
    ("SET s = :s", with_(s=S("v"))),
    ("set s = :s", with_(s=S("v"))),
    ("SET fresh = :one, s = :s", with_(fresh=N(1), s=S("v"))),
    ("SET n = n + :one", with_(n=N(6))),
    ("SET n = :half - n", with_(n=N("-4.5"))),
    ("SET n = n - n", with_(n=N(0))),
    ("SET c = if_not_exists(c, :one)", with_(c=N(1))),
    ("SET n = if_not_exists(n, :one)", with_()),
    ("SET c = if_not_exists(c, :one) + :one", with_(c=N(2))),
    ("SET lst = list_append(lst, :l)", with_(lst=L(N(0), N(1), N(2), N(3), S("q")))),
    ("SET lst = list_append(:l, :l)", with_(lst=L(S("q"), S("q")))),
    ("SET c = list_append(if_not_exists(c, :l), :l)", with_(c=L(S("q"), S("q")))),
    ("SET m.a = :s", with_(m=M(a=S("v"), kid=M(b=S("y")), l=L(S("p"))))),
    ("SET m.kid.c = :one", with_(m=M(a=N(1), kid=M(b=S("y"), c=N(1)), l=L(S("p"))))),
    ("SET m.l[0] = :s", with_(m=M(a=N(1), kid=M(b=S("y")), l=L(S("v"))))),
    ("SET lst[1] = :s", with_(lst=L(N(0), S("v"), N(2), N(3)))),
    ("SET lst[10] = :s", with_(lst=L(N(0), N(1), N(2), N(3), S("v")))),
    ("SET #a.#b = :s", with_(m=M(a=N(1), kid=M(b=S("y")), l=L(S("p")), b=S("v")))),
    ("SET a = m.kid", with_(a=M(b=S("y")))),
    ("SET a = lst[2]", with_(a=N(2))),
    ("REMOVE s", with_(s=None)),
    ("REMOVE absent, s", with_(s=None)),
    ("REMOVE m.a, m.kid.b", with_(m=M(kid=M(), l=L(S("p"))))),
    ("REMOVE lst[1], lst[2]", with_(lst=L(N(0), N(3)))),
    ("REMOVE lst[7]", with_()),
    ("SET lst[0] = :s REMOVE lst[1]", with_(lst=L(S("v"), N(2), N(3)))),
    ("ADD n :one", with_(n=N(6))),
    ("ADD c :one", with_(c=N(1))),
    ("ADD ss :ss", with_(ss={"SS": ["a", "b", "c"]})),
    ("ADD ns :ns", with_(ns={"NS": ["1", "2", "3"]})),
    ("ADD c :ss", with_(c={"SS": ["b", "c"]})),
    ("ADD m.a :one", with_(m=M(a=N(2), kid=M(b=S("y")), l=L(S("p"))))),
    ("DELETE ss :ss", with_(ss={"SS": ["a"]})),
    ("DELETE ss :ssab", with_(ss=None)),
    ("DELETE ns :ns", with_(ns={"NS": ["1"]})),
    ("DELETE absent :ss", with_()),
    ("SET s = :s REMOVE n ADD c :one DELETE ss :ss", with_(s=S("v"), n=None, c=N(1), ss={"SS": ["a"]})),
    ("REMOVE n SET s = :s", with_(s=S("v"), n=None)),
]


@pytest.mark.parametrize("expression, expected", CASES)
def test_update(expression, expected):
    ctx = ExpressionContext({"#a": "m", "#b": "b"} if "#a" in expression else None, VALUES)
    original = copy.deepcopy(BASE)
    assert parse_update(expression, ctx).apply(original) == expected
    assert original == BASE  # input untouched


MISSING = "The provided expression refers to an attribute that does not exist in the item"
BAD_PATH = "The document path provided in the update expression is invalid for update"
BAD_TYPE = "An operand in the update expression has an incorrect data type"

RUNTIME_ERRORS = [
    ("SET a = absent", MISSING),
    ("SET a = absent + :one", MISSING),
    ("SET a = m.nope", MISSING),
    ("SET absent.b = :one", BAD_PATH),
    ("SET s.b = :one", BAD_PATH),
    ("SET s[0] = :one", BAD_PATH),
    ("SET m[0] = :one", BAD_PATH),
    ("SET lst.a = :one", BAD_PATH),
    ("SET m.nope.x = :one", BAD_PATH),
    ("REMOVE s.b", BAD_PATH),
    # DynamoDB refuses a REMOVE below an attribute the item does not have (issue 11)
    ("REMOVE absent.x", BAD_PATH),
    ("REMOVE absent[0]", BAD_PATH),
    ("REMOVE m.nope.x", BAD_PATH),
    ("SET n = s + :one", BAD_TYPE),
    ("SET n = list_append(s, :l)", BAD_TYPE),
    ("ADD s :one", BAD_TYPE),
    ("ADD ss :ns", BAD_TYPE),
    ("DELETE s :ss", BAD_TYPE),
    ("DELETE ns :ss", BAD_TYPE),
    ("SET n = n + :big", "Number overflow. Attempting to store a number with magnitude larger "
     "than supported range"),
    # all or nothing: the first action would succeed, the second fails
    ("SET s = :s, a = absent", MISSING),
]


@pytest.mark.parametrize("expression, message", RUNTIME_ERRORS)
def test_runtime_errors(expression, message):
    plan = parse_update(expression, ExpressionContext(None, VALUES))
    original = copy.deepcopy(BASE)
    assert outcome(plan.apply, original) == ("error", message)
    assert original == BASE


def static(detail):
    return "Invalid UpdateExpression: " + detail


def wrong(op, type_name):
    return static("Incorrect operand type for operator or function; operator or function: "
                  f"{op}, operand type: {type_name}")


STATIC_ERRORS = [
    ("", static("The expression can not be empty;")),
    ("SET a = :s SET b = :s", static('The "SET" section can only be used once in an update expression;')),
    ("REMOVE a remove b", static('The "REMOVE" section can only be used once in an update expression;')),
    ("SET a = :s, a = :one", static("Two document paths overlap with each other; must remove or "
                                   "rewrite one of these paths; path one: [a], path two: [a]")),
    ("SET a = :s REMOVE a.b", static("Two document paths overlap with each other; must remove or "
                                    "rewrite one of these paths; path one: [a], path two: [a, b]")),
    ("SET a.b = :s REMOVE a[0]", static("Two document paths conflict with each other; must remove "
                                       "or rewrite one of these paths; path one: [a, b], path two: [a, [0]]")),
    ("SET a = :s + :one", wrong("+", "STRING")),
    ("SET a = n - :ss", wrong("-", "STRING SET")),
    ("SET a = list_append(:m, n)", wrong("list_append", "MAP")),
    ("ADD a :s", wrong("ADD", "STRING")),
    ("ADD a :l", wrong("ADD", "LIST")),
    ("DELETE a :one", wrong("DELETE", "NUMBER")),
    ("SET a = size(b)", static("The function is not allowed to be used this way in an expression; function: size")),
    ("SET a = if_not_exists(:one, :one)", static("Operator or function requires a document path; "
                                               "operator or function: if_not_exists")),
    ("SET a = list_append(:l)", static("Incorrect number of operands for operator or function; "
                                      "operator or function: list_append, number of operands: 1")),
    ("SET a = :one + :one + :one", static('Syntax error; token: "+", near: ":one + :one"')),
    ("SET a :one", static('Syntax error; token: ":one", near: "a :one"')),
    ("ADD a b", static('Syntax error; token: "b", near: "a b"')),
    ("SET a = :one,", static('Syntax error; token: "<EOF>", near: ","')),
    ("UPDATE a = :one", static('Syntax error; token: "UPDATE", near: "UPDATE a"')),
    ("SET name = :one", static("Attribute name is a reserved keyword; reserved keyword: name")),
    ("SET a = :nope", static("An expression attribute value used in expression is not defined; "
                            "attribute value: :nope")),
    ("REMOVE #nope", static("An expression attribute name used in the document path is not "
                           "defined; attribute name: #nope")),
]


@pytest.mark.parametrize("expression, message", STATIC_ERRORS)
def test_static_errors(expression, message):
    assert outcome(parse_update, expression, ExpressionContext(None, VALUES)) == ("error", message)


def test_plan_metadata():
    ctx = ExpressionContext({"#x": "x"}, VALUES)
    plan = parse_update("SET #x.y = :one, lst[1] = :s REMOVE s ADD n :one", ctx)
    assert plan.top_level_names() == {"x", "lst", "s", "n"}
    assert plan.paths == (("x", "y"), ("lst", 1), ("s",), ("n",))
    assert plan.updated_attributes(BASE) == {"lst": L(N(1)), "s": S("x"), "n": N(5)}


def test_set_ordering_in_same_list_uses_original_indexes():
    ctx = ExpressionContext(None, VALUES)
    plan = parse_update("REMOVE lst[0], lst[2] SET lst[3] = :s", ctx)
    assert plan.apply(BASE)["lst"] == L(N(1), S("v"))
