"""Query and Scan of global secondary indexes over their index tables' partitions.

The whole engine of `triplica serve` (one node, in the test's event loop):
CreateTable makes the index tables; their partitions are then filled
through their own replication groups' logs with the entries
engine/global_index_keys.py `GlobalIndexer.entries` gives for each item (what
propagation delivers), and the reads go through the API front, the router
(routing by the index hash over the index table's map) and the node's
handlers: single and multi-attribute keys, order, projections, Select,
filters, paging, the 1 MB page, parallel Scan, capacity, and every key
condition error.
"""
from __future__ import annotations

import asyncio
import inspect
from typing import Any, Iterator

import orjson
import pytest

from tests.unit.deployment_harness import request, started
from triplica.engine.global_index_keys import GlobalIndex, GlobalIndexer, index_table_name
from triplica.engine.item_images import encode_image
from triplica.errors import DynamoError
from triplica.hosting.serve import Deployment
from triplica.model.keys import encode_storage_key
from triplica.model.size import item_size_bytes

TABLE = "events"
INVALID = "One or more parameter values were invalid: "
MISMATCH = INVALID + "Condition parameter type does not match schema type"
NOT_SUPPORTED = "Query key condition not supported"
BAD_START = "The provided starting key is invalid: The provided key element does not match the schema"
BIG = "x" * 350_000   # three of these pass DynamoDB's 1 MB page


def _s(text: str) -> dict[str, str]:
    return {"S": text}


def _n(number: int) -> dict[str, str]:
    return {"N": str(number)}


def _schema(*pairs: str) -> list[dict[str, str]]:
    return [{"AttributeName": pairs[i], "KeyType": pairs[i + 1]} for i in range(0, len(pairs), 2)]


CREATE = {
    "TableName": TABLE, "BillingMode": "PROVISIONED",
    "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
    "KeySchema": _schema("pk", "HASH", "sk", "RANGE"),
    "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in (
        ("pk", "S"), ("sk", "S"), ("g", "S"), ("h", "N"), ("a", "S"), ("b", "N"), ("c", "S"),
        ("d", "N"), ("e", "S"))],
    "GlobalSecondaryIndexes": [
        # 9,000 read units: three index partitions, so routing by the index hash matters.
        {"IndexName": "by_g", "KeySchema": _schema("g", "HASH", "h", "RANGE"),
         "Projection": {"ProjectionType": "ALL"},
         "ProvisionedThroughput": {"ReadCapacityUnits": 9000, "WriteCapacityUnits": 1}},
        {"IndexName": "multi", "KeySchema": _schema("a", "HASH", "b", "HASH", "c", "RANGE",
                                                    "d", "RANGE", "e", "RANGE"),
         "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["x"]},
         "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}},
        {"IndexName": "by_g_keys", "KeySchema": _schema("g", "HASH"),
         "Projection": {"ProjectionType": "KEYS_ONLY"},
         "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}]}


def _items() -> list[dict[str, Any]]:
    items = []
    for i in range(30):   # g0..g2, h descending with i so index order differs from table order
        items.append({"pk": _s(f"p{i % 7}"), "sk": _s(f"s{i:02d}"), "g": _s(f"g{i % 3}"),
                      "h": _n(100 - i), "y": _s(f"y{i}")})
    items.append({"pk": _s("p0"), "sk": _s("tie-b"), "g": _s("g0"), "h": _n(100)})  # h tie
    items.append({"pk": _s("p0"), "sk": _s("tie-a"), "g": _s("g0"), "h": _n(100)})
    items.append({"pk": _s("p9"), "sk": _s("sparse"), "g": _s("g0")})  # no h: not in by_g
    for i in range(12):
        items.append({"pk": _s(f"m{i}"), "sk": _s("1"), "a": _s("A"), "b": _n(i % 2),
                      "c": _s(["cat", "car", "dog"][i % 3]), "d": _n(i), "e": _s(f"e{i % 4}"),
                      "x": _n(i), "z": _s("not projected")})
    items.append({"pk": _s("m-sparse"), "sk": _s("1"), "a": _s("A"), "b": _n(0), "c": _s("cat")})
    for i in range(4):
        items.append({"pk": _s(f"big{i}"), "sk": _s("1"), "g": _s("gbig"), "h": _n(i),
                      "blob": _s(BIG)})
    return items


async def _answer(deployment: Deployment, operation: str, body: dict[str, Any]) -> tuple[int, Any]:
    """(HTTP status, decoded body) as the HTTP front answers (it turns a DynamoError
    raised by the front into its status and body)."""
    assert deployment.app is not None
    try:
        result = deployment.app.handle(request(operation, body))
        status, payload, _ = await result if inspect.isawaitable(result) else result
    except DynamoError as error:
        return error.status, error.body()
    return status, orjson.loads(payload)


async def _fill(deployment: Deployment) -> None:
    """Each item's entries into its index tables, through their groups' logs."""
    [node] = deployment.nodes.values()
    info = node.db.tables[TABLE].info
    indexer = GlobalIndexer([GlobalIndex.of(index, ["pk", "sk"]) for index in info.global_indexes])
    for item in _items():
        key = encode_storage_key(item["pk"], item["sk"])
        for name, index_key, entry in indexer.entries(key, encode_image(item, item_size_bytes(item))):
            index_table = node.db.tables[index_table_name(TABLE, name)]
            partition = index_table.partition_for_hash(int.from_bytes(index_key[:8], "big"))
            await partition.propose([(index_key, entry)])


class Engine:
    """The deployment and the loop it runs in, shared by this module's tests."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deployment: Deployment) -> None:
        self.loop = loop
        self.deployment = deployment

    def send(self, operation: str, body: dict[str, Any]) -> tuple[int, Any]:
        return self.loop.run_until_complete(_answer(self.deployment, operation, body))

    def ok(self, operation: str, **body: Any) -> dict[str, Any]:
        status, answer = self.send(operation, {"TableName": TABLE, **body})
        assert status == 200, answer
        return answer

    def error(self, operation: str, **body: Any) -> tuple[str, str]:
        status, answer = self.send(operation, {"TableName": TABLE, **body})
        assert status == 400, answer
        return answer["__type"].rpartition("#")[2], answer["message"]

    def query(self, index: str, text: str, values: dict[str, Any], **body: Any) -> dict[str, Any]:
        return self.ok("Query", IndexName=index, KeyConditionExpression=text,
                       ExpressionAttributeValues=values, **body)

    def query_all(self, index: str, text: str, values: dict[str, Any],
                  **body: Any) -> tuple[list[dict[str, Any]], int]:
        """Every page's items, and the number of pages."""
        items, pages, start = [], 0, None
        while True:
            extra = dict(body, ExclusiveStartKey=start) if start else body
            answer = self.query(index, text, values, **extra)
            items += answer["Items"]
            pages += 1
            start = answer.get("LastEvaluatedKey")
            if start is None:
                return items, pages
            assert pages < 100


    def scan_all(self, **body: Any) -> list[dict[str, Any]]:
        """Every page of a Scan of by_g (table and index keys only)."""
        items: list[dict[str, Any]] = []
        start = None
        for _ in range(100):
            extra = dict(body, ExclusiveStartKey=start) if start else body
            answer = self.ok("Scan", IndexName="by_g", ProjectionExpression="pk, sk, g, h",
                             **extra)
            items += answer["Items"]
            start = answer.get("LastEvaluatedKey")
            if start is None:
                return items
        raise AssertionError("a Scan that does not end")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    loop = asyncio.new_event_loop()
    deployment = loop.run_until_complete(
        started(str(tmp_path_factory.mktemp("gsi")), nodes=1, replicas=1))
    try:
        status, answer = loop.run_until_complete(_answer(deployment, "CreateTable", CREATE))
        assert status == 200, answer
        assert not loop.run_until_complete(deployment.wait_ready(20.0))
        loop.run_until_complete(_fill(deployment))
        yield Engine(loop, deployment)
    finally:
        loop.run_until_complete(deployment.close())
        loop.close()


def _sks(items: list[dict[str, Any]]) -> list[str]:
    return [item["sk"]["S"] for item in items]


def _expected(g: str) -> list[dict[str, Any]]:
    """by_g's order for one g: h ascending, then the table key."""
    chosen = [item for item in _items() if item.get("g") == _s(g) and "h" in item]
    return sorted(chosen, key=lambda i: (int(i["h"]["N"]), i["pk"]["S"], i["sk"]["S"]))


def test_the_index_tables_are_partitioned_by_their_own_throughput(engine: Engine) -> None:
    [node] = engine.deployment.nodes.values()
    assert len(node.db.tables[index_table_name(TABLE, "by_g")].partitions) == 3
    assert len(node.db.tables[index_table_name(TABLE, "multi")].partitions) == 1
    # Every index partition got entries (the routing test below reads them all).
    assert all(p.stats()[0] > 0 for p in node.db.tables[index_table_name(TABLE, "by_g")].partitions)


def test_query_orders_by_the_index_sort_key_then_the_table_key(engine: Engine) -> None:
    for g in ("g0", "g1", "g2"):
        answer = engine.query("by_g", "g = :g", {":g": _s(g)})
        assert answer["Items"] == _expected(g)   # ALL: whole items
        assert answer["Count"] == answer["ScannedCount"] == len(_expected(g))
        backward = engine.query("by_g", "g = :g", {":g": _s(g)}, ScanIndexForward=False)
        assert backward["Items"] == _expected(g)[::-1]
    ties = [i for i in engine.query("by_g", "g = :g AND h = :h", {":g": _s("g0"),
                                                                    ":h": _n(100)})["Items"]]
    assert _sks(ties) == ["s00", "tie-a", "tie-b"]   # equal h: by table key
    assert engine.query("by_g", "g = :g", {":g": _s("nothing")})["Items"] == []


@pytest.mark.parametrize("condition, values, wanted", [
    ("h < :v", {":v": _n(80)}, lambda h: h < 80),
    ("h <= :v", {":v": _n(80)}, lambda h: h <= 80),
    ("h > :v", {":v": _n(80)}, lambda h: h > 80),
    ("h >= :v", {":v": _n(80)}, lambda h: h >= 80),
    ("h BETWEEN :v AND :w", {":v": _n(75), ":w": _n(90)}, lambda h: 75 <= h <= 90),
])
def test_sort_key_conditions(engine: Engine, condition: str, values: dict, wanted: Any) -> None:
    answer = engine.query("by_g", f"g = :g AND {condition}", {":g": _s("g1"), **values})
    assert answer["Items"] == [i for i in _expected("g1") if wanted(int(i["h"]["N"]))]


def test_paging_resumes_after_the_last_evaluated_key(engine: Engine) -> None:
    first = engine.query("by_g", "g = :g", {":g": _s("g0")}, Limit=4)
    assert first["LastEvaluatedKey"] == {name: first["Items"][-1][name]
                                         for name in ("pk", "sk", "g", "h")}
    for forward in (True, False):
        items, pages = engine.query_all("by_g", "g = :g", {":g": _s("g0")}, Limit=3,
                                        ScanIndexForward=forward)
        expected = _expected("g0") if forward else _expected("g0")[::-1]
        assert items == expected and pages == len(expected) // 3 + 1
    # Index entries of ~350 KB: a page ends once 1 MB was read.
    items, pages = engine.query_all("by_g", "g = :g", {":g": _s("gbig")})
    assert [i["h"] for i in items] == [_n(i) for i in range(4)] and pages == 2


def test_projections_and_select(engine: Engine) -> None:
    keys_only = engine.query("by_g_keys", "g = :g", {":g": _s("g2")})["Items"]
    assert keys_only and all(set(i) == {"pk", "sk", "g"} for i in keys_only)
    multi = engine.query("multi", "a = :a AND b = :b", {":a": _s("A"), ":b": _n(1)})["Items"]
    assert multi and all(set(i) == {"pk", "sk", "a", "b", "c", "d", "e", "x"} for i in multi)
    # SPECIFIC_ATTRIBUTES: an attribute the index does not project is simply absent.
    specific = engine.query("multi", "a = :a AND b = :b", {":a": _s("A"), ":b": _n(1)},
                            ProjectionExpression="x, z")["Items"]
    assert specific == [{"x": i["x"]} for i in multi]
    counted = engine.query("by_g", "g = :g", {":g": _s("g0")}, Select="COUNT")
    assert "Items" not in counted and counted["Count"] == len(_expected("g0"))
    projected = engine.query("by_g", "g = :g", {":g": _s("g0")},
                             Select="ALL_PROJECTED_ATTRIBUTES")
    all_attributes = engine.query("by_g", "g = :g", {":g": _s("g0")}, Select="ALL_ATTRIBUTES")
    assert projected["Items"] == all_attributes["Items"] == _expected("g0")
    assert engine.error("Query", IndexName="multi", KeyConditionExpression="a = :a AND b = :b",
                        ExpressionAttributeValues={":a": _s("A"), ":b": _n(1)},
                        Select="ALL_ATTRIBUTES") == (
        "ValidationException", INVALID + "Select type ALL_ATTRIBUTES is not supported for "
        "global secondary index multi because its projection type is not ALL")


def test_filters_apply_to_the_entries(engine: Engine) -> None:
    answer = engine.query("by_g", "g = :g", {":g": _s("g1"), ":y": _s("y4")},
                          FilterExpression="y = :y")
    assert _sks(answer["Items"]) == ["s04"] and answer["ScannedCount"] == len(_expected("g1"))
    # A table key attribute is not a key of the index: a filter may use it.
    answer = engine.query("by_g", "g = :g", {":g": _s("g1"), ":p": _s("p1")},
                          FilterExpression="pk = :p")
    assert answer["Items"] == [i for i in _expected("g1") if i["pk"] == _s("p1")]


def _multi(*, b: int = 0) -> list[dict[str, Any]]:
    chosen = [item for item in _items() if item.get("a") == _s("A") and item.get("b") == _n(b)
              and "d" in item]
    ordered = sorted(chosen, key=lambda i: (i["c"]["S"], int(i["d"]["N"]), i["e"]["S"],
                                            i["pk"]["S"]))
    return [{k: v for k, v in i.items() if k not in ("z",)} for i in ordered]


def test_multi_attribute_keys(engine: Engine) -> None:
    values = {":a": _s("A"), ":b": _n(0)}
    assert engine.query("multi", "a = :a AND b = :b", values)["Items"] == _multi()
    # The item without d and e is not in the index (sparse).
    assert all(i["pk"] != _s("m-sparse") for i in _multi())
    both = engine.query("multi", "b = :b AND a = :a AND c = :c", {**values, ":c": _s("cat")})
    assert both["Items"] == [i for i in _multi() if i["c"] == _s("cat")]
    ranged = engine.query("multi", "a = :a AND b = :b AND c = :c AND d > :d",
                          {**values, ":c": _s("car"), ":d": _n(4)})
    assert ranged["Items"] == [i for i in _multi() if i["c"] == _s("car")
                               and int(i["d"]["N"]) > 4]
    third = engine.query("multi", "a = :a AND b = :b AND c = :c AND d = :d AND e <= :e",
                         {**values, ":c": _s("dog"), ":d": _n(2), ":e": _s("e2")})
    assert third["Items"] == [i for i in _multi() if i["c"] == _s("dog") and i["d"] == _n(2)]
    prefix = engine.query("multi", "a = :a AND b = :b AND begins_with(c, :c)",
                          {**values, ":c": _s("ca")}, ScanIndexForward=False)
    assert prefix["Items"] == [i for i in _multi() if i["c"]["S"].startswith("ca")][::-1]
    legacy = engine.ok("Query", IndexName="multi", KeyConditions={
        "a": {"ComparisonOperator": "EQ", "AttributeValueList": [_s("A")]},
        "b": {"ComparisonOperator": "EQ", "AttributeValueList": [_n(0)]},
        "c": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [_s("do")]}})
    assert legacy["Items"] == [i for i in _multi() if i["c"] == _s("dog")]
    items, pages = engine.query_all("multi", "a = :a AND b = :b", values, Limit=2)
    assert items == _multi() and pages == len(_multi()) // 2 + 1
    first = engine.query("multi", "a = :a AND b = :b", values, Limit=1)
    assert set(first["LastEvaluatedKey"]) == {"pk", "sk", "a", "b", "c", "d", "e"}


MULTI_VALUES = {":a": _s("A"), ":b": _n(0), ":c": _s("cat"), ":d": _n(1)}


@pytest.mark.parametrize("index, condition, message", [
    ("multi", "a = :a", "Query condition missed key schema element: b"),
    ("multi", "a = :a AND b > :b", NOT_SUPPORTED),
    ("multi", "a = :a AND b = :b AND d = :d", "Query condition missed key schema element: c"),
    ("multi", "a = :a AND b = :b AND c > :c AND d = :d",
     "Query key condition not supported: only the last sort key attribute the condition names "
     "may use >; c is followed by d"),
    ("multi", "a = :a AND b = :b AND begins_with(c, :c) AND d = :d",
     "Query key condition not supported: only the last sort key attribute the condition names "
     "may use begins_with; c is followed by d"),
    ("multi", "a = :a AND b = :b AND y = :c", "Query condition missed key schema element: c"),
    ("multi", "a = :a AND b = :b AND a = :a",
     "Invalid KeyConditionExpression: KeyConditionExpressions must only contain one condition "
     "per key"),
    ("multi", "a = :b AND b = :b", MISMATCH),
    ("multi", "a = :a AND b = :b AND c = :d", MISMATCH),
    ("by_g", "h = :d", "Query condition missed key schema element: g"),
    ("by_g", "g = :a AND y = :d", "Query condition missed key schema element: h"),
    ("by_g", "g = :a AND h = :d AND h = :d", "Conditions can be of length 1 or 2 only"),
    ("by_g", "g = :b", MISMATCH),
    ("by_g_keys", "g = :a AND h = :d", NOT_SUPPORTED),
    ("by_g", "g <> :a", "Invalid KeyConditionExpression: Invalid operator used in "
     "KeyConditionExpression: <>"),
])
def test_key_condition_errors(engine: Engine, index: str, condition: str, message: str) -> None:
    used = {name: value for name, value in MULTI_VALUES.items() if name in condition}
    assert engine.error("Query", IndexName=index, KeyConditionExpression=condition,
                        ExpressionAttributeValues=used) == ("ValidationException", message)


@pytest.mark.parametrize("extra, message", [
    ({"ConsistentRead": True}, "Consistent reads are not supported on global secondary indexes"),
    ({"FilterExpression": "h > :g"}, "Filter Expression can only contain non-primary key "
     "attributes: Primary key attribute: h"),
    ({"FilterExpression": "g = :g"}, "Filter Expression can only contain non-primary key "
     "attributes: Primary key attribute: g"),
    ({"QueryFilter": {"h": {"ComparisonOperator": "NOT_NULL"}}, "KeyConditions": {
        "g": {"ComparisonOperator": "EQ", "AttributeValueList": [_s("g0")]}}},
     "QueryFilter can only contain non-key attributes: Primary key attribute: h"),
    ({"ExclusiveStartKey": {"pk": _s("p0"), "sk": _s("s00"), "g": _s("g0")}}, BAD_START),
    ({"ExclusiveStartKey": {"pk": _s("p0"), "sk": _s("s00"), "g": _s("g0"), "h": _s("1")}},
     BAD_START),
    ({"ExclusiveStartKey": {"pk": _s("p0"), "sk": _s("s00"), "g": _s("g1"), "h": _n(1)}},
     BAD_START),   # another index partition key than the query's
    ({"ExclusiveStartKey": {"pk": _s("p0"), "g": _s("g0"), "h": _n(1), "x": _n(1)}}, BAD_START),
    ({"IndexName": "nope"}, "The table does not have the specified index: nope"),
])
def test_request_errors(engine: Engine, extra: dict, message: str) -> None:
    body: dict[str, Any] = {"IndexName": "by_g"}
    if "KeyConditions" not in extra:
        body.update(KeyConditionExpression="g = :g", ExpressionAttributeValues={":g": _s("g0")})
    body.update(extra)
    assert engine.error("Query", **body) == ("ValidationException", message)


def test_scan_reads_every_index_partition(engine: Engine) -> None:
    everything = [i for g in ("g0", "g1", "g2", "gbig") for i in _expected(g)]
    whole = engine.ok("Scan", IndexName="by_g", ProjectionExpression="pk, sk")
    assert whole["Count"] < len(everything) and "LastEvaluatedKey" in whole   # 1 MB page
    key = lambda i: (i["pk"]["S"], i["sk"]["S"])  # noqa: E731
    assert sorted(map(key, engine.scan_all(Limit=5))) == sorted(map(key, everything))
    segments = [engine.scan_all(Segment=s, TotalSegments=4) for s in range(4)]
    assert sorted(key(i) for part in segments for i in part) == sorted(map(key, everything))
    assert sum(1 for part in segments if part) > 1
    keys_only = engine.ok("Scan", IndexName="by_g_keys", Select="COUNT")
    assert keys_only["Count"] == sum(1 for i in _items() if "g" in i)
    assert engine.error("Scan", IndexName="by_g", ConsistentRead=True)[1] == \
        "Consistent reads are not supported on global secondary indexes"


def test_reads_are_charged_to_the_index(engine: Engine) -> None:
    answer = engine.query("by_g_keys", "g = :g", {":g": _s("g0")},
                          ReturnConsumedCapacity="INDEXES")
    assert answer["ConsumedCapacity"] == {
        "TableName": TABLE, "CapacityUnits": 0.5, "ReadCapacityUnits": 0.5,
        "Table": {"CapacityUnits": 0.0, "ReadCapacityUnits": 0.0},
        "GlobalSecondaryIndexes": {"by_g_keys": {"CapacityUnits": 0.5, "ReadCapacityUnits": 0.5}}}
    total = engine.ok("Scan", IndexName="by_g_keys", ReturnConsumedCapacity="TOTAL")
    assert total["ConsumedCapacity"] == {"TableName": TABLE, "CapacityUnits": 0.5,
                                         "ReadCapacityUnits": 0.5}
    scanned = engine.ok("Scan", IndexName="by_g", ReturnConsumedCapacity="INDEXES", Limit=3)
    assert scanned["ConsumedCapacity"]["Table"]["CapacityUnits"] == 0.0
    assert set(scanned["ConsumedCapacity"]["GlobalSecondaryIndexes"]) == {"by_g"}


def test_describe_counts_the_index_tables_entries(engine: Engine) -> None:
    described = engine.ok("DescribeTable")["Table"]
    by_name = {index["IndexName"]: index for index in described["GlobalSecondaryIndexes"]}
    assert by_name["by_g"]["ItemCount"] == sum(len(_expected(g)) for g in ("g0", "g1", "g2", "gbig"))
    assert by_name["by_g"]["IndexSizeBytes"] > 4 * len(BIG)
    assert by_name["multi"]["ItemCount"] == 12 and by_name["by_g_keys"]["ItemCount"] == 37
    assert by_name["multi"]["ProvisionedThroughput"]["ReadCapacityUnits"] == 1
    assert {index["Backfilling"] for index in by_name.values()} == {False}
    assert described["ItemCount"] == 0   # the entries were put in the index tables only
    assert engine.send("ListTables", {})[1]["TableNames"] == [TABLE]
