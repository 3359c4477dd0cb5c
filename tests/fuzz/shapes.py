"""Hypothesis strategies for DynamoDB requests, generated from botocore's
service model (the API reference that ships with boto3).

`request_for(operation)` walks the operation's input shape: structures become
dictionaries (required members usually present, optional ones sometimes),
lists and maps stay small, strings honour enums and length bounds most of
the time and break them some of the time, numbers stray past their ranges.
Shapes that carry DynamoDB meaning get domain strategies instead of noise,
so requests reach deep into the server rather than stopping at the first
type check: table names come from the fuzz tables (or are near misses),
attribute values are real DynamoDB JSON, expressions come from a small
grammar of the expression language with random damage.
"""
from __future__ import annotations

import base64
import string
from functools import lru_cache
from typing import Any

import botocore.session
from hypothesis import strategies as st

# The fuzz tables every run creates (harness.py); names close to them too.
TABLE_NAMES = ("fz-hash", "fz-range", "fz-index")
INDEX_NAMES = ("by_a", "by_s", "nope", "ab", "a b", "by_a" * 70)
ATTRIBUTE_NAMES = ("pk", "sk", "a", "b", "c", "n", "l", "m", "s", "name", "_x", "")
LIST_SIZE_MAX = 4
DEPTH_MAX = 4            # structures nested deeper than this stop adding optional members
VALUE_DEPTH_MAX = 3      # M / L nesting of generated AttributeValues


@lru_cache(maxsize=1)
def service_model() -> Any:
    return botocore.session.get_session().get_service_model("dynamodb")


def operation_names() -> list[str]:
    return sorted(service_model().operation_names)


# ----- leaves ------------------------------------------------------------------

@lru_cache(maxsize=None)
def table_names() -> st.SearchStrategy[str]:
    near = st.sampled_from(TABLE_NAMES).map(lambda name: name + "x")
    return st.one_of(st.sampled_from(TABLE_NAMES), st.sampled_from(TABLE_NAMES),
                     near, st.text(max_size=6), st.just("a" * 256))


@lru_cache(maxsize=None)
def table_arns() -> st.SearchStrategy[str]:
    return st.one_of(
        table_names().map(lambda name: f"arn:aws:dynamodb:us-east-1:000000000000:table/{name}"),
        table_names().map(lambda name: f"arn:aws:dynamodb:us-east-1:123456789012:table/{name}"),
        st.text(max_size=20), st.just("arn:"), st.just("notanarn"))


@lru_cache(maxsize=None)
def attribute_names() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(ATTRIBUTE_NAMES), st.text(max_size=5),
                     st.just("x" * 65536))


@lru_cache(maxsize=None)
def number_texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-10**6, 10**6).map(str),
        st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
        st.sampled_from(["1e50", "1e126", "-1e-131", "0", "-0", "1" * 39, ".5", "5.",
                         "1e", "abc", "", " 1", "NaN", "Infinity", "1_000", "0x10",
                         "9.9999999999999999999999999999999999999E+125"]),
        st.text(alphabet="0123456789.eE+- ", max_size=12))


@lru_cache(maxsize=None)
def base64_texts() -> st.SearchStrategy[str]:
    return st.one_of(st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()),
                     st.sampled_from(["", "!!", "YQ", "YQ==", "Y===", "AAAA"]),
                     st.text(max_size=6))


@lru_cache(maxsize=None)
def attribute_values(depth: int = 0) -> st.SearchStrategy[dict]:
    scalars = [
        st.builds(lambda s: {"S": s}, st.one_of(st.sampled_from(["k", "x", "", "a" * 10]),
                                                 st.text(max_size=8))),
        st.builds(lambda n: {"N": n}, number_texts()),
        st.builds(lambda b: {"B": b}, base64_texts()),
        st.builds(lambda b: {"BOOL": b}, st.booleans()),
        st.builds(lambda b: {"NULL": b}, st.booleans()),
        st.builds(lambda m: {"SS": m}, st.lists(st.text(max_size=3), max_size=3)),
        st.builds(lambda m: {"NS": m}, st.lists(number_texts(), max_size=3)),
        st.builds(lambda m: {"BS": m}, st.lists(base64_texts(), max_size=3)),
        st.just({}), st.just({"S": "x", "N": "1"}), st.just({"Q": "x"}),
    ]
    if depth >= VALUE_DEPTH_MAX:
        return st.one_of(scalars)
    inner = st.deferred(lambda: attribute_values(depth + 1))
    containers = [
        st.builds(lambda m: {"M": m}, st.dictionaries(attribute_names(), inner, max_size=3)),
        st.builds(lambda items: {"L": items}, st.lists(inner, max_size=3)),
    ]
    return st.one_of(scalars + containers)


@lru_cache(maxsize=None)
def keys() -> st.SearchStrategy[dict]:
    """Mostly well-formed keys of the fuzz tables, sometimes anything."""
    pk = st.one_of(st.builds(lambda s: {"S": s}, st.sampled_from(["k0", "k1", "k2", ""])),
                   attribute_values())
    sk = st.one_of(st.builds(lambda n: {"N": n}, st.sampled_from(["1", "2", "3.5"])),
                   attribute_values())
    return st.one_of(
        st.fixed_dictionaries({"pk": pk}),
        st.fixed_dictionaries({"pk": pk, "sk": sk}),
        st.dictionaries(attribute_names(), attribute_values(), max_size=3))


@lru_cache(maxsize=None)
def items() -> st.SearchStrategy[dict]:
    return st.builds(lambda key, rest: {**rest, **key}, keys(),
                     st.dictionaries(attribute_names(), attribute_values(), max_size=4))


# ----- expressions ---------------------------------------------------------------

PATHS = ("a", "b", "c.d", "l[0]", "m.n[2].o", "#n", "#n.a", "pk", "sk", "name", "_x", "a[99999999999999]")
VALUES = (":v", ":n", ":s", ":l", ":x")
FUNCTIONS = ("attribute_exists", "attribute_not_exists", "attribute_type", "begins_with",
             "contains", "size", "if_not_exists", "list_append", "f", "_f")
COMPARATORS = ("=", "<>", "<", "<=", ">", ">=")


@lru_cache(maxsize=None)
def operands() -> st.SearchStrategy[str]:
    call = st.builds(lambda name, args: f"{name}({', '.join(args)})", st.sampled_from(FUNCTIONS),
                     st.lists(st.sampled_from(PATHS + VALUES), min_size=1, max_size=3))
    return st.one_of(st.sampled_from(PATHS), st.sampled_from(VALUES), call)


@lru_cache(maxsize=None)
def conditions() -> st.SearchStrategy[str]:
    comparison = st.one_of(
        st.builds(lambda l, op, r: f"{l} {op} {r}", operands(), st.sampled_from(COMPARATORS),
                  operands()),
        st.builds(lambda x, lo, hi: f"{x} BETWEEN {lo} AND {hi}", operands(), operands(),
                  operands()),
        st.builds(lambda x, cs: f"{x} IN ({', '.join(cs)})", operands(),
                  st.lists(operands(), min_size=1, max_size=4)),
        operands())
    return st.recursive(comparison, lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} AND {b}", inner, inner),
        st.builds(lambda a, b: f"{a} OR {b}", inner, inner),
        st.builds(lambda a: f"NOT {a}", inner),
        st.builds(lambda a: f"({a})", inner)), max_leaves=6)


@lru_cache(maxsize=None)
def updates() -> st.SearchStrategy[str]:
    value = st.one_of(operands(), st.builds(lambda a, op, b: f"{a} {op} {b}", operands(),
                                            st.sampled_from("+-"), operands()))
    set_clause = st.lists(st.builds(lambda p, v: f"{p} = {v}", st.sampled_from(PATHS), value),
                          min_size=1, max_size=3).map(lambda xs: "SET " + ", ".join(xs))
    remove = st.lists(st.sampled_from(PATHS), min_size=1, max_size=3).map(
        lambda xs: "REMOVE " + ", ".join(xs))
    add = st.builds(lambda p, v: f"ADD {p} {v}", st.sampled_from(PATHS), st.sampled_from(VALUES))
    delete = st.builds(lambda p, v: f"DELETE {p} {v}", st.sampled_from(PATHS),
                       st.sampled_from(VALUES))
    return st.lists(st.one_of(set_clause, remove, add, delete), min_size=1, max_size=3).map(
        " ".join)


@lru_cache(maxsize=None)
def projections() -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(PATHS), min_size=1, max_size=4).map(", ".join)


@lru_cache(maxsize=None)
def damaged(texts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Expressions, sometimes cut, spliced with noise, or replaced by a pathological one."""
    noise = st.text(alphabet=string.printable, max_size=4)
    pathological = st.sampled_from([
        "(" * 4095, "((a = :v))", "not " * 400 + "a = :v", "a < " + "f(" * 1000 + "b" + ")" * 1000,
        " OR ".join(["a = :v"] * 151), "a" * 4097, "", "   ", "SET " + "a." * 40 + "b = :v"])
    return st.one_of(
        texts, texts, texts,
        st.builds(lambda t, cut: t[:cut], texts, st.integers(0, 30)),
        st.builds(lambda t, at, n: t[:at] + n + t[at:], texts, st.integers(0, 30), noise),
        pathological)


@lru_cache(maxsize=None)
def expression_names() -> st.SearchStrategy[dict]:
    return st.dictionaries(st.sampled_from(["#n", "#m", "n", "#", "#a-b"]), attribute_names(),
                           max_size=2)


@lru_cache(maxsize=None)
def expression_values() -> st.SearchStrategy[dict]:
    return st.dictionaries(st.sampled_from(list(VALUES) + ["v", ":"]), attribute_values(),
                           max_size=3)


# Shape name -> domain strategy. Everything else follows the shape itself.
def _domain_strategies() -> dict[str, st.SearchStrategy]:
    return {
        "TableName": table_names(), "TableArn": table_arns(), "ResourceArnString": table_arns(),
        "TableNameOrArn": table_names(),
        "AttributeValue": attribute_values(), "AttributeName": attribute_names(),
        "KeySchemaAttributeName": attribute_names(),
        "Key": keys(), "PutItemInputAttributeMap": items(), "AttributeMap": items(),
        "ConditionExpression": damaged(conditions()), "KeyExpression": damaged(conditions()),
        "UpdateExpression": damaged(updates()), "ProjectionExpression": damaged(projections()),
        "ExpressionAttributeNameMap": expression_names(),
        "ExpressionAttributeValueMap": expression_values(),
        "NumberAttributeValue": number_texts(), "BinaryAttributeValue": base64_texts(),
        "IndexName": st.one_of(st.sampled_from(INDEX_NAMES), st.text(max_size=5)),
    }


# ----- generic shapes ------------------------------------------------------------

def _length_bounds(shape: Any, cap: int) -> tuple[int, int]:
    low = shape.metadata.get("min", 0)
    high = shape.metadata.get("max", cap)
    return low, max(low, min(high, cap))


def _strings(shape: Any) -> st.SearchStrategy[str]:
    enum = shape.enum
    if enum:
        return st.one_of(st.sampled_from(enum), st.sampled_from(enum),
                         st.sampled_from(enum).map(str.lower), st.text(max_size=4))
    low, high = _length_bounds(shape, 12)
    inside = st.text(min_size=low, max_size=high)
    outside = st.one_of(st.just(""), st.just("x" * (shape.metadata.get("max", 300) + 1)))
    return st.one_of(inside, inside, inside, outside)


def _integers(shape: Any) -> st.SearchStrategy[int]:
    low = shape.metadata.get("min")
    high = shape.metadata.get("max")
    inside = st.integers(low if low is not None else -5,
                         high if high is not None else (low or 0) + 100)
    edges = st.sampled_from([v for v in (low, high, -1, 0, 2**31, 2**63, -(2**63))
                             if v is not None] + [(low or 0) - 1, (high or 0) + 1])
    return st.one_of(inside, inside, edges)


def _structures(shape: Any, depth: int) -> st.SearchStrategy[dict]:
    required = set(shape.required_members)
    members = {name: st.deferred(lambda m=member: strategy_for(m, depth + 1))
               for name, member in shape.members.items()}
    fixed = {name: members[name] for name in members if name in required}
    optional = {} if depth > DEPTH_MAX else \
        {name: members[name] for name in members if name not in required}
    return st.fixed_dictionaries(fixed, optional=optional)


def strategy_for(shape: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    domain = _DOMAIN.get(shape.name)
    if domain is not None:
        return domain
    kind = shape.type_name
    if kind == "structure":
        return _structures(shape, depth)
    if kind == "list":
        low, high = _length_bounds(shape, LIST_SIZE_MAX)
        return st.lists(strategy_for(shape.member, depth + 1), min_size=low,
                        max_size=high if depth < DEPTH_MAX else low)
    if kind == "map":
        low, high = _length_bounds(shape, 3)
        return st.dictionaries(strategy_for(shape.key, depth + 1),
                               strategy_for(shape.value, depth + 1), min_size=low,
                               max_size=high if depth < DEPTH_MAX else low)
    if kind == "string":
        return _strings(shape)
    if kind in ("integer", "long"):
        return _integers(shape)
    if kind == "boolean":
        return st.booleans()
    if kind == "double":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "timestamp":
        return st.one_of(st.integers(0, 2**32), st.floats(0, 2e9))
    if kind == "blob":
        return base64_texts()
    raise AssertionError(f"unknown shape type {kind} of {shape.name}")


_DOMAIN = _domain_strategies()


@lru_cache(maxsize=None)
def request_for(operation: str) -> st.SearchStrategy[dict]:
    """A request body for one operation of the model, as DynamoDB JSON."""
    shape = service_model().operation_model(operation).input_shape
    if shape is None:
        return st.just({})
    return strategy_for(shape)


# What triplica implements gets most of the cases; every other operation of
# the model still gets some (each must be refused cleanly).
IMPLEMENTED = ("BatchGetItem", "BatchWriteItem", "CreateTable", "DeleteItem", "DeleteTable",
               "DescribeEndpoints", "DescribeLimits", "DescribeTable", "GetItem", "ListTables",
               "ListTagsOfResource", "PutItem", "Query", "Scan", "TagResource", "UntagResource",
               "UpdateItem", "UpdateTable")


@lru_cache(maxsize=1)
def any_request() -> st.SearchStrategy[tuple[str, dict]]:
    operation = st.one_of(st.sampled_from(IMPLEMENTED), st.sampled_from(IMPLEMENTED),
                          st.sampled_from(IMPLEMENTED), st.sampled_from(operation_names()))
    return operation.flatmap(
        lambda name: st.tuples(st.just(name), request_for(name)))
