"""Inputs that once crashed the server (issue 11, section 1): expression
parser limits for every expression parameter, and null batch entries.

Each answer is DynamoDB's error, HTTP 400, and the table is unchanged.
"""
from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration import raw_http
from tests.integration.conftest import make_table
from tests.integration.server import ServerProcess

VALUES = {":v": {"S": "x"}, ":n": {"N": "1"}}


def _nested_or(operators: int) -> str:
    """`a<b or (a<b or (...` with `operators` operators, cut at 4 KB, never closed."""
    text = ""
    while text.count("<") + text.count(" or ") < operators:
        text += "a<b or ("
    return text[:4096]


PAREN_SYNTAX = "(" * 4095
REDUNDANT = "(" * 2046 + "a<b" + ")" * 2046
MANY_OR = _nested_or(909)
MANY_NOT = "not " * 1000 + "a<b"
DEEP_FUNCTION = "a < " + "f(" * 1355 + "b" + ")" * 1355

CONDITION_CASES = [
    (PAREN_SYNTAX, 'Syntax error; token: "<EOF>", near: "("'),
    (REDUNDANT, "The expression has redundant parentheses;"),
    (MANY_OR, "The expression contains too many operators; operator count: 301"),
    (MANY_NOT, "The expression contains too many operators; operator count: 301"),
    (DEEP_FUNCTION, "Invalid function name; function: f"),
    ("((a<b))", "The expression has redundant parentheses;"),
    ("a<b AND ((b<a))", "The expression has redundant parentheses;"),
]


def test_the_long_inputs_fit_in_4_kb() -> None:
    for text in (PAREN_SYNTAX, REDUNDANT, MANY_OR, MANY_NOT, DEEP_FUNCTION):
        assert len(text.encode()) <= 4096
    assert MANY_OR.count("<") + MANY_OR.count(" or ") >= 909


@pytest.fixture(scope="module")
def table(ddb: Any) -> str:
    name = make_table(ddb, range_key=None)
    ddb.put_item(TableName=name, Item={"pk": {"S": "k"}, "a": {"N": "1"}, "b": {"N": "2"}})
    return name


def _reject(call: Any, message: str) -> None:
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response["Error"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Code"] == "ValidationException"
    assert error["Message"] == message


def _unchanged(ddb: Any, table: str) -> None:
    items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    assert items == [{"pk": {"S": "k"}, "a": {"N": "1"}, "b": {"N": "2"}}]


def _calls(ddb: Any, table: str, text: str) -> dict[str, Any]:
    """One call per parameter that takes a condition, with `text` in it."""
    key = {"pk": {"S": "k"}}
    return {
        "ConditionExpression": [
            lambda: ddb.put_item(TableName=table, Item={"pk": {"S": "k"}}, ConditionExpression=text),
            lambda: ddb.delete_item(TableName=table, Key=key, ConditionExpression=text),
            lambda: ddb.update_item(TableName=table, Key=key, UpdateExpression="SET c = :n",
                                    ExpressionAttributeValues={":n": {"N": "1"}},
                                    ConditionExpression=text),
        ],
        "FilterExpression": [
            lambda: ddb.scan(TableName=table, FilterExpression=text),
            lambda: ddb.query(TableName=table, KeyConditionExpression="pk = :v",
                              ExpressionAttributeValues={":v": {"S": "k"}}, FilterExpression=text),
        ],
        "KeyConditionExpression": [
            lambda: ddb.query(TableName=table, KeyConditionExpression=text),
        ],
    }


@pytest.mark.parametrize("text,detail", CONDITION_CASES,
                         ids=["parens", "redundant", "or909", "not1000", "functions", "double",
                              "double_right"])
def test_condition_limits_every_parameter(ddb: Any, table: str, text: str, detail: str) -> None:
    for kind, calls in _calls(ddb, table, text).items():
        for call in calls:
            _reject(call, f"Invalid {kind}: {detail}")
    _unchanged(ddb, table)


def test_299_operators_and_single_parentheses_are_fine(ddb: Any, table: str) -> None:
    text = " OR ".join(["a < b"] * 150)   # 150 comparisons + 149 ORs = 299 operators
    assert len(ddb.scan(TableName=table, FilterExpression=text)["Items"]) == 1
    text_300 = text + " OR a < b"
    with pytest.raises(ClientError):   # 301 operators
        ddb.scan(TableName=table, FilterExpression=text_300)
    found = ddb.scan(TableName=table, FilterExpression="(a < b) AND (NOT (b < a))")
    assert found["Count"] == 1
    ddb.scan(TableName=table, FilterExpression="((a < b) AND b > a) OR (a = b)")


@pytest.mark.parametrize("text,detail", [
    ("SET c = " + "list_append(" * 301 + "b, b" + ")" * 301,
     "The expression contains too many operators; operator count: 301"),
    ("SET c = " + "f(" * 1300 + "b" + ")" * 1300,
     "The expression contains too many operators; operator count: 301"),
    ("SET c = " + "(" * 3000, 'Syntax error; token: "(", near: "= (("'),
    ("SET _123 = :n", 'Syntax error; token: "_", near: "SET _123"'),
])
def test_update_expression_limits(ddb: Any, table: str, text: str, detail: str) -> None:
    values = {":n": {"N": "1"}} if ":n" in text else None
    kwargs = {"ExpressionAttributeValues": values} if values else {}
    _reject(lambda: ddb.update_item(TableName=table, Key={"pk": {"S": "k"}},
                                    UpdateExpression=text, **kwargs),
            f"Invalid UpdateExpression: {detail}")
    _unchanged(ddb, table)


@pytest.mark.parametrize("text", ["(" * 4000, "a" + ".a" * 2000, "a" + "[0]" * 1300,
                                  "f(" * 2000])
def test_projection_never_crashes(ddb: Any, table: str, text: str) -> None:
    with pytest.raises(ClientError) as info:
        ddb.get_item(TableName=table, Key={"pk": {"S": "k"}}, ProjectionExpression=text)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert info.value.response["Error"]["Message"].startswith("Invalid ProjectionExpression: ")


@pytest.mark.parametrize("operation,document", [
    ("BatchWriteItem", {"RequestItems": {"TABLE": None}}),
    ("BatchWriteItem", {"RequestItems": {"TABLE": [None]}}),
    ("BatchWriteItem", {"RequestItems": {"TABLE": [
        {"PutRequest": {"Item": {"pk": {"S": "new"}}}}, None]}}),
    ("BatchGetItem", {"RequestItems": {"TABLE": None}}),
    ("BatchGetItem", {"RequestItems": {"TABLE": {"Keys": [None]}}}),
    ("BatchGetItem", {"RequestItems": {"TABLE": {"Keys": [{"pk": {"S": "k"}}],
                                                 "AttributesToGet": [None]}}}),
], ids=["write-table-null", "write-request-null", "write-second-null", "get-table-null",
        "get-key-null", "get-attribute-null"])
def test_null_batch_entries(server: ServerProcess, ddb: Any, table: str, operation: str,
                            document: dict) -> None:
    items = document["RequestItems"]
    items[table] = items.pop("TABLE")
    reply = raw_http.call(server.port, operation, document)
    assert reply.status == 400, reply.body
    assert reply.error_type in ("ValidationException", "SerializationException"), reply.body
    _unchanged(ddb, table)


@pytest.mark.parametrize("condition,values,message", [
    ("pk = :p", {":p": {"S": "X" * 70000}}, "One or more parameter values were invalid: Size of "
     "hashkey has exceeded the maximum size limit of2048 bytes"),
    ("pk = :p AND sk BETWEEN :a AND :b", {":p": {"S": "k"}, ":a": {"S": "a"},
                                          ":b": {"S": "b" * 1025}}, None),
])
def test_query_key_values_beyond_key_sizes(ddb: Any, condition: str, values: dict,
                                           message: str | None) -> None:
    """Found by `make fuzz`: a key condition value larger than any key made a 500."""
    name = make_table(ddb)
    with pytest.raises(ClientError) as info:
        ddb.query(TableName=name, KeyConditionExpression=condition,
                  ExpressionAttributeValues=values)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert info.value.response["Error"]["Code"] == "ValidationException"
    if message is not None:
        assert info.value.response["Error"]["Message"] == message


@pytest.mark.parametrize("limit", [True, 1.5, "5", -2**70, 2**64, 2**63, 0, -1, {"n": 1}, [1]],
                         ids=["bool", "float", "string", "huge-negative", "beyond-uint64",
                              "beyond-long", "zero", "negative", "map", "list"])
def test_scan_limit_of_the_wrong_type(server: ServerProcess, table: str, limit: Any) -> None:
    """The router stitches Scan pages from its Limit: a Limit it could not use was
    dropped, and the Scan answered every item. It is the same error as Query's."""
    scan = raw_http.call(server.port, "Scan", {"TableName": table, "Limit": limit})
    query = raw_http.call(server.port, "Query", {
        "TableName": table, "Limit": limit, "KeyConditionExpression": "pk = :v",
        "ExpressionAttributeValues": {":v": {"S": "k"}}})
    assert scan.status == 400, scan.body
    assert query.status == 400, query.body
    assert scan.error_type == query.error_type
    if limit not in (0, -1):    # Query names the member 'Limit' in this message (issue 11)
        assert scan.message == query.message
