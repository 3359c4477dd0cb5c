"""Global secondary indexes end to end through boto3: items written to the table appear
in the index (propagation from the base partitions' outboxes to the index tables'
partitions, docs/GLOBAL_INDEXES.md), then Query and Scan of the index: order,
projections, paging, parallel Scan, sparse items, updates and deletes moving entries,
and the index becoming ACTIVE; in `triplica serve` and in a 3-node cluster.

Entries are eventually consistent: each check waits (bounded) for the index to show
what the table holds.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from tests.integration.conftest import unique_name
from tests.integration.test_cluster import Cluster, _client, cluster  # noqa: F401 (fixture)

S, N = "S", "N"
WAIT_S = 20.0
POLL_S = 0.1


def _schema(*pairs: str) -> list[dict[str, str]]:
    return [{"AttributeName": pairs[i], "KeyType": pairs[i + 1]} for i in range(0, len(pairs), 2)]


def _create(client: Any, name: str) -> None:
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=_schema("pk", "HASH", "sk", "RANGE"),
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in (
            ("pk", S), ("sk", S), ("g", S), ("h", N), ("a", S), ("b", N), ("c", S))],
        GlobalSecondaryIndexes=[
            {"IndexName": "by_g", "KeySchema": _schema("g", "HASH", "h", "RANGE"),
             "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["title"]}},
            {"IndexName": "multi", "KeySchema": _schema("a", "HASH", "b", "HASH", "c", "RANGE"),
             "Projection": {"ProjectionType": "ALL"}}])


def _until(read: Callable[[], Any], wanted: Any) -> Any:
    """`read()` once it equals `wanted` (entries propagate asynchronously), bounded."""
    deadline = time.monotonic() + WAIT_S
    while True:
        seen = read()
        if seen == wanted or time.monotonic() > deadline:
            assert seen == wanted
            return seen
        time.sleep(POLL_S)


def _wait_active(client: Any, table: str) -> None:
    def statuses() -> set[str]:
        described = client.describe_table(TableName=table)["Table"]
        return {index["IndexStatus"] for index in described["GlobalSecondaryIndexes"]}
    _until(statuses, {"ACTIVE"})


def _items() -> list[dict[str, Any]]:
    items = [{"pk": {S: f"p{i % 5}"}, "sk": {S: f"s{i:02d}"}, "g": {S: f"g{i % 2}"},
              "h": {N: str(50 - i)}, "title": {S: f"t{i}"}, "notes": {S: "n"},
              "a": {S: "A"}, "b": {N: str(i % 3)}, "c": {S: f"c{i % 4}"}}
             for i in range(24)]
    items.append({"pk": {S: "sparse"}, "sk": {S: "1"}, "g": {S: "g0"}})   # no h: not in by_g
    return items


def _by_g(g: str) -> list[dict[str, Any]]:
    chosen = [i for i in _items() if i.get("g") == {S: g} and "h" in i]
    ordered = sorted(chosen, key=lambda i: (int(i["h"][N]), i["pk"][S], i["sk"][S]))
    return [{k: v for k, v in i.items() if k in ("pk", "sk", "g", "h", "title")}
            for i in ordered]


def _pages(read: Callable[..., dict[str, Any]], table: str,
           **request: Any) -> list[dict[str, Any]]:
    """Every page's items of a Query or Scan (`read`: the client's method)."""
    items, start = [], None
    for _ in range(100):
        page = read(TableName=table, **request, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if start is None:
            return items
    raise AssertionError("a read that does not end")


def _query_all(client: Any, table: str, **request: Any) -> list[dict[str, Any]]:
    return _pages(client.query, table, **request)


def _scan_all(client: Any, table: str, **request: Any) -> list[dict[str, Any]]:
    return _pages(client.scan, table, **request)


def _key(item: dict[str, Any]) -> tuple[str, str]:
    return item["pk"][S], item["sk"][S]


def _exercise(client: Any) -> None:
    table = unique_name("gsiq")
    _create(client, table)
    _wait_active(client, table)
    for item in _items():
        client.put_item(TableName=table, Item=item)
    g0 = {"IndexName": "by_g", "KeyConditionExpression": "g = :g",
          "ExpressionAttributeValues": {":g": {S: "g0"}}}
    _until(lambda: client.query(TableName=table, **g0)["Items"], _by_g("g0"))
    # Order, both ways, and paging with the table's and index's keys.
    assert client.query(TableName=table, ScanIndexForward=False, **g0)["Items"] == _by_g("g0")[::-1]
    first = client.query(TableName=table, Limit=5, **g0)
    assert set(first["LastEvaluatedKey"]) == {"pk", "sk", "g", "h"}
    assert _query_all(client, table, Limit=5, **g0) == _by_g("g0")
    ranged = client.query(TableName=table, IndexName="by_g",
                          KeyConditionExpression="g = :g AND h BETWEEN :lo AND :hi",
                          ExpressionAttributeValues={":g": {S: "g1"}, ":lo": {N: "30"},
                                                     ":hi": {N: "40"}})
    assert ranged["Items"] == [i for i in _by_g("g1") if 30 <= int(i["h"][N]) <= 40]
    # Multi-attribute keys.
    multi = _query_all(client, table, IndexName="multi",
                       KeyConditionExpression="a = :a AND b = :b AND c = :c",
                       ExpressionAttributeValues={":a": {S: "A"}, ":b": {N: "1"},
                                                  ":c": {S: "c1"}})
    wanted = [i for i in _items() if i.get("b") == {N: "1"} and i.get("c") == {S: "c1"}]
    assert sorted(map(_key, multi)) == sorted(map(_key, wanted))
    # Scan: whole, paged, and in parallel segments.
    everything = sorted(_key(i) for g in ("g0", "g1") for i in _by_g(g))
    # (each read may go to another replica, a few entries behind: eventually consistent)
    _until(lambda: sorted(map(_key, _scan_all(client, table, IndexName="by_g", Limit=7))),
           everything)
    _until(lambda: sorted(_key(i) for s in range(3) for i in _scan_all(
        client, table, IndexName="by_g", Segment=s, TotalSegments=3)), everything)
    # An update moves an entry; a delete removes it; a sparse update leaves the index.
    client.update_item(TableName=table, Key={"pk": {S: "p0"}, "sk": {S: "s00"}},
                       UpdateExpression="SET g = :g", ExpressionAttributeValues={":g": {S: "g1"}})
    client.delete_item(TableName=table, Key={"pk": {S: "p2"}, "sk": {S: "s02"}})
    client.update_item(TableName=table, Key={"pk": {S: "p4"}, "sk": {S: "s04"}},
                       UpdateExpression="REMOVE h")
    gone = {("p0", "s00"), ("p2", "s02"), ("p4", "s04")}
    _until(lambda: [_key(i) for i in _query_all(client, table, **g0)],
           [_key(i) for i in _by_g("g0") if _key(i) not in gone])
    g1 = {**g0, "ExpressionAttributeValues": {":g": {S: "g1"}}}
    assert ("p0", "s00") in {_key(i) for i in _query_all(client, table, **g1)}
    def by_g_count() -> int:
        described = client.describe_table(TableName=table)["Table"]
        return next(i["ItemCount"] for i in described["GlobalSecondaryIndexes"]
                    if i["IndexName"] == "by_g")
    _until(by_g_count, len(everything) - 2)   # p2/s02 deleted, p4/s04 lost h
    client.delete_table(TableName=table)
    assert table not in client.list_tables()["TableNames"]


def test_global_index_queries_in_serve(ddb: Any) -> None:
    _exercise(ddb)


def test_global_index_queries_through_the_cluster_router(cluster: Cluster) -> None:  # noqa: F811
    _exercise(_client(cluster.endpoint))
