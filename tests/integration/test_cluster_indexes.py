"""Secondary indexes on a real 3-node cluster behind its router (TCP between processes,
maps through MemDS). Local ones: a table of three partitions, Query routed by the
partition key, Scans stitched over partitions with index keys in LastEvaluatedKey,
eventually consistent reads served by followers' own indexes, batches split over
partitions with their capacity and ItemCollectionMetrics merged. Global ones:
propagation between processes, a node killed and started again."""
from __future__ import annotations

import os
import random
import signal
import time

from tests.integration.global_index_checker import check_on_disk, wait_drained
from tests.integration.index_checker import check_through_api, scan_all
from tests.integration.test_cluster import Cluster, _cli, _client, cluster  # noqa: F401
from tests.integration.test_global_index_propagation import create_table, write_some

S, N = "S", "N"


def test_local_indexes_through_the_cluster_router(cluster: Cluster) -> None:  # noqa: F811
    ddb = _client(cluster.endpoint)
    ddb.create_table(
        TableName="albums", BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 100, "WriteCapacityUnits": 2500},
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t}
                              for n, t in (("pk", S), ("sk", S), ("year", N))],
        LocalSecondaryIndexes=[{"IndexName": "by_year",
                                "Projection": {"ProjectionType": "INCLUDE",
                                               "NonKeyAttributes": ["title"]},
                                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                              {"AttributeName": "year", "KeyType": "RANGE"}]}])
    assert len(ddb.describe_table(TableName="albums")["Table"]["KeySchema"]) == 2
    answer = ddb.batch_write_item(
        ReturnConsumedCapacity="INDEXES", ReturnItemCollectionMetrics="SIZE",
        RequestItems={"albums": [{"PutRequest": {"Item": {
            "pk": {S: f"a{i % 8}"}, "sk": {S: f"{i:02d}"}, "year": {N: str(2000 - i)},
            "title": {S: f"t{i}"}, "notes": {S: "n"}}}} for i in range(24)]})
    assert answer["UnprocessedItems"] == {}
    [capacity] = answer["ConsumedCapacity"]
    assert capacity["Table"]["CapacityUnits"] == 24.0
    assert capacity["LocalSecondaryIndexes"]["by_year"]["CapacityUnits"] == 24.0
    assert len(answer["ItemCollectionMetrics"]["albums"]) == 24
    for i in range(8):
        query = ddb.query(TableName="albums", IndexName="by_year", ConsistentRead=True,
                          KeyConditionExpression="pk = :p AND #y < :y",
                          ExpressionAttributeNames={"#y": "year"},
                          ExpressionAttributeValues={":p": {S: f"a{i}"}, ":y": {N: "1990"}})
        assert [item["sk"][S] for item in query["Items"]] == \
            [f"{j:02d}" for j in range(23, 10, -1) if j % 8 == i]
    pages = scan_all(ddb, TableName="albums", IndexName="by_year", Limit=5, ConsistentRead=True)
    assert len(pages) == 24 and all(set(item) == {"pk", "sk", "year", "title"} for item in pages)
    fetched = ddb.scan(TableName="albums", IndexName="by_year", Select="ALL_ATTRIBUTES",
                       ReturnConsumedCapacity="INDEXES", ConsistentRead=True)
    assert fetched["Count"] == 24 and fetched["ConsumedCapacity"]["Table"]["CapacityUnits"] == 24.0
    check_through_api(ddb, "albums")
    # Eventually consistent reads go to any member, each with its own copy of the index.
    deadline = time.monotonic() + 10
    while len(scan_all(ddb, TableName="albums", IndexName="by_year")) != 24:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    for _ in range(6):
        query = ddb.query(TableName="albums", IndexName="by_year", KeyConditionExpression="pk = :p",
                          ExpressionAttributeValues={":p": {S: "a3"}})
        assert query["Count"] == 3


def test_global_indexes_through_the_cluster_with_a_node_killed(cluster: Cluster) -> None:  # noqa: F811
    """Propagation between processes over TCP: a node killed with SIGKILL during writes
    and started again; once quiet, every index is exactly its table on disk."""
    ddb = _client(cluster.endpoint)
    create_table(ddb, "gsi")
    rng = random.Random(12)
    write_some(ddb, rng, 150, table="gsi")
    os.kill(cluster.pids_started["node-2"], signal.SIGKILL)
    for _ in range(100):
        try:
            write_some(ddb, rng, 1, table="gsi")
        except Exception:
            pass   # a write in flight at the kill may fail; the router retries the rest
    restarted = _cli("cluster", "start-node", "--data-dir", cluster.data_dir, "--node", "2")
    assert restarted.returncode == 0, restarted.stderr
    write_some(ddb, rng, 100, table="gsi")
    wait_drained(cluster.data_dir, "gsi", 60.0)
    down = _cli("cluster", "down", "--data-dir", cluster.data_dir)
    assert down.returncode == 0, down.stderr
    counts = check_on_disk(cluster.data_dir, "gsi")
    assert all(count > 20 for count in counts.values()), counts
