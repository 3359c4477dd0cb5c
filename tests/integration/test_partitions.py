"""Tables cut into several partitions by their provisioned capacity, through boto3.

A provisioned table starts with max(ceil(RCU/3000), ceil(WCU/1000), 1)
partitions (engine/partition_plan.py), each a replication group of three
replicas. Nothing of that is visible in DynamoDB's API, so the partition
count is read from the server's catalogue; everything else is asserted
through boto3: Scan pages (1 MB and Limit) cross partition boundaries and
return every item exactly once, parallel Scan segments partition the items,
Query and GetItem find every key, batch operations fan out, ItemCount and
TableSizeBytes add up over the partitions, and it all survives a restart.
"""
from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.integration.conftest import unique_name
from tests.integration.server import ServerProcess

ITEMS = 600


def partition_count(data_dir: str, table: str) -> int:
    with open(os.path.join(data_dir, "catalog.json")) as file:
        catalogue = json.load(file)
    tables = catalogue["tables"]
    entry = tables[table] if isinstance(tables, dict) else next(t for t in tables if t["name"] == table)
    return len(entry["partitions"])


def create(ddb: Any, read_units: int, write_units: int) -> str:
    name = unique_name("parts")
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"}],
        ProvisionedThroughput={"ReadCapacityUnits": read_units, "WriteCapacityUnits": write_units})
    return name


def scan_all(ddb: Any, table: str, **extra: Any) -> list[dict]:
    items, start = [], None
    for _ in range(10_000):
        page = ddb.scan(TableName=table, **extra, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if start is None:
            return items
    raise AssertionError("scan did not end")


def keys_of(items: list[dict]) -> list[tuple[str, str]]:
    return sorted((i["pk"]["S"], i["sk"]["N"]) for i in items)


@pytest.mark.parametrize("read_units,write_units,expected", [(9_000, 100, 3), (100, 4_500, 5), (5, 5, 1)])
def test_provisioned_capacity_sets_the_partition_count(server: ServerProcess, ddb: Any,
                                                       read_units: int, write_units: int,
                                                       expected: int) -> None:
    table = create(ddb, read_units, write_units)
    assert partition_count(server.data_dir, table) == expected


def test_a_table_of_several_partitions_behaves_as_one(tmp_path) -> None:
    process = ServerProcess(str(tmp_path)).start()
    try:
        ddb = process.client()
        table = create(ddb, 100, 4_000)  # four partitions
        assert partition_count(str(tmp_path), table) == 4
        expected = []
        for start in range(0, ITEMS, 25):
            batch = [{"PutRequest": {"Item": {"pk": {"S": f"user{i % 150}"}, "sk": {"N": str(i)},
                                              "pad": {"S": "x" * 200}}}}
                     for i in range(start, start + 25)]
            assert not ddb.batch_write_item(RequestItems={table: batch}).get("UnprocessedItems")
            expected += [(f"user{i % 150}", str(i)) for i in range(start, start + 25)]
        expected.sort()
        check_everything(ddb, table, expected)
        process.stop()
        process = ServerProcess(str(tmp_path)).start()
        check_everything(process.client(), table, expected)
    finally:
        process.stop()


def check_everything(ddb: Any, table: str, expected: list[tuple[str, str]]) -> None:
    # Scan: small pages cross every partition boundary; every item exactly once.
    assert keys_of(scan_all(ddb, table, Limit=7)) == expected
    assert keys_of(scan_all(ddb, table, ConsistentRead=True)) == expected
    # Parallel scan: segments are disjoint and cover the table.
    segments = [keys_of(scan_all(ddb, table, Segment=s, TotalSegments=5, Limit=50)) for s in range(5)]
    assert sorted(k for seg in segments for k in seg) == expected
    assert sum(1 for seg in segments if seg) >= 3  # the items are spread over the hash space
    # Query and GetItem find each partition key's items where they live.
    for user in ("user0", "user77", "user149"):
        page = ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                         ExpressionAttributeValues={":p": {"S": user}}, ConsistentRead=True)
        assert [(i["pk"]["S"], i["sk"]["N"]) for i in page["Items"]] == \
            sorted([k for k in expected if k[0] == user], key=lambda k: int(k[1]))
    # BatchGetItem fans out over partitions.
    wanted = expected[::37][:100]
    got = ddb.batch_get_item(RequestItems={table: {"Keys": [{"pk": {"S": p}, "sk": {"N": s}} for p, s in wanted],
                                                   "ConsistentRead": True}})
    assert keys_of(got["Responses"][table]) == sorted(wanted) and not got["UnprocessedKeys"]
    # Counts add up over the partitions.
    description = ddb.describe_table(TableName=table)["Table"]
    assert description["ItemCount"] == len(expected)
    assert description["TableSizeBytes"] > len(expected) * 200
