"""Expression language and legacy parameters, boto3 through a real server.

Follows the DynamoDB Developer Guide: "Comparison operator and function
reference", "Update expressions", "Projection expressions", "Key condition
expressions", "Filter expressions", "Expression attribute names/values",
"Reserved words" and the "Legacy conditional parameters" appendix.

Conditions are checked three ways per case (ConditionExpression on PutItem,
FilterExpression on Query and on Scan) against one seed item holding every
type. Every rejected request must be a ValidationException with HTTP 400 and
must leave the target item unchanged.

A message ending in "*" is matched as a prefix: the exact DynamoDB tail is
not known well enough to pin (see the report of the suite's author).
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_table


def S(text: str) -> dict:
    return {"S": text}


def N(text: str) -> dict:
    return {"N": text}


def B(data: bytes) -> dict:
    return {"B": data}


def L(*elements: dict) -> dict:
    return {"L": list(elements)}


def M(**members: dict) -> dict:
    return {"M": members}


BIG = "12345678901234567890123456789012345678"       # 38 digits
NINES = "9" * 38
HUGE = "9.9999999999999999999999999999999999999E+125"  # largest storable magnitude

SEED_KEY = {"pk": S("seed"), "sk": S("seed")}
SEED = {
    **SEED_KEY,
    "s": S("hello"), "s2": S("Zebra"), "bmp": S("\uffff"), "emoji": S("\U0001F600"), "blank": S(""),
    "n": N("42"), "neg": N("-7.5"), "big": N(BIG), "tiny": N("0.001"),
    "b": B(b"\x00\x01\x02"), "hi": B(b"\x80"),
    "t": {"BOOL": True}, "z": {"NULL": True},
    "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": [b"\x01", b"\x02"]},
    "l": L(S("x"), N("1"), M(k=S("v")), L(N("7"))),
    "m": M(a=M(b=S("deep")), nums=L(N("10"), N("20")), n=N("5")),
    "a.b": S("dotted"), "name": S("reserved"),
}
ERR_KEY = {"pk": S("err"), "sk": S("err")}
ERR_ITEM = {**SEED, **ERR_KEY, "nines": N(NINES), "huge": N(HUGE)}
# Aliases a test may use; each case gets exactly the ones its expressions mention.
ALIASES = {"#n": "name", "#d": "a.b", "#s": "s", "#m": "m", "#k": "k", "#data": "data"}


@pytest.fixture(scope="module")
def table(ddb: Any) -> str:
    name = make_table(ddb)
    ddb.put_item(TableName=name, Item=SEED)
    ddb.put_item(TableName=name, Item=ERR_ITEM)
    return name


def names_for(*texts: str) -> dict:
    used = {alias for text in texts if text for alias in re.findall(r"#\w+", text)}
    known = {alias: ALIASES[alias] for alias in used if alias in ALIASES}  # "#x": undefined
    return {"ExpressionAttributeNames": known} if known else {}


def values_arg(values: dict) -> dict:
    return {"ExpressionAttributeValues": values} if values else {}


def canon(value: Any) -> Any:
    """Comparable form: numbers as Decimal, sets as sorted lists."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in (
            "S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M"):
        kind, inner = next(iter(value.items()))
        if kind == "N":
            return ("N", Decimal(inner))
        if kind == "NS":
            return ("NS", sorted(Decimal(x) for x in inner))
        if kind in ("SS", "BS"):
            return (kind, sorted(inner))
        if kind == "L":
            return ("L", [canon(x) for x in inner])
        if kind == "M":
            return ("M", {k: canon(v) for k, v in inner.items()})
        return (kind, inner)
    return {k: canon(v) for k, v in value.items()}


# -- conditions and filters ------------------------------------------------------
CONDITIONS = [
    # = <> < <= > >= on N: integers, decimals, negatives, 38 digits, exponent forms
    ("n = :v", {":v": N("42")}, True),
    ("n = :v", {":v": N("42.000")}, True),
    ("n = :v", {":v": N("4.2E1")}, True),
    ("n <> :v", {":v": N("43")}, True),
    ("n <> :v", {":v": N("42")}, False),
    ("n < :v", {":v": N("42." + "0" * 35 + "1")}, True),
    ("n <= :v", {":v": N("42")}, True),
    ("n > :v", {":v": N("41.99999999999999999999999999999999999")}, True),
    ("n >= :v", {":v": N("43")}, False),
    ("neg < :v", {":v": N("-7.4")}, True),
    ("neg > :v", {":v": N("-7.6")}, True),
    ("neg < :v", {":v": N("-8")}, False),
    ("neg < tiny", {}, True),
    ("tiny > :v", {":v": N("0.00099999999999999999999999999999999999")}, True),
    ("tiny < :v", {":v": N("1E-2")}, True),
    ("big = :v", {":v": N("1.2345678901234567890123456789012345678E+37")}, True),
    ("big < :v", {":v": N("12345678901234567890123456789012345679")}, True),
    ("big > :v", {":v": N("12345678901234567890123456789012345677")}, True),
    ("big > :v", {":v": N("-99999999999999999999999999999999999999")}, True),
    # S: byte order of UTF-8 (uppercase before lowercase, U+FFFF before U+1F600)
    ("s = :v", {":v": S("hello")}, True),
    ("s < :v", {":v": S("hellp")}, True),
    ("s > :v", {":v": S("hell")}, True),
    ("s2 < :v", {":v": S("a")}, True),
    ("bmp < emoji", {}, True),
    ("emoji > :v", {":v": S("\uffff\uffff")}, True),
    ("blank < s", {}, True),
    # B: unsigned byte order, a prefix sorts first
    ("b = :v", {":v": B(b"\x00\x01\x02")}, True),
    ("b < :v", {":v": B(b"\x00\x02")}, True),
    ("b > :v", {":v": B(b"\x00\x01")}, True),
    ("hi > :v", {":v": B(b"\x7f")}, True),
    ("hi <= :v", {":v": B(b"\x7f\xff")}, False),
    # different types are never equal and never ordered
    ("n = :v", {":v": S("42")}, False),
    ("n <> :v", {":v": S("42")}, True),
    ("n < :v", {":v": S("50")}, False),
    ("n >= :v", {":v": S("0")}, False),
    ("b = :v", {":v": S("\x00\x01\x02")}, False),
    # equality of the other types
    ("t = :v", {":v": {"BOOL": True}}, True),
    ("t = :v", {":v": {"BOOL": False}}, False),
    ("z = :v", {":v": {"NULL": True}}, True),
    ("ss = :v", {":v": {"SS": ["b", "a"]}}, True),
    ("ss = :v", {":v": {"SS": ["a"]}}, False),
    ("ns = :v", {":v": {"NS": ["2.50", "1"]}}, True),
    ("bs = :v", {":v": {"BS": [b"\x02", b"\x01"]}}, True),
    ("l = :v", {":v": L(S("x"), N("1.0"), M(k=S("v")), L(N("7")))}, True),
    ("l = :v", {":v": L(N("1"), S("x"), M(k=S("v")), L(N("7")))}, False),
    ("m.a = :v", {":v": M(b=S("deep"))}, True),
    ("m <> :v", {":v": M()}, True),
    # absent attributes
    ("absent = :v", {":v": S("x")}, False),
    ("absent <> :v", {":v": S("x")}, True),
    ("absent < :v", {":v": N("1")}, False),
    ("absent >= :v", {":v": N("1")}, False),
    # path against path
    ("n > m.n", {}, True),
    ("m.nums[1] > m.nums[0]", {}, True),
    ("n = absent", {}, False),
    # IN
    ("n IN (:a, :b)", {":a": N("1"), ":b": N("42.0")}, True),
    ("s IN (:a)", {":a": S("x")}, False),
    ("n IN (:a)", {":a": S("42")}, False),
    ("absent IN (:a)", {":a": S("x")}, False),
    ("ss IN (:a, :b)", {":a": {"SS": ["b", "a"]}, ":b": S("a")}, True),
    ("m.nums[0] IN (:a, n)", {":a": N("10")}, True),
    # BETWEEN (inclusive)
    ("n BETWEEN :a AND :b", {":a": N("42"), ":b": N("42")}, True),
    ("n BETWEEN :a AND :b", {":a": N("1"), ":b": N("41.9")}, False),
    ("neg BETWEEN :a AND :b", {":a": N("-8"), ":b": N("-7")}, True),
    ("big BETWEEN :a AND :b", {":a": N(BIG[:-1] + "9"), ":b": N("1E38")}, False),
    ("big BETWEEN :a AND :b", {":a": N("1E37"), ":b": N(BIG)}, True),
    ("s BETWEEN :a AND :b", {":a": S("h"), ":b": S("i")}, True),
    ("b BETWEEN :a AND :b", {":a": B(b"\x00"), ":b": B(b"\x01")}, True),
    ("n BETWEEN :a AND :b", {":a": S("a"), ":b": S("z")}, False),
    ("absent BETWEEN :a AND :b", {":a": N("1"), ":b": N("2")}, False),
    # precedence: NOT > AND > OR, parentheses override
    ("n = :yes OR n = :no AND n = :no2", {":yes": N("42"), ":no": N("1"), ":no2": N("2")}, True),
    ("(n = :yes OR n = :no) AND n = :no2", {":yes": N("42"), ":no": N("1"), ":no2": N("2")}, False),
    ("n = :no AND n = :no2 OR n = :yes", {":yes": N("42"), ":no": N("1"), ":no2": N("2")}, True),
    ("n = :no AND (n = :no2 OR n = :yes)", {":yes": N("42"), ":no": N("1"), ":no2": N("2")}, False),
    ("NOT n = :yes AND n = :no", {":yes": N("42"), ":no": N("1")}, False),
    ("NOT (n = :yes AND n = :no)", {":yes": N("42"), ":no": N("1")}, True),
    ("NOT n = :no OR n = :no", {":no": N("1")}, True),
    ("NOT NOT n = :yes", {":yes": N("42")}, True),
    ("n = :yes and not n = :no or n = :no", {":yes": N("42"), ":no": N("1")}, True),
    # attribute_exists / attribute_not_exists on nested paths, indexes, aliases
    ("attribute_exists(s)", {}, True),
    ("attribute_exists(absent)", {}, False),
    ("attribute_not_exists(absent)", {}, True),
    ("attribute_not_exists(s)", {}, False),
    ("attribute_exists(m.a.b)", {}, True),
    ("attribute_exists(m.a.c)", {}, False),
    ("attribute_exists(l[3][0])", {}, True),
    ("attribute_exists(l[4])", {}, False),
    ("attribute_exists(l[2].k)", {}, True),
    ("attribute_exists(s.x)", {}, False),
    ("attribute_exists(m[0])", {}, False),
    ("attribute_exists(#n)", {}, True),
    ("attribute_exists(#d)", {}, True),
    ("attribute_exists(a.b)", {}, False),
    ("attribute_exists(#m.a.#s)", {}, False),
    ("attribute_exists(blank)", {}, True),
    ("attribute_exists(z)", {}, True),
    ("NOT attribute_exists(absent)", {}, True),
    # attribute_type for all ten types
    *[(f"attribute_type({path}, :t)", {":t": S(kind)}, True) for path, kind in [
        ("s", "S"), ("n", "N"), ("b", "B"), ("t", "BOOL"), ("z", "NULL"), ("ss", "SS"),
        ("ns", "NS"), ("bs", "BS"), ("l", "L"), ("m", "M")]],
    ("attribute_type(s, :t)", {":t": S("N")}, False),
    ("attribute_type(ss, :t)", {":t": S("S")}, False),
    ("attribute_type(l[3], :t)", {":t": S("L")}, True),
    ("attribute_type(absent, :t)", {":t": S("S")}, False),
    # begins_with on S and B
    ("begins_with(s, :p)", {":p": S("he")}, True),
    ("begins_with(s, :p)", {":p": S("hello")}, True),
    ("begins_with(s, :p)", {":p": S("hello!")}, False),
    ("begins_with(s, :p)", {":p": S("H")}, False),
    ("begins_with(b, :p)", {":p": B(b"\x00\x01")}, True),
    ("begins_with(b, :p)", {":p": B(b"\x01")}, False),
    ("begins_with(s, :p)", {":p": B(b"he")}, False),
    ("begins_with(l[0], :p)", {":p": S("x")}, True),
    ("begins_with(absent, :p)", {":p": S("x")}, False),
    ("begins_with(n, :p)", {":p": S("4")}, False),
    # contains on S, SS, NS, BS, L
    ("contains(s, :v)", {":v": S("ell")}, True),
    ("contains(s, :v)", {":v": S("xyz")}, False),
    ("contains(ss, :v)", {":v": S("a")}, True),
    ("contains(ss, :v)", {":v": S("c")}, False),
    ("contains(ns, :v)", {":v": N("2.50")}, True),
    ("contains(ns, :v)", {":v": N("3")}, False),
    ("contains(ns, :v)", {":v": S("1")}, False),
    ("contains(bs, :v)", {":v": B(b"\x01")}, True),
    ("contains(bs, :v)", {":v": B(b"\x03")}, False),
    ("contains(l, :v)", {":v": S("x")}, True),
    ("contains(l, :v)", {":v": N("1")}, True),
    ("contains(l, :v)", {":v": M(k=S("v"))}, True),
    ("contains(l, :v)", {":v": S("v")}, False),
    ("contains(m.nums, :v)", {":v": N("20")}, True),
    ("contains(absent, :v)", {":v": S("a")}, False),
    ("NOT contains(absent, :v)", {":v": S("a")}, True),
    ("contains(s, s2)", {}, False),
    # size() in comparisons: S characters, B bytes, set members, L and M entries
    ("size(s) = :v", {":v": N("5")}, True),
    ("size(b) = :v", {":v": N("3")}, True),
    ("size(ss) = :v", {":v": N("2")}, True),
    ("size(ns) = :v", {":v": N("2")}, True),
    ("size(bs) = :v", {":v": N("2")}, True),
    ("size(l) = :v", {":v": N("4")}, True),
    ("size(m) = :v", {":v": N("3")}, True),
    ("size(m.a) = :v", {":v": N("1")}, True),
    ("size(l[3]) = :v", {":v": N("1")}, True),
    ("size(blank) = :v", {":v": N("0")}, True),
    ("size(l) > :v", {":v": N("3")}, True),
    ("size(l) < :v", {":v": N("4")}, False),
    ("size(s) BETWEEN :a AND :b", {":a": N("1"), ":b": N("5")}, True),
    ("size(s) IN (:a, :b)", {":a": N("1"), ":b": N("5")}, True),
    ("size(absent) = :v", {":v": N("0")}, False),
    ("size(absent) <> :v", {":v": N("0")}, True),
    ("size(s) = size(m.nums) AND size(l) > size(ss)", {}, False),
    ("size(ss) = size(m.nums) AND size(l) > size(ss)", {}, True),
    ("size(s) = :v", {":v": S("5")}, False),
    # names: aliases for reserved words, dots and nesting
    ("#n = :v", {":v": S("reserved")}, True),
    ("#d = :v", {":v": S("dotted")}, True),
    ("#m.a.b = :v", {":v": S("deep")}, True),
    ("m.a.b = :v", {":v": S("deep")}, True),
    ("l[2].#k = :v", {":v": S("v")}, True),
    ("l[3][0] = :v", {":v": N("7")}, True),
]


def _condition_holds(ddb: Any, table: str, expression: str, extra: dict) -> bool:
    try:
        ddb.put_item(TableName=table, Item=SEED, ConditionExpression=expression, **extra)
        return True
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ConditionalCheckFailedException"
        return False


@pytest.mark.parametrize("expression,values,expected", CONDITIONS)
def test_condition_and_filter(ddb: Any, table: str, expression: str, values: dict,
                              expected: bool) -> None:
    extra = {**names_for(expression), **values_arg(values)}
    assert _condition_holds(ddb, table, expression, extra) is expected
    query_values = {**values, ":seed": S("seed")}
    query = ddb.query(TableName=table, KeyConditionExpression="pk = :seed",
                      FilterExpression=expression, ExpressionAttributeValues=query_values,
                      **names_for(expression))
    assert (query["Count"], query["ScannedCount"]) == (int(expected), 1)
    scan = ddb.scan(TableName=table, FilterExpression=f"sk = :seed AND ({expression})",
                    ExpressionAttributeValues=query_values, **names_for(expression))
    assert [item["pk"] for item in scan["Items"]] == ([S("seed")] if expected else [])


def test_condition_on_missing_item(ddb: Any, table: str) -> None:
    """A condition on a absent item sees no attributes at all; nothing is written on failure."""
    key = {"pk": S("ghost"), "sk": S("ghost")}
    for expression, values, expected in [
            ("attribute_not_exists(pk)", {}, True), ("attribute_exists(pk)", {}, False),
            ("a <> :v", {":v": S("x")}, True), ("size(a) = :v", {":v": N("0")}, False)]:
        try:
            ddb.delete_item(TableName=table, Key=key, ConditionExpression=expression,
                            **values_arg(values))
            held = True
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ConditionalCheckFailedException"
            held = False
        assert held is expected, expression
    assert "Item" not in ddb.get_item(TableName=table, Key=key)


# -- update expressions ------------------------------------------------------------
UPDATES = [
    # SET arithmetic: exact decimals, negatives, 38 digits
    ({"n": N("5")}, "SET n = n + :x", {":x": N("1")}, {"n": N("6")}),
    ({"n": N("5")}, "SET n = n - :x", {":x": N("7.5")}, {"n": N("-2.5")}),
    ({"n": N("5")}, "SET n = :x - n", {":x": N("1")}, {"n": N("-4")}),
    ({"n": N("0.1")}, "SET n = n + :x", {":x": N("0.2")}, {"n": N("0.3")}),
    ({"n": N("5")}, "SET n = n - n", {}, {"n": N("0")}),
    ({"n": N("5"), "o": N("-3")}, "SET p = n + o", {}, {"n": N("5"), "o": N("-3"), "p": N("2")}),
    ({"n": N("12345678901234567890123456789012345677")}, "SET n = n + :x", {":x": N("1")},
     {"n": N(BIG)}),
    ({"n": N(NINES)}, "SET n = n + :x", {":x": N("1")}, {"n": N("1" + "0" * 38)}),
    ({"n": N("-" + NINES)}, "SET n = n - :x", {":x": N("1")}, {"n": N("-1" + "0" * 38)}),
    ({"n": N("1E-130")}, "SET n = n + :x", {":x": N("1E-130")}, {"n": N("2E-130")}),
    ({"n": N("0.5")}, "SET n = n + :x", {":x": N("-0.5")}, {"n": N("0")}),
    # if_not_exists
    ({}, "SET a = if_not_exists(a, :d)", {":d": S("dflt")}, {"a": S("dflt")}),
    ({"a": S("old")}, "SET a = if_not_exists(a, :d)", {":d": S("dflt")}, {"a": S("old")}),
    ({}, "SET c = if_not_exists(c, :zero) + :one", {":zero": N("0"), ":one": N("1")},
     {"c": N("1")}),
    ({"c": N("9")}, "SET c = if_not_exists(c, :zero) + :one", {":zero": N("0"), ":one": N("1")},
     {"c": N("10")}),
    ({"m": M()}, "SET m.x = if_not_exists(m.x, :d)", {":d": N("1")}, {"m": M(x=N("1"))}),
    ({"a": S("x")}, "SET b = if_not_exists(a, :d)", {":d": S("y")}, {"a": S("x"), "b": S("x")}),
    # list_append both orders and with if_not_exists
    ({"l": L(S("a"))}, "SET l = list_append(l, :v)", {":v": L(S("b"), S("c"))},
     {"l": L(S("a"), S("b"), S("c"))}),
    ({"l": L(S("a"))}, "SET l = list_append(:v, l)", {":v": L(S("b"), S("c"))},
     {"l": L(S("b"), S("c"), S("a"))}),
    ({}, "SET l = list_append(if_not_exists(l, :e), :v)", {":e": L(), ":v": L(N("1"))},
     {"l": L(N("1"))}),
    ({"l": L(S("a"))}, "SET l = list_append(l, l)", {}, {"l": L(S("a"), S("a"))}),
    ({"l": L()}, "SET l = list_append(l, :v)", {":v": L(M(k=S("v")))}, {"l": L(M(k=S("v")))}),
    # SET on list indexes and nested paths
    ({"l": L(S("a"), S("b"))}, "SET l[10] = :v", {":v": S("z")}, {"l": L(S("a"), S("b"), S("z"))}),
    ({"l": L(S("a"), S("b"))}, "SET l[0] = :v", {":v": S("z")}, {"l": L(S("z"), S("b"))}),
    ({"l": L(S("a"))}, "SET l[5] = :v, l[7] = :w", {":v": S("v"), ":w": S("w")},
     {"l": L(S("a"), S("v"), S("w"))}),
    ({"m": M(a=M(b=S("x")))}, "SET m.a.c = :v", {":v": N("1")},
     {"m": M(a=M(b=S("x"), c=N("1")))}),
    ({"l": L(M(k=S("x")))}, "SET l[0].k = :v", {":v": S("y")}, {"l": L(M(k=S("y")))}),
    ({"l": L(L(N("1"), N("2")))}, "SET l[0][1] = :v", {":v": N("9")}, {"l": L(L(N("1"), N("9")))}),
    ({}, "SET #d = :v", {":v": S("dot")}, {"a.b": S("dot")}),
    ({}, "SET #data = :v", {":v": S("r")}, {"data": S("r")}),
    ({"a": M(x=N("1"))}, "SET b = a, c = a.x", {}, {"a": M(x=N("1")), "b": M(x=N("1")),
                                                    "c": N("1")}),
    ({"a": S("1"), "b": S("2")}, "SET a = b, b = a", {}, {"a": S("2"), "b": S("1")}),
    # REMOVE: attributes, map keys, list elements (indexes refer to the original list)
    ({"a": S("x"), "b": S("y")}, "REMOVE a", {}, {"b": S("y")}),
    ({"a": S("x")}, "REMOVE absent", {}, {"a": S("x")}),
    ({"m": M(a=N("1"), b=N("2"))}, "REMOVE m.a", {}, {"m": M(b=N("2"))}),
    ({"l": L(S("a"), S("b"), S("c"), S("d"))}, "REMOVE l[0], l[2]", {}, {"l": L(S("b"), S("d"))}),
    ({"l": L(S("a"), S("b"), S("c"), S("d"))}, "REMOVE l[2], l[0]", {}, {"l": L(S("b"), S("d"))}),
    ({"l": L(S("a"), S("b"), S("c"))}, "REMOVE l[1], l[5]", {}, {"l": L(S("a"), S("c"))}),
    ({"l": L(S("a"))}, "REMOVE l[0]", {}, {"l": L()}),
    ({"l": L(S("a"), S("b"), S("c"))}, "SET l[0] = :v REMOVE l[1]", {":v": S("z")},
     {"l": L(S("z"), S("c"))}),
    ({"l": L(M(a=N("1"), b=N("2")))}, "REMOVE l[0].a", {}, {"l": L(M(b=N("2")))}),
    # ADD: numbers and sets, absent attributes
    ({"n": N("5")}, "ADD n :x", {":x": N("-7.25")}, {"n": N("-2.25")}),
    ({}, "ADD n :x", {":x": N("3")}, {"n": N("3")}),
    ({"n": N(BIG)}, "ADD n :x", {":x": N("-" + BIG)}, {"n": N("0")}),
    ({"ss": {"SS": ["a"]}}, "ADD ss :x", {":x": {"SS": ["a", "b"]}}, {"ss": {"SS": ["a", "b"]}}),
    ({}, "ADD ss :x", {":x": {"SS": ["a"]}}, {"ss": {"SS": ["a"]}}),
    ({"ns": {"NS": ["1"]}}, "ADD ns :x", {":x": {"NS": ["1.0", "2"]}}, {"ns": {"NS": ["1", "2"]}}),
    ({"bs": {"BS": [b"\x01"]}}, "ADD bs :x", {":x": {"BS": [b"\x02"]}},
     {"bs": {"BS": [b"\x01", b"\x02"]}}),
    ({"m": M(n=N("1"))}, "ADD m.n :x", {":x": N("1")}, {"m": M(n=N("2"))}),
    # DELETE from sets; an emptied set removes the attribute
    ({"ss": {"SS": ["a", "b", "c"]}}, "DELETE ss :x", {":x": {"SS": ["a", "c", "zz"]}},
     {"ss": {"SS": ["b"]}}),
    ({"ss": {"SS": ["a", "b"]}, "o": S("x")}, "DELETE ss :x", {":x": {"SS": ["a", "b"]}},
     {"o": S("x")}),
    ({"ns": {"NS": ["1", "2.5"]}}, "DELETE ns :x", {":x": {"NS": ["2.50"]}}, {"ns": {"NS": ["1"]}}),
    ({"bs": {"BS": [b"\x01", b"\x02"]}}, "DELETE bs :x", {":x": {"BS": [b"\x01"]}},
     {"bs": {"BS": [b"\x02"]}}),
    ({"o": S("x")}, "DELETE absent :x", {":x": {"SS": ["a"]}}, {"o": S("x")}),
    # all clauses, any order, keywords case-insensitive
    ({"a": S("x"), "b": S("y"), "ss": {"SS": ["p", "q"]}},
     "DELETE ss :p ADD c :one REMOVE b SET a = :v", {":p": {"SS": ["p"]}, ":one": N("1"),
                                                     ":v": S("new")},
     {"a": S("new"), "c": N("1"), "ss": {"SS": ["q"]}}),
    ({"a": S("x")}, "set a = :v remove b add c :one", {":v": S("y"), ":one": N("1")},
     {"a": S("y"), "c": N("1")}),
]


@pytest.mark.parametrize("index,case", list(enumerate(UPDATES)),
                         ids=[case[1] for case in UPDATES])
def test_update_expression(ddb: Any, table: str, index: int, case: tuple) -> None:
    initial, expression, values, expected = case
    key = {"pk": S("upd"), "sk": S(str(index))}
    ddb.put_item(TableName=table, Item={**key, **initial})
    new = ddb.update_item(TableName=table, Key=key, UpdateExpression=expression,
                          ReturnValues="ALL_NEW", **names_for(expression), **values_arg(values))
    assert canon(new["Attributes"]) == canon({**key, **expected})
    stored = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert canon(stored) == canon({**key, **expected})


def test_update_creates_missing_item(ddb: Any, table: str) -> None:
    key = {"pk": S("upd"), "sk": S("created")}
    ddb.update_item(TableName=table, Key=key,
                    UpdateExpression="SET a = if_not_exists(a, :d) ADD c :one, s :set",
                    ExpressionAttributeValues={":d": S("x"), ":one": N("1"), ":set": {"NS": ["5"]}})
    assert canon(ddb.get_item(TableName=table, Key=key)["Item"]) == canon(
        {**key, "a": S("x"), "c": N("1"), "s": {"NS": ["5"]}})


# -- projections -------------------------------------------------------------------------
PROJECTIONS = [
    ("s, n", {"s": SEED["s"], "n": SEED["n"]}),
    ("m.a.b", {"m": M(a=M(b=S("deep")))}),
    ("l[0], l[3][0]", {"l": L(S("x"), L(N("7")))}),
    ("l[1], l[0]", {"l": L(S("x"), N("1"))}),
    ("l[2].k, m.nums[1], m.n", {"l": L(M(k=S("v"))), "m": M(nums=L(N("20")), n=N("5"))}),
    ("#d, #n", {"a.b": S("dotted"), "name": S("reserved")}),
    ("#m.a", {"m": M(a=M(b=S("deep")))}),
    ("s, absent, l[9], m.nope", {"s": SEED["s"]}),
    ("s.x, l.k, m[0]", {}),
    ("ss, z, t", {"ss": SEED["ss"], "z": SEED["z"], "t": SEED["t"]}),
]


@pytest.mark.parametrize("expression,expected", PROJECTIONS)
def test_projection(ddb: Any, table: str, expression: str, expected: dict) -> None:
    names = names_for(expression)
    got = ddb.get_item(TableName=table, Key=SEED_KEY, ProjectionExpression=expression, **names)
    assert canon(got["Item"]) == canon(expected)
    queried = ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                        ExpressionAttributeValues={":p": S("seed")},
                        ProjectionExpression=expression, **names)["Items"]
    assert [canon(item) for item in queried] == [canon(expected)]


def test_projection_in_scan_and_batch_get(ddb: Any, table: str) -> None:
    scanned = ddb.scan(TableName=table, ProjectionExpression="m.nums[0], #n",
                       FilterExpression="pk = :p", ExpressionAttributeValues={":p": S("seed")},
                       ExpressionAttributeNames={"#n": "name"})["Items"]
    assert scanned == [{"m": M(nums=L(N("10"))), "name": S("reserved")}]
    got = ddb.batch_get_item(RequestItems={table: {
        "Keys": [SEED_KEY], "ProjectionExpression": "l[3], #s",
        "ExpressionAttributeNames": {"#s": "s"}}})["Responses"][table]
    assert got == [{"l": L(L(N("7"))), "s": S("hello")}]


# -- key conditions --------------------------------------------------------------------
@pytest.fixture(scope="module")
def binary_table(ddb: Any) -> str:
    name = make_table(ddb, range_key=("sk", "B"))
    for sk in [b"\x00", b"\x00\x01", b"\x01", b"\x01\x02", b"\x7f", b"\x80", b"\xff\x00"]:
        ddb.put_item(TableName=name, Item={"pk": S("p"), "sk": B(sk), "v": N(str(sk[0]))})
    return name


@pytest.mark.parametrize("condition,values,expected", [
    ("begins_with(sk, :a)", {":a": B(b"\x01")}, [b"\x01", b"\x01\x02"]),
    ("begins_with(sk, :a)", {":a": B(b"\x00")}, [b"\x00", b"\x00\x01"]),
    ("sk BETWEEN :a AND :b", {":a": B(b"\x01"), ":b": B(b"\x80")}, [b"\x01", b"\x01\x02", b"\x7f",
                                                                     b"\x80"]),
    ("sk > :a", {":a": B(b"\x7f")}, [b"\x80", b"\xff\x00"]),
    ("sk < :a", {":a": B(b"\x00\x01")}, [b"\x00"]),
    (":a <= sk", {":a": B(b"\x80")}, [b"\x80", b"\xff\x00"]),
    (":a > sk", {":a": B(b"\x00\x01")}, [b"\x00"]),
    ("sk = :a", {":a": B(b"\xff\x00")}, [b"\xff\x00"]),
])
def test_key_condition_on_binary_sort_key(ddb: Any, binary_table: str, condition: str,
                                          values: dict, expected: list) -> None:
    for text in (f"pk = :p AND {condition}", f"{condition} AND pk = :p",
                 f"(pk = :p) AND ({condition})", f":p = pk and {condition}"):
        items = ddb.query(TableName=binary_table, KeyConditionExpression=text,
                          ExpressionAttributeValues={**values, ":p": S("p")})["Items"]
        assert [item["sk"]["B"] for item in items] == expected, text


def test_key_condition_with_aliases_filter_and_projection(ddb: Any, binary_table: str) -> None:
    items = ddb.query(TableName=binary_table, KeyConditionExpression="#h = :p AND #r >= :a",
                      FilterExpression="#v < :x", ProjectionExpression="#v",
                      ExpressionAttributeNames={"#h": "pk", "#r": "sk", "#v": "v"},
                      ExpressionAttributeValues={":p": S("p"), ":a": B(b"\x01"),
                                                 ":x": N("128")})["Items"]
    assert items == [{"v": N("1")}, {"v": N("1")}, {"v": N("127")}]


# -- errors -----------------------------------------------------------------------------------
SET_MARKER = {"UpdateExpression": "SET marker = :marker"}
MARKER = {":marker": S("changed")}
BAD_CONDITION = [
    # (condition expression, values, message)
    ("n = = :v", {":v": N("1")}, 'Invalid ConditionExpression: Syntax error; token: "="*'),
    ("n = :v AND", {":v": N("1")}, 'Invalid ConditionExpression: Syntax error; token: "<EOF>"*'),
    ("(n = :v", {":v": N("1")}, 'Invalid ConditionExpression: Syntax error; token: "<EOF>"*'),
    ("n = :v)", {":v": N("1")}, 'Invalid ConditionExpression: Syntax error; token: ")"*'),
    ("n BETWEEN :v", {":v": N("1")}, "Invalid ConditionExpression: Syntax error; token: *"),
    ("n IN ()", {}, 'Invalid ConditionExpression: Syntax error; token: ")"*'),
    ("n = :v extra", {":v": N("1")}, 'Invalid ConditionExpression: Syntax error; token: "extra"*'),
    ("n $ :v", {":v": N("1")}, 'Invalid ConditionExpression: Syntax error; token: "$"*'),
    ("n", {}, 'Invalid ConditionExpression: Syntax error; token: "<EOF>"*'),
    ("l[x] = :v", {":v": N("1")}, 'Invalid ConditionExpression: Syntax error; token: "x"*'),
    ("l[-1] = :v", {":v": N("1")}, 'Invalid ConditionExpression: Syntax error; token: "-"*'),
    ("NOT", {}, 'Invalid ConditionExpression: Syntax error; token: "<EOF>"*'),
    ("", {}, "Invalid ConditionExpression: The expression can not be empty;"),
    ("#x = :v", {":v": N("1")}, "Invalid ConditionExpression: An expression attribute name used "
     "in the document path is not defined; attribute name: #x"),
    ("n = :nope", {}, "Invalid ConditionExpression: An expression attribute value used in "
     "expression is not defined; attribute value: :nope"),
    ("status = :v", {":v": N("1")}, "Invalid ConditionExpression: Attribute name is a reserved "
     "keyword; reserved keyword: status"),
    ("m.Size = :v", {":v": N("1")}, "Invalid ConditionExpression: Attribute name is a reserved "
     "keyword; reserved keyword: Size"),
    ("foo(n)", {}, "Invalid ConditionExpression: Invalid function name; function: foo"),
    ("attribute_exists(n, s)", {}, "Invalid ConditionExpression: Incorrect number of operands for "
     "operator or function; operator or function: attribute_exists, number of operands: 2"),
    ("begins_with(s)", {}, "Invalid ConditionExpression: Incorrect number of operands for "
     "operator or function; operator or function: begins_with, number of operands: 1"),
    ("attribute_exists(:v)", {":v": S("n")}, "Invalid ConditionExpression: Operator or function "
     "requires a document path; operator or function: attribute_exists"),
    ("((n = :v))", {":v": N("42")}, "Invalid ConditionExpression: The expression has redundant "
     "parentheses;"),
    ("size(s)", {}, "Invalid ConditionExpression: The function is not allowed to be used this way "
     "in an expression; function: size"),
    ("attribute_exists(s) = :v", {":v": {"BOOL": True}},
     "Invalid ConditionExpression: The function is not allowed*"),
    ("if_not_exists(n, :v) = :v", {":v": N("1")},
     "Invalid ConditionExpression: The function is not allowed*"),
    ("attribute_type(n, :v)", {":v": S("STRING")}, "Invalid ConditionExpression: Invalid "
     "attribute type name found; type: STRING, valid types: {B,NULL,SS,BOOL,L,BS,N,NS,S,M}"),
    ("attribute_type(n, :v)", {":v": N("1")}, "Invalid ConditionExpression: Incorrect operand "
     "type for operator or function; operator or function: attribute_type, operand type: *"),
    ("begins_with(s, :v)", {":v": N("1")}, "Invalid ConditionExpression: Incorrect operand type "
     "for operator or function; operator or function: begins_with, operand type: *"),
    ("n BETWEEN :a AND :b", {":a": N("5"), ":b": N("1")}, "Invalid ConditionExpression: The "
     "BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower "
     "bound operand: AttributeValue: {N:5}, upper bound operand: AttributeValue: {N:1}"),
    ("n IN (" + ", ".join(":v" for _ in range(101)) + ")", {":v": N("1")},
     "Invalid ConditionExpression: The IN operator is provided with too many operands; number "
     "of operands: 101"),
    ("n = :v OR " * 410 + "n = :v", {":v": N("1")},
     "Invalid ConditionExpression: Expression size has exceeded the maximum allowed size*"),
]


def _rejected(raw: Any, table: str, call: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ClientError) as info:
        getattr(raw, call)(TableName=table, **kwargs)
    response = info.value.response
    assert response["Error"]["Code"] == "ValidationException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    if message.endswith("*"):
        assert response["Error"]["Message"].startswith(message[:-1])
    else:
        assert response["Error"]["Message"] == message
    stored = raw.get_item(TableName=table, Key=ERR_KEY, ConsistentRead=True)["Item"]
    assert canon(stored) == canon(ERR_ITEM)


@pytest.mark.parametrize("expression,values,message", BAD_CONDITION)
def test_condition_errors(raw: Any, table: str, expression: str, values: dict,
                          message: str) -> None:
    kwargs = {"Key": ERR_KEY, "ConditionExpression": expression, **SET_MARKER,
              "ExpressionAttributeValues": {**MARKER, **values}, **names_for(expression)}
    _rejected(raw, table, "update_item", kwargs, message)
    put = {"Item": {**ERR_ITEM, "marker": S("changed")}, "ConditionExpression": expression,
           **values_arg(values), **names_for(expression)}
    _rejected(raw, table, "put_item", put, message)


# The text DynamoDB uses for a put of 39 digits; assumed the same for arithmetic results.
OVERFLOW = "Number overflow. Attempting to store a number with magnitude larger than supported range"
BAD_UPDATE = [
    # (update expression, values, message)
    ("SET n = n +", {}, 'Invalid UpdateExpression: Syntax error; token: "<EOF>"*'),
    ("SET", {}, 'Invalid UpdateExpression: Syntax error; token: "<EOF>"*'),
    ("SET a = :v,", {":v": N("1")}, 'Invalid UpdateExpression: Syntax error; token: "<EOF>"*'),
    ("SET a :v", {":v": N("1")}, 'Invalid UpdateExpression: Syntax error; token: ":v"*'),
    ("REMOVE a = :v", {":v": N("1")}, 'Invalid UpdateExpression: Syntax error; token: "="*'),
    ("ADD n", {}, 'Invalid UpdateExpression: Syntax error; token: "<EOF>"*'),
    ("ADD n n", {}, 'Invalid UpdateExpression: Syntax error; token: "n"*'),
    ("UPSERT a = :v", {":v": N("1")}, 'Invalid UpdateExpression: Syntax error; token: "UPSERT"*'),
    ("SET a = :v + :v + :v", {":v": N("1")}, 'Invalid UpdateExpression: Syntax error; token: "+"*'),
    ("SET a = :v SET b = :v", {":v": N("1")},
     'Invalid UpdateExpression: The "SET" section can only be used once in an update expression;'),
    ("REMOVE a REMOVE b", {},
     'Invalid UpdateExpression: The "REMOVE" section can only be used once in an update '
     'expression;'),
    ("", {}, "Invalid UpdateExpression: The expression can not be empty;"),
    ("SET a = :v " + "REMOVE " + ", ".join(f"x{i}" for i in range(1000)), {":v": N("1")},
     "Invalid UpdateExpression: Expression size has exceeded the maximum allowed size*"),
    ("SET #x = :v", {":v": N("1")}, "Invalid UpdateExpression: An expression attribute name used "
     "in the document path is not defined; attribute name: #x"),
    ("SET a = :nope", {}, "Invalid UpdateExpression: An expression attribute value used in "
     "expression is not defined; attribute value: :nope"),
    ("SET data = :v", {":v": N("1")}, "Invalid UpdateExpression: Attribute name is a reserved "
     "keyword; reserved keyword: data"),
    ("REMOVE m.comment", {}, "Invalid UpdateExpression: Attribute name is a reserved keyword; "
     "reserved keyword: comment"),
    ("SET a = foo(n)", {}, "Invalid UpdateExpression: Invalid function name; function: foo"),
    ("SET a = list_append(:v)", {":v": L()}, "Invalid UpdateExpression: Incorrect number of "
     "operands for operator or function; operator or function: list_append, number of operands: 1"),
    ("SET a = size(s)", {}, "Invalid UpdateExpression: The function is not allowed*"),
    ("SET a = attribute_exists(s)", {}, "Invalid UpdateExpression: The function is not allowed*"),
    ("SET a = if_not_exists(:v, :v)", {":v": N("1")},
     "Invalid UpdateExpression: Operator or function requires a document path; operator or "
     "function: if_not_exists"),
    # overlapping and conflicting paths
    ("SET n = :v, n = :w", {":v": N("1"), ":w": N("2")}, "Invalid UpdateExpression: Two document "
     "paths overlap with each other; must remove or rewrite one of these paths; path one: [n], "
     "path two: [n]"),
    ("SET m.a = :v REMOVE m", {":v": N("1")}, "Invalid UpdateExpression: Two document paths "
     "overlap with each other; must remove or rewrite one of these paths; path one: [m, a], "
     "path two: [m]"),
    ("SET l[1] = :v REMOVE l[1]", {":v": N("1")}, "Invalid UpdateExpression: Two document paths "
     "overlap with each other; must remove or rewrite one of these paths; path one: [l, [1]], "
     "path two: [l, [1]]"),
    ("ADD ss :s DELETE ss :s", {":s": {"SS": ["a"]}}, "Invalid UpdateExpression: Two document "
     "paths overlap with each other; must remove or rewrite one of these paths; path one: [ss], "
     "path two: [ss]"),
    ("SET l[0] = :v REMOVE l.x", {":v": N("1")}, "Invalid UpdateExpression: Two document paths "
     "conflict with each other; must remove or rewrite one of these paths; path one: [l, [0]], "
     "path two: [l, x]"),
    ("SET #s = :v, s = :v", {":v": N("1")}, "Invalid UpdateExpression: Two document paths overlap "
     "with each other; must remove or rewrite one of these paths; path one: [s], path two: [s]"),
    # static operand types
    ("SET n = n + :v", {":v": S("1")}, "Invalid UpdateExpression: Incorrect operand type for "
     "operator or function; operator or function: +, operand type: *"),
    ("SET n = :v - n", {":v": L()}, "Invalid UpdateExpression: Incorrect operand type for "
     "operator or function; operator or function: -, operand type: *"),
    ("SET l = list_append(l, :v)", {":v": S("x")}, "Invalid UpdateExpression: Incorrect operand "
     "type for operator or function; operator or function: list_append, operand type: *"),
    ("ADD x :v", {":v": S("x")}, "Invalid UpdateExpression: Incorrect operand type for operator "
     "or function; operator*"),
    ("ADD x :v", {":v": L(N("1"))}, "Invalid UpdateExpression: Incorrect operand type for "
     "operator or function; operator*"),
    ("DELETE ss :v", {":v": S("a")}, "Invalid UpdateExpression: Incorrect operand type for "
     "operator or function; operator*"),
    ("DELETE n :v", {":v": N("1")}, "Invalid UpdateExpression: Incorrect operand type for "
     "operator or function; operator*"),
    # runtime: absent operands, wrong types, invalid document paths
    ("SET x = absent", {}, "The provided expression refers to an attribute that does not exist "
     "in the item"),
    ("SET x = absent + :v", {":v": N("1")}, "The provided expression refers to an attribute that "
     "does not exist in the item"),
    ("SET x = list_append(absent, :v)", {":v": L()}, "The provided expression refers to an "
     "attribute that does not exist in the item"),
    ("SET x = m.nope", {}, "The provided expression refers to an attribute that does not exist in "
     "the item"),
    ("SET x = l[9]", {}, "The provided expression refers to an attribute that does not exist in "
     "the item"),
    ("SET a = :v, x = absent", {":v": N("1")}, "The provided expression refers to an attribute "
     "that does not exist in the item"),
    ("SET s = s + :v", {":v": N("1")}, "An operand in the update expression has an incorrect data "
     "type"),
    ("SET x = l + :v", {":v": N("1")}, "An operand in the update expression has an incorrect data "
     "type"),
    ("SET l = list_append(s, l)", {}, "An operand in the update expression has an incorrect data "
     "type"),
    ("ADD s :v", {":v": N("1")}, "An operand in the update expression has an incorrect data type"),
    ("ADD ss :v", {":v": {"NS": ["1"]}}, "An operand in the update expression has an incorrect "
     "data type"),
    ("ADD n :v", {":v": {"NS": ["1"]}}, "An operand in the update expression has an incorrect "
     "data type"),
    ("DELETE s :v", {":v": {"SS": ["h"]}}, "An operand in the update expression has an incorrect "
     "data type"),
    ("DELETE ns :v", {":v": {"SS": ["1"]}}, "An operand in the update expression has an incorrect "
     "data type"),
    ("SET nope.x = :v", {":v": N("1")}, "The document path provided in the update expression is "
     "invalid for update"),
    ("SET s.x = :v", {":v": N("1")}, "The document path provided in the update expression is "
     "invalid for update"),
    ("SET n[0] = :v", {":v": N("1")}, "The document path provided in the update expression is "
     "invalid for update"),
    ("SET m[0] = :v", {":v": N("1")}, "The document path provided in the update expression is "
     "invalid for update"),
    ("SET l.x = :v", {":v": N("1")}, "The document path provided in the update expression is "
     "invalid for update"),
    ("SET m.nope.deep = :v", {":v": N("1")}, "The document path provided in the update expression "
     "is invalid for update"),
    ("SET l[9].k = :v", {":v": N("1")}, "The document path provided in the update expression is "
     "invalid for update"),
    ("SET a = :v, s.x = :v", {":v": N("1")}, "The document path provided in the update expression "
     "is invalid for update"),
    # REMOVE below an attribute the item does not have (issue 11)
    ("REMOVE m.nope.x", {}, "The document path provided in the update expression is invalid for "
     "update"),
    ("REMOVE absent[0]", {}, "The document path provided in the update expression is invalid for "
     "update"),
    # 38-digit precision and range overflow in arithmetic: DynamoDB calls both an overflow
    ("SET nines = nines + :v", {":v": N("0.1")}, OVERFLOW),
    ("ADD nines :v", {":v": N("0.1")}, OVERFLOW),
    ("SET big = big + :v", {":v": N("0.5")}, OVERFLOW),
    ("SET huge = huge + huge", {}, "Number overflow. Attempting to store a number with magnitude "
     "larger than supported range"),
    ("ADD huge :v", {":v": N(HUGE)}, "Number overflow. Attempting to store a number with "
     "magnitude larger than supported range"),
    ("SET x = :v - huge", {":v": N("-" + HUGE)}, "Number overflow. Attempting to store a number "
     "with magnitude larger than supported range"),
]


@pytest.mark.parametrize("expression,values,message", BAD_UPDATE, ids=[c[0][:60] for c in BAD_UPDATE])
def test_update_errors(raw: Any, table: str, expression: str, values: dict, message: str) -> None:
    kwargs = {"Key": ERR_KEY, "UpdateExpression": expression, **values_arg(values),
              **names_for(expression)}
    _rejected(raw, table, "update_item", kwargs, message)


BAD_PROJECTION = [
    ("s, s", "Invalid ProjectionExpression: Two document paths overlap with each other; must remove "
     "or rewrite one of these paths; path one: [s], path two: [s]"),
    ("m.a, m", "Invalid ProjectionExpression: Two document paths overlap with each other; must "
     "remove or rewrite one of these paths; path one: [m, a], path two: [m]"),
    ("l[0], l.x", "Invalid ProjectionExpression: Two document paths conflict with each other; must "
     "remove or rewrite one of these paths; path one: [l, [0]], path two: [l, x]"),
    ("a-b", 'Invalid ProjectionExpression: Syntax error; token: "-", near: "a-b"'),
    ("s,", 'Invalid ProjectionExpression: Syntax error; token: "<EOF>"*'),
    (":v", 'Invalid ProjectionExpression: Syntax error; token: ":v"*'),
    ("size(s)", 'Invalid ProjectionExpression: Syntax error; token: "("*'),
    ("#x", "Invalid ProjectionExpression: An expression attribute name used in the document path "
     "is not defined; attribute name: #x"),
    ("s, count", "Invalid ProjectionExpression: Attribute name is a reserved keyword; reserved "
     "keyword: count"),
    ("", "Invalid ProjectionExpression: The expression can not be empty;"),
]


@pytest.mark.parametrize("expression,message", BAD_PROJECTION)
def test_projection_errors(raw: Any, table: str, expression: str, message: str) -> None:
    _rejected(raw, table, "get_item", {"Key": ERR_KEY, "ProjectionExpression": expression},
              message)


BAD_QUERY = [
    # (key condition, filter, values, message)
    ("pk = :p OR sk = :s", None, {}, "Invalid KeyConditionExpression: Invalid operator used in "
     "KeyConditionExpression: OR"),
    ("pk = :p AND sk <> :s", None, {}, "Invalid KeyConditionExpression: Invalid operator used in "
     "KeyConditionExpression: <>"),
    ("pk = :p AND contains(sk, :s)", None, {}, "Invalid KeyConditionExpression: Invalid operator "
     "used in KeyConditionExpression: contains"),
    ("pk = :p AND sk IN (:s)", None, {}, "Invalid KeyConditionExpression: Invalid operator used "
     "in KeyConditionExpression: IN"),
    ("pk = :p AND attribute_exists(sk)", None, {}, "Invalid KeyConditionExpression: Invalid "
     "operator used in KeyConditionExpression: attribute_exists"),
    ("pk < :p", None, {}, "Query key condition not supported"),
    ("pk = :p AND pk = :p", None, {}, "Invalid KeyConditionExpression: KeyConditionExpressions "
     "must only contain one condition per key"),
    ("pk = :p AND sk BETWEEN :z AND :s", None, {":z": S("zzz")}, "Invalid KeyConditionExpression: "
     "The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower "
     "bound operand: AttributeValue: {S:zzz}, upper bound operand: AttributeValue: {S:err}"),
    ("pk = :p AND extra = :s", None, {}, "Query condition missed key schema element: sk"),
    ("pk = :p AND sk = :s AND extra = :s", None, {}, "Conditions can be of length 1 or 2 only"),
    ("pk = :p", "n = = :s", {}, 'Invalid FilterExpression: Syntax error; token: "="*'),
    ("pk = :p", "#x = :s", {}, "Invalid FilterExpression: An expression attribute name used in "
     "the document path is not defined; attribute name: #x"),
    ("pk = :p", "zone = :s", {}, "Invalid FilterExpression: Attribute name is a reserved keyword; "
     "reserved keyword: zone"),
    ("pk = :p", "begins_with(s, :n)", {":n": N("1")}, "Invalid FilterExpression: Incorrect operand "
     "type for operator or function; operator or function: begins_with, operand type: *"),
]


@pytest.mark.parametrize("key_condition,filter_expression,extra,message", BAD_QUERY)
def test_query_errors(raw: Any, table: str, key_condition: str, filter_expression: str | None,
                      extra: dict, message: str) -> None:
    values = {":p": S("err"), ":s": S("err"), **extra}
    used = f"{key_condition} {filter_expression or ''}"
    values = {k: v for k, v in values.items() if k in used}
    kwargs = {"KeyConditionExpression": key_condition, "ExpressionAttributeValues": values}
    if filter_expression:
        kwargs["FilterExpression"] = filter_expression
    _rejected(raw, table, "query", kwargs, message)


def test_scan_filter_errors(raw: Any, table: str) -> None:
    _rejected(raw, table, "scan", {"FilterExpression": "n BETWEEN :b AND :a",
                                   "ExpressionAttributeValues": {":a": N("1"), ":b": N("2")}},
              "Invalid FilterExpression: The BETWEEN operator requires upper bound to be greater "
              "than or equal to lower bound; lower bound operand: AttributeValue: {N:2}, upper "
              "bound operand: AttributeValue: {N:1}")
    _rejected(raw, table, "scan", {"FilterExpression": "size(s)"}, "Invalid FilterExpression: The "
              "function is not allowed to be used this way in an expression; function: size")


@pytest.mark.parametrize("names,values,message", [
    ({"#n": "name", "#u": "u"}, {":v": S("x")}, "Value provided in ExpressionAttributeNames unused "
     "in expressions: keys: {#u}"),
    ({"#n": "name"}, {":v": S("x"), ":u": S("y")}, "Value provided in "
     "ExpressionAttributeValues unused in expressions: keys: {:u}"),
    ({"#n": "name", "#u": "u", "#w": "w"}, {":v": S("x")}, "Value provided in "
     "ExpressionAttributeNames unused in expressions: keys: {*"),  # order of several: unknown
    ({"#n": "name", "bad": "x"}, {":v": S("x")},
     'ExpressionAttributeNames contains invalid key: Syntax error; key: "bad"'),
    ({"#n": "name"}, {":v": S("x"), "v": S("x")},
     'ExpressionAttributeValues contains invalid key: Syntax error; key: "v"'),
    ({"#n": "name"}, {":v": {"SS": []}}, "ExpressionAttributeValues contains invalid value: One or "
     "more parameter values were invalid: An string set  may not be empty for key :v"),
])
def test_unused_names_and_values(raw: Any, table: str, names: dict, values: dict,
                                 message: str) -> None:
    _rejected(raw, table, "update_item", {"Key": ERR_KEY, "UpdateExpression": "SET #n = :v",
                                          "ExpressionAttributeNames": names,
                                          "ExpressionAttributeValues": values}, message)


@pytest.mark.parametrize("call,kwargs,message", [
    ("get_item", {"ProjectionExpression": "a" * 4097},
     "Invalid ProjectionExpression: Expression size has exceeded the maximum allowed size*"),
    ("update_item", {"UpdateExpression": "REMOVE " + "a" * 4090},
     "Invalid UpdateExpression: Expression size has exceeded the maximum allowed size*"),
    ("get_item", {"ProjectionExpression": ".".join(["a"] * 33)}, "Invalid ProjectionExpression: "
     "The document path has too many nesting levels; nesting levels: 33"),
    ("put_item", {"Item": {**ERR_ITEM, "marker": S("x")},
                  "ConditionExpression": "ATTRIBUTE_EXISTS(n)"},
     "Invalid ConditionExpression: Invalid function name; function: ATTRIBUTE_EXISTS"),
    ("update_item", {"UpdateExpression": "REMOVE pk"}, "One or more parameter values were "
     "invalid: Cannot update attribute pk. This attribute is part of the key"),
    ("update_item", {"UpdateExpression": "ADD #k :v", "ExpressionAttributeNames": {"#k": "sk"},
                     "ExpressionAttributeValues": {":v": {"SS": ["x"]}}},
     "One or more parameter values were invalid: Cannot update attribute sk. This attribute is "
     "part of the key"),
])
def test_limits_and_key_attributes(raw: Any, table: str, call: str, kwargs: dict,
                                   message: str) -> None:
    target = {} if "Item" in kwargs else {"Key": ERR_KEY}
    _rejected(raw, table, call, {**target, **kwargs}, message)


def test_limits_are_inclusive(ddb: Any, table: str) -> None:
    """Exactly 4 KB of expression, 32 nesting levels and 100 IN operands are accepted."""
    assert ddb.get_item(TableName=table, Key=SEED_KEY, ProjectionExpression="a" * 4096)["Item"] == {}
    deep = ".".join(["m"] * 32)
    assert ddb.get_item(TableName=table, Key=SEED_KEY, ProjectionExpression=deep)["Item"] == {}
    choices = ", ".join(f":v{i}" for i in range(100))
    assert _condition_holds(ddb, table, f"n IN ({choices})", {"ExpressionAttributeValues": {
        f":v{i}": N(str(i)) for i in range(100)}})


def test_names_and_values_shared_across_expressions(ddb: Any, table: str) -> None:
    """One alias map serves all expressions of a request; use in any one counts."""
    key = {"pk": S("upd"), "sk": S("shared")}
    ddb.put_item(TableName=table, Item={**key, "name": S("a"), "n": N("1")})
    result = ddb.update_item(TableName=table, Key=key, UpdateExpression="SET n = n + :one",
                             ConditionExpression="#n = :a AND n = :one",
                             ExpressionAttributeNames={"#n": "name"},
                             ExpressionAttributeValues={":a": S("a"), ":one": N("1")},
                             ReturnValues="UPDATED_NEW")
    assert result["Attributes"] == {"n": N("2")}


@pytest.mark.parametrize("filter_expression", ["sk = :s", "begins_with(#k, :s)", "attribute_exists(pk)"])
def test_query_filter_on_key_attribute_is_rejected(raw: Any, table: str,
                                                   filter_expression: str) -> None:
    key_name = "pk" if "pk" in filter_expression else "sk"
    extra = {"ExpressionAttributeNames": {"#k": "sk"}} if "#k" in filter_expression else {}
    values = {":p": S("seed")} | ({":s": S("s")} if ":s" in filter_expression else {})
    _rejected(raw, table, "query", {"KeyConditionExpression": "pk = :p",
                                    "FilterExpression": filter_expression,
                                    "ExpressionAttributeValues": values, **extra},
              "Filter Expression can only contain non-primary key attributes: Primary key "
              f"attribute: {key_name}")


# -- legacy parameters ---------------------------------------------------------------------
LEGACY_EXPECTED = [
    ({"n": {"ComparisonOperator": "EQ", "AttributeValueList": [N("42.0")]}}, None, True),
    ({"n": {"ComparisonOperator": "NE", "AttributeValueList": [N("1")]}}, None, True),
    ({"missing": {"ComparisonOperator": "NE", "AttributeValueList": [N("1")]}}, None, True),
    ({"n": {"ComparisonOperator": "LT", "AttributeValueList": [N("50")]}}, None, True),
    ({"n": {"ComparisonOperator": "LE", "AttributeValueList": [N("42")]}}, None, True),
    ({"n": {"ComparisonOperator": "GT", "AttributeValueList": [N("42")]}}, None, False),
    ({"neg": {"ComparisonOperator": "GE", "AttributeValueList": [N("-7.5")]}}, None, True),
    ({"s": {"ComparisonOperator": "GT", "AttributeValueList": [S("hell")]}}, None, True),
    ({"hi": {"ComparisonOperator": "GT", "AttributeValueList": [B(b"\x7f")]}}, None, True),
    ({"n": {"ComparisonOperator": "LT", "AttributeValueList": [S("50")]}}, None, False),
    ({"s": {"ComparisonOperator": "NOT_NULL"}}, None, True),
    ({"missing": {"ComparisonOperator": "NOT_NULL"}}, None, False),
    ({"missing": {"ComparisonOperator": "NULL"}}, None, True),
    ({"z": {"ComparisonOperator": "NULL"}}, None, False),
    ({"s": {"ComparisonOperator": "CONTAINS", "AttributeValueList": [S("ell")]}}, None, True),
    ({"ss": {"ComparisonOperator": "CONTAINS", "AttributeValueList": [S("a")]}}, None, True),
    ({"ns": {"ComparisonOperator": "CONTAINS", "AttributeValueList": [N("2.5")]}}, None, True),
    ({"bs": {"ComparisonOperator": "CONTAINS", "AttributeValueList": [B(b"\x02")]}}, None, True),
    ({"b": {"ComparisonOperator": "CONTAINS", "AttributeValueList": [B(b"\x01\x02")]}}, None, True),
    ({"l": {"ComparisonOperator": "CONTAINS", "AttributeValueList": [S("x")]}}, None, True),
    ({"s": {"ComparisonOperator": "NOT_CONTAINS", "AttributeValueList": [S("zz")]}}, None, True),
    ({"ss": {"ComparisonOperator": "NOT_CONTAINS", "AttributeValueList": [S("a")]}}, None, False),
    ({"s": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [S("he")]}}, None, True),
    ({"b": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [B(b"\x00")]}}, None, True),
    ({"n": {"ComparisonOperator": "IN", "AttributeValueList": [N("1"), N("42")]}}, None, True),
    ({"s": {"ComparisonOperator": "IN", "AttributeValueList": [S("x"), S("y")]}}, None, False),
    ({"n": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [N("40"), N("42")]}}, None, True),
    ({"n": {"Value": N("42")}}, None, True),
    ({"n": {"Value": N("42"), "Exists": True}}, None, True),
    ({"n": {"Value": N("41")}}, None, False),
    ({"missing": {"Exists": False}}, None, True),
    ({"s": {"Exists": False}}, None, False),
    ({"n": {"Value": N("42")}, "s": {"Exists": False}}, None, False),
    ({"n": {"Value": N("42")}, "s": {"Exists": False}}, "AND", False),
    ({"n": {"Value": N("42")}, "s": {"Exists": False}}, "OR", True),
    ({"n": {"Value": N("1")}, "s": {"Exists": False}}, "OR", False),
]


@pytest.mark.parametrize("expected,operator,holds", LEGACY_EXPECTED)
def test_legacy_expected(ddb: Any, table: str, expected: dict, operator: str | None,
                         holds: bool) -> None:
    extra = {"ConditionalOperator": operator} if operator else {}
    try:
        ddb.put_item(TableName=table, Item=SEED, Expected=expected, **extra)
        held = True
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ConditionalCheckFailedException"
        held = False
    assert held is holds
    spec = next(iter(expected.values()))
    if "ComparisonOperator" in spec:  # the same operators as a ScanFilter
        scan = ddb.scan(TableName=table, ScanFilter={
            **expected, "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [S("seed")]}})
        assert scan["Count"] == int(holds)


BAD_LEGACY = [
    ("put_item", {"Expected": {"n": {"ComparisonOperator": "EQ", "AttributeValueList": []}}},
     "One or more parameter values were invalid: Invalid number of argument(s) for the EQ "
     "ComparisonOperator"),
    ("put_item", {"Expected": {"n": {"ComparisonOperator": "NULL",
                                     "AttributeValueList": [N("1")]}}},
     "One or more parameter values were invalid: Invalid number of argument(s) for the NULL "
     "ComparisonOperator"),
    ("put_item", {"Expected": {"n": {"ComparisonOperator": "LT",
                                     "AttributeValueList": [{"BOOL": True}]}}},
     "One or more parameter values were invalid: ComparisonOperator LT is not valid for BOOL "
     "AttributeValue type"),
    ("put_item", {"Expected": {"n": {"ComparisonOperator": "BETWEEN",
                                     "AttributeValueList": [N("1"), S("2")]}}},
     "One or more parameter values were invalid: AttributeValues inside AttributeValueList must "
     "be of same type"),
    ("put_item", {"Expected": {"n": {"ComparisonOperator": "BETWEEN",
                                     "AttributeValueList": [N("5"), N("1")]}}},
     "The BETWEEN condition was provided a range where the lower bound is greater than the upper "
     "bound"),
    ("put_item", {"Expected": {"n": {"Exists": False, "Value": N("1")}}},
     "One or more parameter values were invalid: Value cannot be used when Exists is false for "
     "Attribute: n"),
    ("put_item", {"Expected": {"n": {"Exists": True}}},
     "One or more parameter values were invalid: *"),
    ("put_item", {"Expected": {"n": {"ComparisonOperator": "EQ", "Exists": True,
                                     "AttributeValueList": [N("1")]}}},
     "One or more parameter values were invalid: *"),
    ("update_item", {"AttributeUpdates": {"s": {"Action": "ADD", "Value": S("x")}}},
     "One or more parameter values were invalid: ADD action is not supported for the type S"),
    ("update_item", {"AttributeUpdates": {"n": {"Action": "DELETE", "Value": N("1")}}},
     "One or more parameter values were invalid: DELETE action with value is not supported for "
     "the type N"),
    ("update_item", {"AttributeUpdates": {"n": {"Action": "PUT"}}}, "One or more parameter values "
     "were invalid: Only DELETE action is allowed when no attribute value is specified"),
    ("update_item", {"AttributeUpdates": {"s": {"Action": "ADD", "Value": N("1")}}},
     "One or more parameter values were invalid: Type mismatch for attribute to update"),
    ("update_item", {"AttributeUpdates": {"nines": {"Action": "ADD", "Value": N("0.1")}}},
     OVERFLOW),
    ("get_item", {"AttributesToGet": ["s", "s"]},
     "One or more parameter values were invalid: Duplicate value in attribute name: s"),
    ("update_item", {"AttributeUpdates": {"a": {"Action": "PUT", "Value": S("x")}},
                     "UpdateExpression": "SET b = :v", "ExpressionAttributeValues": {":v": S("x")}},
     "Can not use both expression and non-expression parameters in the same request: "
     "Non-expression parameters: {AttributeUpdates} Expression parameters: {UpdateExpression}"),
    ("update_item", {"AttributeUpdates": {"a": {"Action": "PUT", "Value": S("x")}},
                     "ExpressionAttributeNames": {"#a": "a"}},
     "ExpressionAttributeNames can only be specified when using expressions: UpdateExpression "
     "and ConditionExpression are null"),
]


@pytest.mark.parametrize("call,kwargs,message", BAD_LEGACY)
def test_legacy_errors(raw: Any, table: str, call: str, kwargs: dict, message: str) -> None:
    target = {"Item": {**ERR_ITEM, "marker": S("x")}} if call == "put_item" else {"Key": ERR_KEY}
    _rejected(raw, table, call, {**target, **kwargs}, message)


def test_legacy_attribute_updates(ddb: Any, table: str) -> None:
    key = {"pk": S("upd"), "sk": S("legacy")}
    ddb.put_item(TableName=table, Item={**key, "n": N("1"), "ss": {"SS": ["a", "b"]},
                                        "gone": S("x"), "keep": S("k"), "ns": {"NS": ["1"]}})
    ddb.update_item(TableName=table, Key=key, AttributeUpdates={
        "n": {"Action": "ADD", "Value": N("-0.5")},
        "fresh": {"Action": "ADD", "Value": N("2")},
        "ss": {"Action": "DELETE", "Value": {"SS": ["a"]}},
        "ns": {"Action": "DELETE", "Value": {"NS": ["1.0"]}},
        "gone": {"Action": "DELETE"},
        "newset": {"Action": "ADD", "Value": {"BS": [b"\x01"]}},
        "put": {"Value": M(x=N("1"))}})
    item = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert canon(item) == canon({**key, "n": N("0.5"), "fresh": N("2"), "ss": {"SS": ["b"]},
                                 "keep": S("k"), "newset": {"BS": [b"\x01"]},
                                 "put": M(x=N("1"))})


def test_legacy_key_conditions_filters_and_attributes_to_get(ddb: Any, binary_table: str) -> None:
    eq_p = {"ComparisonOperator": "EQ", "AttributeValueList": [S("p")]}
    items = ddb.query(TableName=binary_table, KeyConditions={
        "pk": eq_p, "sk": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [B(b"\x00")]}},
        AttributesToGet=["sk"])["Items"]
    assert items == [{"sk": B(b"\x00")}, {"sk": B(b"\x00\x01")}]
    items = ddb.query(TableName=binary_table, KeyConditions={"pk": eq_p}, ConditionalOperator="OR",
                      QueryFilter={"v": {"ComparisonOperator": "EQ", "AttributeValueList": [N("0")]},
                                   "absent": {"ComparisonOperator": "NULL"}},
                      AttributesToGet=["v"])["Items"]
    everything = ddb.query(TableName=binary_table, KeyConditions={"pk": eq_p})["Items"]
    assert len(items) == len(everything) and {"v": N("0")} in items  # NULL on a missing attribute
    # QueryFilter may not name key attributes (Developer Guide, legacy QueryFilter).
    with pytest.raises(ClientError) as info:
        ddb.query(TableName=binary_table, KeyConditions={"pk": eq_p},
                  QueryFilter={"sk": {"ComparisonOperator": "EQ", "AttributeValueList": [B(b"\x80")]}})
    assert info.value.response["Error"]["Message"] == (
        "QueryFilter can only contain non-key attributes: Primary key attribute: sk")
    items = ddb.scan(TableName=binary_table, ScanFilter={
        "v": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [N("1"), N("127")]}},
        AttributesToGet=["sk", "absent"])["Items"]
    assert sorted(item["sk"]["B"] for item in items) == [b"\x01", b"\x01\x02", b"\x7f"]
    assert all(set(item) == {"sk"} for item in items)


@pytest.mark.parametrize("key_conditions,message", [
    ({"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [S("p")]},
      "sk": {"ComparisonOperator": "NE", "AttributeValueList": [B(b"\x00")]}},
     "Attempted conditional constraint is not an indexable operation"),
    ({"pk": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [S("p")]}},
     "Query key condition not supported"),
    ({"sk": {"ComparisonOperator": "EQ", "AttributeValueList": [B(b"\x00")]}},
     "Query condition missed key schema element: pk"),
])
def test_legacy_key_condition_errors(raw: Any, binary_table: str, key_conditions: dict,
                                     message: str) -> None:
    with pytest.raises(ClientError) as info:
        raw.query(TableName=binary_table, KeyConditions=key_conditions)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert info.value.response["Error"]["Message"] == message
