"""Global secondary indexes' index tables through boto3 against a real server process:
made with their table and deleted with it, never visible as tables (ListTables, names,
ARNs), described with their table, kept across a restart; every Query/Scan validation
error of a global index, and empty reads with their capacity. Reads of propagated
entries: test_global_index_queries.py."""
from __future__ import annotations

import glob
import os
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import unique_name
from tests.integration.server import ServerProcess

S, N = "S", "N"
INVALID = "One or more parameter values were invalid: "
PATTERN = ("1 validation error detected: Value '{name}' at 'tableName' failed to satisfy "
           "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")


def _schema(*pairs: str) -> list[dict[str, str]]:
    return [{"AttributeName": pairs[i], "KeyType": pairs[i + 1]} for i in range(0, len(pairs), 2)]


def create_gsi_table(client: Any, name: str | None = None) -> str:
    name = name or unique_name("gsi")
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=_schema("pk", "HASH", "sk", "RANGE"),
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in (
            ("pk", S), ("sk", S), ("g", S), ("h", N), ("a", S), ("b", N), ("c", S), ("d", N))],
        GlobalSecondaryIndexes=[
            {"IndexName": "by_g", "KeySchema": _schema("g", "HASH", "h", "RANGE"),
             "Projection": {"ProjectionType": "KEYS_ONLY"}},
            {"IndexName": "multi", "KeySchema": _schema("a", "HASH", "b", "HASH", "c", "RANGE",
                                                        "d", "RANGE"),
             "Projection": {"ProjectionType": "ALL"}}])
    return name


@pytest.fixture(scope="module")
def table(ddb: Any) -> str:
    return create_gsi_table(ddb)


def error_of(call: Any, **request: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**request)
    error = info.value.response["Error"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return error["Code"], error["Message"]


def _tables_on_disk(data_dir: str) -> set[str]:
    return {os.path.basename(path) for path in glob.glob(os.path.join(data_dir, "node-*",
                                                                       "tables", "*"))}


def test_index_tables_come_and_go_with_their_table(tmp_path: Any) -> None:
    server = ServerProcess(str(tmp_path)).start()
    try:
        client = server.client()
        before = _tables_on_disk(str(tmp_path))
        name = create_gsi_table(client, "orders")
        created = _tables_on_disk(str(tmp_path)) - before
        table_id = client.describe_table(TableName=name)["Table"]["TableId"]
        assert table_id in created and len(created) == 3   # the table and two index tables
        assert client.list_tables()["TableNames"] == ["orders"]
        assert client.list_tables(ExclusiveStartTableName="orders")["TableNames"] == []
        # Kept across kill -9 and restart: the index tables' partitions open again.
        server.kill()
        server = ServerProcess(str(tmp_path), port=server.port).start()
        client = server.client()
        assert _tables_on_disk(str(tmp_path)) - before == created
        assert client.query(TableName=name, IndexName="by_g", KeyConditionExpression="g = :g",
                            ExpressionAttributeValues={":g": {S: "x"}})["Count"] == 0
        client.delete_table(TableName=name)
        assert _tables_on_disk(str(tmp_path)) == before
        assert client.list_tables()["TableNames"] == []
        # The same name and indexes again: new index tables, empty.
        create_gsi_table(client, "orders")
        assert len(_tables_on_disk(str(tmp_path)) - before) == 3
        assert client.scan(TableName="orders", IndexName="multi")["Items"] == []
    finally:
        server.stop()


def test_an_index_table_is_no_table_of_the_users(raw: Any, table: str) -> None:
    hidden = f"{table}/by_g"
    key = {"g": {S: "x"}, "h": {N: "1"}}
    for call, request in ((raw.get_item, {"Key": key}), (raw.put_item, {"Item": key}),
                          (raw.delete_item, {"Key": key}), (raw.scan, {}),
                          (raw.describe_table, {}), (raw.delete_table, {}),
                          (raw.query, {"KeyConditionExpression": "g = :g",
                                       "ExpressionAttributeValues": {":g": {S: "x"}}})):
        assert error_of(call, TableName=hidden, **request) == (
            "ValidationException", PATTERN.format(name=hidden))
    arn = raw.describe_table(TableName=table)["Table"]["TableArn"] + "/by_g"
    assert error_of(raw.list_tags_of_resource, ResourceArn=arn) == (
        "ResourceNotFoundException", f"Requested resource not found: ResourcArn: {arn} not found")
    assert hidden not in raw.list_tables(Limit=100)["TableNames"]


def test_describe_lists_each_index_with_its_index_tables_counts(ddb: Any, table: str) -> None:
    described = ddb.describe_table(TableName=table)["Table"]
    arn = described["TableArn"]
    indexes = {index["IndexName"]: index for index in described["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"by_g", "multi"}
    for name, index in indexes.items():
        assert index["IndexStatus"] in ("CREATING", "ACTIVE") and index["Backfilling"] is False
        assert (index["ItemCount"], index["IndexSizeBytes"]) == (0, 0)
        assert index["IndexArn"] == f"{arn}/index/{name}"
    assert indexes["multi"]["KeySchema"] == _schema("a", "HASH", "b", "HASH", "c", "RANGE",
                                                    "d", "RANGE")


def test_empty_reads_and_their_capacity(ddb: Any, table: str) -> None:
    answer = ddb.query(TableName=table, IndexName="multi", ReturnConsumedCapacity="INDEXES",
                       KeyConditionExpression="a = :a AND b = :b AND c = :c AND d > :d",
                       ExpressionAttributeValues={":a": {S: "x"}, ":b": {N: "1"}, ":c": {S: "c"},
                                                  ":d": {N: "0"}})
    assert (answer["Items"], answer["Count"], answer["ScannedCount"]) == ([], 0, 0)
    assert answer["ConsumedCapacity"] == {
        "TableName": table, "CapacityUnits": 0.5, "ReadCapacityUnits": 0.5,
        "Table": {"CapacityUnits": 0.0, "ReadCapacityUnits": 0.0},
        "GlobalSecondaryIndexes": {"multi": {"CapacityUnits": 0.5, "ReadCapacityUnits": 0.5}}}
    scanned = ddb.scan(TableName=table, IndexName="by_g", Segment=0, TotalSegments=3,
                       ReturnConsumedCapacity="TOTAL")
    assert scanned["Count"] == 0 and "LastEvaluatedKey" not in scanned
    assert scanned["ConsumedCapacity"]["CapacityUnits"] == 0.5
    assert ddb.query(TableName=table, IndexName="by_g", Select="COUNT",
                     KeyConditions={"g": {"ComparisonOperator": "EQ",
                                          "AttributeValueList": [{S: "x"}]}})["Count"] == 0


MULTI = {":a": {S: "x"}, ":b": {N: "1"}, ":c": {S: "c"}, ":d": {N: "0"}, ":s": {S: "s"}}
START = {"pk": {S: "p"}, "sk": {S: "s"}, "g": {S: "x"}, "h": {N: "1"}}
BAD_START = "The provided starting key is invalid: The provided key element does not match the schema"


@pytest.mark.parametrize("index, condition, message", [
    ("multi", "a = :a", "Query condition missed key schema element: b"),
    ("multi", "a = :a AND b >= :b", "Query key condition not supported"),
    ("multi", "a = :a AND b = :b AND d = :d", "Query condition missed key schema element: c"),
    ("multi", "a = :a AND b = :b AND c < :c AND d = :d",
     "Query key condition not supported: only the last sort key attribute the condition names "
     "may use <; c is followed by d"),
    ("multi", "a = :a AND b = :b AND c = :c AND c = :c",
     "Invalid KeyConditionExpression: KeyConditionExpressions must only contain one condition "
     "per key"),
    ("multi", "a = :b AND b = :b", INVALID + "Condition parameter type does not match schema type"),
    ("multi", "a = :a AND b = :b AND begins_with(d, :s)",
     "Query condition missed key schema element: c"),
    ("by_g", "h = :b", "Query condition missed key schema element: g"),
    ("by_g", "g = :a AND h = :s", INVALID + "Condition parameter type does not match schema type"),
    ("by_g", "g = :a AND begins_with(h, :b)", "Invalid KeyConditionExpression: Incorrect operand "
     "type for operator or function; operator or function: begins_with, operand type: NUMBER"),
    ("by_g", "g = :a OR h = :b", "Invalid KeyConditionExpression: Invalid operator used in "
     "KeyConditionExpression: OR"),
])
def test_key_condition_errors(ddb: Any, table: str, index: str, condition: str,
                              message: str) -> None:
    values = {name: value for name, value in MULTI.items() if name in condition}
    assert error_of(ddb.query, TableName=table, IndexName=index, KeyConditionExpression=condition,
                    ExpressionAttributeValues=values) == ("ValidationException", message)


@pytest.mark.parametrize("extra, message", [
    ({"ConsistentRead": True}, "Consistent reads are not supported on global secondary indexes"),
    ({"Select": "ALL_ATTRIBUTES"}, INVALID + "Select type ALL_ATTRIBUTES is not supported for "
     "global secondary index by_g because its projection type is not ALL"),
    ({"FilterExpression": "h > :h", "ExpressionAttributeValues": {":a": {S: "x"}, ":h": {N: "1"}}},
     "Filter Expression can only contain non-primary key attributes: Primary key attribute: h"),
    ({"ExclusiveStartKey": {"pk": {S: "p"}, "sk": {S: "s"}, "g": {S: "x"}}}, BAD_START),
    ({"ExclusiveStartKey": {**START, "h": {S: "1"}}}, BAD_START),
    ({"ExclusiveStartKey": {**START, "g": {S: "y"}}}, BAD_START),
    ({"ExclusiveStartKey": {**START, "extra": {S: "1"}}}, BAD_START),
    ({"Select": "SPECIFIC_ATTRIBUTES"}, INVALID + "Select type SPECIFIC_ATTRIBUTES requires "
     "AttributesToGet or ProjectionExpression"),
])
def test_query_request_errors(ddb: Any, table: str, extra: dict, message: str) -> None:
    request = {"KeyConditionExpression": "g = :a", "ExpressionAttributeValues": {":a": {S: "x"}},
               **extra}
    assert error_of(ddb.query, TableName=table, IndexName="by_g", **request) == (
        "ValidationException", message)


@pytest.mark.parametrize("extra, message", [
    ({"ConsistentRead": True}, "Consistent reads are not supported on global secondary indexes"),
    ({"IndexName": "by_g", "Select": "ALL_ATTRIBUTES"}, INVALID + "Select type ALL_ATTRIBUTES is "
     "not supported for global secondary index by_g because its projection type is not ALL"),
    ({"ExclusiveStartKey": {"pk": {S: "p"}, "sk": {S: "s"}, "a": {S: "x"}, "b": {N: "1"},
                            "c": {S: "c"}}}, BAD_START),
    ({"ExclusiveStartKey": {"pk": {S: "p"}, "sk": {S: "s"}, "a": {S: "x"}, "b": {N: "1"},
                            "c": {S: "c"}, "d": {N: "1"}}, "Segment": 0, "TotalSegments": 1000},
     "The provided Exclusive start key does not map to the provided segment"),
    ({"IndexName": "nope"}, "The table does not have the specified index: nope"),
    ({"Segment": 1}, "The TotalSegments parameter is required but was not present in the request "
     "when Segment parameter is present"),
])
def test_scan_request_errors(ddb: Any, table: str, extra: dict, message: str) -> None:
    request = {"IndexName": "multi", **extra}
    assert error_of(ddb.scan, TableName=table, **request) == ("ValidationException", message)
