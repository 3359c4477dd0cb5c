"""A cluster's tables have several partitions and the router routes per partition.

One real cluster (three node processes, one router) for the whole module,
started with `cluster_up` on free ports in a tmp dir and stopped with
`cluster_down`. boto3 talks only to the router, except where a test asks the
nodes themselves who leads a partition. Provisioned tables get
max(ceil(RCU/3000), ceil(WCU/1000), 1) partitions; leaders spread over the
nodes; single-item operations, Query, paged and parallel Scans, batches
spanning partitions, an invalid batch changing nothing, and a kill -9 of one
partition's leader with every partition still writable.
"""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from typing import Any, Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from triplica.cluster.local import cluster_down, cluster_up, running_pids
from triplica.model.partition_map import TableMap
from triplica.model.keys import partition_hash
from tests.integration.test_cluster import _free_base_port
from triplica.common.internal import (HASH_RANGE, INTERNAL_KEY, PARTITION_MAP_TARGET,
                                      VALIDATE_ONLY)

NODES = 3
ITEMS = 60
FAILOVER_WRITE_S_MAX = 15.0
UNPROCESSED_ROUNDS_MAX = 20


def _client(endpoint: str, attempts: int = 1) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="AKIDTEST", aws_secret_access_key="secret",
                        config=Config(retries={"max_attempts": attempts, "mode": "standard"},
                                      connect_timeout=5, read_timeout=30))


class Cluster:
    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.base_port = _free_base_port()
        self.endpoint = cluster_up(data_dir, nodes=NODES, azs=3, base_port=self.base_port)[0]
        self.ddb = _client(self.endpoint)

    def node_url(self, node: int) -> str:
        return f"http://127.0.0.1:{self.base_port + node}"

    def table_map(self, table: str) -> TableMap:
        """Asked of a node directly, as the router does."""
        for node in range(1, NODES + 1):
            try:
                answer = _post(self.node_url(node), PARTITION_MAP_TARGET, {"TableName": table})
            except OSError:
                continue
            return TableMap.from_doc(answer)
        raise AssertionError("no node answered the partition map request")

    def leader_of(self, table: str, key: dict[str, Any]) -> int | None:
        """The node answering a strong read of `key` itself (the others answer 421)."""
        for node in range(1, NODES + 1):
            try:
                _client(self.node_url(node)).get_item(TableName=table, Key=key,
                                                      ConsistentRead=True)
                return node
            except Exception:  # 421 (not the leader) or down
                continue
        return None


def _post(url: str, target: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url + "/", data=json.dumps(body).encode(), method="POST",
                                     headers={"X-Amz-Target": target,
                                              "Content-Type": "application/x-amz-json-1.0"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: Any) -> Iterator[Cluster]:
    data_dir = str(tmp_path_factory.mktemp("partitioned") / "cluster")
    cluster = Cluster(data_dir)
    try:
        _make_table(cluster.ddb, "spread", write_units=3000)
        _make_table(cluster.ddb, "batches", write_units=4000)
        _seed(cluster.ddb)  # what the Scan tests expect, whichever worker runs them
        yield cluster
    finally:
        cluster_down(data_dir)
        assert running_pids(data_dir) == {}


def _make_table(ddb: Any, name: str, write_units: int) -> None:
    ddb.create_table(TableName=name, BillingMode="PROVISIONED",
                     ProvisionedThroughput={"ReadCapacityUnits": 5,
                                            "WriteCapacityUnits": write_units},
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"}])


def _key(pk: str, sk: int = 0) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}}


def _partition_of(table_map: TableMap, pk: str) -> int:
    return table_map.index_of(partition_hash({"S": pk}))


def _key_in(table_map: TableMap, index: int, prefix: str) -> str:
    """A partition key that lands in partition `index` (bounded search)."""
    for number in range(10_000):
        if _partition_of(table_map, f"{prefix}{number}") == index:
            return f"{prefix}{number}"
    raise AssertionError("no key found for the partition")


def _ids(items: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(item["pk"]["S"], int(item["sk"]["N"])) for item in items]


def test_provisioned_tables_get_partitions_with_spread_leaders(cluster: Cluster) -> None:
    spread, batches = cluster.table_map("spread"), cluster.table_map("batches")
    assert spread.partition_count == 3 and batches.partition_count == 4
    assert all(len(members) == 3 for members in spread.members + batches.members)
    leaders = set()
    for table, table_map in (("spread", spread), ("batches", batches)):
        for index in range(table_map.partition_count):
            key = _key(_key_in(table_map, index, "probe"))
            leader = cluster.leader_of(table, key)
            assert leader is not None, (table, index)
            leaders.add(leader)
    assert len(leaders) > 1, "one node leads every partition"


def test_item_operations_across_partitions(cluster: Cluster) -> None:
    ddb, table_map = cluster.ddb, cluster.table_map("spread")
    assert len({_partition_of(table_map, f"ops{i}") for i in range(ITEMS)}) == 3
    for i in range(ITEMS):
        ddb.put_item(TableName="spread", Item={**_key(f"ops{i}"), "v": {"N": str(i)}})
    for i in range(ITEMS):
        ddb.update_item(TableName="spread", Key=_key(f"ops{i}"),
                        UpdateExpression="SET v = v + :one",
                        ExpressionAttributeValues={":one": {"N": "1"}})
    for i in range(ITEMS):
        for consistent in (True, False):
            got = ddb.get_item(TableName="spread", Key=_key(f"ops{i}"),
                               ConsistentRead=consistent)
            if consistent:
                assert got["Item"]["v"] == {"N": str(i + 1)}
            elif "Item" in got:  # an eventual read may lag behind the update
                assert got["Item"]["v"] in ({"N": str(i)}, {"N": str(i + 1)})
    for i in range(ITEMS):  # leaves the table as the Scan tests expect it
        ddb.delete_item(TableName="spread", Key=_key(f"ops{i}"))
        assert "Item" not in ddb.get_item(TableName="spread", Key=_key(f"ops{i}"),
                                          ConsistentRead=True)
    with pytest.raises(ClientError) as error:  # no key to route by: a node validates
        ddb.get_item(TableName="spread", Key={"sk": {"N": "1"}})
    assert error.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as error:
        ddb.get_item(TableName="missing", Key=_key("x"))
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"


def _seed(ddb: Any) -> None:
    for i in range(ITEMS):
        if i % 3:
            ddb.put_item(TableName="spread", Item={**_key(f"item{i}"), "v": {"N": str(i)}})
    for j in range(4):
        for s in range(5):
            ddb.put_item(TableName="spread", Item={**_key(f"query{j}", s)})


def _all_items(cluster: Cluster) -> set[tuple[str, int]]:
    return {(f"item{i}", 0) for i in range(ITEMS) if i % 3} | \
        {(f"query{j}", s) for j in range(4) for s in range(5)}


def test_query_each_partition(cluster: Cluster) -> None:
    ddb = cluster.ddb
    for j in range(4):
        for consistent in (True, False):
            found = ddb.query(TableName="spread", KeyConditionExpression="pk = :p AND sk >= :s",
                              ExpressionAttributeValues={":p": {"S": f"query{j}"},
                                                         ":s": {"N": "1"}},
                              ConsistentRead=consistent)
            wanted = [(f"query{j}", s) for s in range(1, 5)]
            if consistent:
                assert _ids(found["Items"]) == wanted
            else:  # a lagging replica may miss the latest writes, never reorder them
                assert _ids(found["Items"]) == wanted[:len(found["Items"])]


def _scan_pages(ddb: Any, maximum: int = 200, **arguments: Any) -> list[dict[str, Any]]:
    pages = []
    start: dict[str, Any] | None = None
    for _ in range(maximum):
        page = ddb.scan(TableName="spread", **arguments,
                        **({"ExclusiveStartKey": start} if start else {}))
        pages.append(page)
        start = page.get("LastEvaluatedKey")
        if start is None:
            return pages
    raise AssertionError("scan did not end")


def test_scan_pages_cross_partitions_exactly_once(cluster: Cluster) -> None:
    expected = _all_items(cluster)
    for consistent in (True, False):
        pages = _scan_pages(cluster.ddb, Limit=7, ConsistentRead=consistent)
        seen = [item for page in pages for item in _ids(page["Items"])]
        assert len(seen) == len(set(seen))
        # An eventually consistent page may miss the latest writes (a replica lags).
        assert set(seen) == expected if consistent else set(seen) <= expected
        assert all(page["ScannedCount"] <= 7 for page in pages)
        assert len(pages) >= len(seen) // 7
    whole = _scan_pages(cluster.ddb, ConsistentRead=True)
    assert len(whole) == 1 and set(_ids(whole[0]["Items"])) == expected


def test_parallel_scan_segments_cover_the_table(cluster: Cluster) -> None:
    seen: list[tuple[str, int]] = []
    for segment in range(4):
        for page in _scan_pages(cluster.ddb, Limit=5, Segment=segment, TotalSegments=4,
                                ConsistentRead=True):
            seen.extend(_ids(page["Items"]))
    assert len(seen) == len(set(seen)) and set(seen) == _all_items(cluster)


def test_scan_count_and_filter(cluster: Cluster) -> None:
    expected = _all_items(cluster)
    pages = _scan_pages(cluster.ddb, Select="COUNT", Limit=9, ReturnConsumedCapacity="TOTAL",
                        ConsistentRead=True)
    assert sum(page["Count"] for page in pages) == len(expected)
    assert all("Items" not in page and page["ConsumedCapacity"]["CapacityUnits"] > 0
               for page in pages)
    filtered = _scan_pages(cluster.ddb, FilterExpression="begins_with(pk, :q)",
                           ExpressionAttributeValues={":q": {"S": "query"}}, Limit=11,
                           ConsistentRead=True)
    assert sum(page["Count"] for page in filtered) == 20
    assert sum(page["ScannedCount"] for page in filtered) == len(expected)


def test_client_internal_parameters_are_ignored(cluster: Cluster) -> None:
    headers = {"X-Amz-Date": "20240101T000000Z", "Authorization": (
        "AWS4-HMAC-SHA256 Credential=triplica/20240101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)}
    body = {"TableName": "spread", "ConsistentRead": True,
            INTERNAL_KEY: {HASH_RANGE: ["0", "1"]}}
    request = urllib.request.Request(
        cluster.endpoint + "/", data=json.dumps(body).encode(), method="POST",
        headers={**headers, "X-Amz-Target": "DynamoDB_20120810.Scan",
                 "Content-Type": "application/x-amz-json-1.0"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["Count"] == len(_all_items(cluster)) and INTERNAL_KEY not in answer
    writes = {"RequestItems": {"spread": [{"PutRequest": {"Item": _key(f"sneak{i}")}}
                                          for i in range(6)]},
              INTERNAL_KEY: {VALIDATE_ONLY: True}}
    request = urllib.request.Request(
        cluster.endpoint + "/", data=json.dumps(writes).encode(), method="POST",
        headers={**headers, "X-Amz-Target": "DynamoDB_20120810.BatchWriteItem",
                 "Content-Type": "application/x-amz-json-1.0"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read()) == {"UnprocessedItems": {}}
    for i in range(6):
        assert "Item" in cluster.ddb.get_item(TableName="spread", Key=_key(f"sneak{i}"),
                                              ConsistentRead=True)
        cluster.ddb.delete_item(TableName="spread", Key=_key(f"sneak{i}"))


def _batch_write(ddb: Any, writes: list[dict[str, Any]]) -> None:
    pending: dict[str, Any] = {"batches": writes}
    for _ in range(UNPROCESSED_ROUNDS_MAX):
        pending = ddb.batch_write_item(RequestItems=pending)["UnprocessedItems"]
        if not pending:
            return
        time.sleep(0.1)
    raise AssertionError("writes stayed unprocessed")


def test_batches_span_partitions(cluster: Cluster) -> None:
    ddb, table_map = cluster.ddb, cluster.table_map("batches")
    items = [{**_key(f"b{i}"), "v": {"N": str(i)}} for i in range(100)]
    assert len({_partition_of(table_map, item["pk"]["S"]) for item in items[:25]}) == 4
    for start in range(0, 100, 25):
        _batch_write(ddb, [{"PutRequest": {"Item": item}} for item in items[start:start + 25]])
    found: list[dict[str, Any]] = []
    pending: dict[str, Any] = {"batches": {"Keys": [_key(f"b{i}") for i in range(100)],
                                           "ConsistentRead": True}}
    for _ in range(UNPROCESSED_ROUNDS_MAX):
        answer = ddb.batch_get_item(RequestItems=pending, ReturnConsumedCapacity="TOTAL")
        found.extend(answer["Responses"]["batches"])
        assert answer["ConsumedCapacity"][0]["TableName"] == "batches"
        pending = answer["UnprocessedKeys"]
        if not pending:
            break
    assert sorted(int(item["v"]["N"]) for item in found) == list(range(100))
    _batch_write(ddb, [{"DeleteRequest": {"Key": _key(f"b{i}")}} for i in range(0, 50, 2)])
    left = ddb.batch_get_item(RequestItems={"batches": {
        "Keys": [_key(f"b{i}") for i in range(50)], "ProjectionExpression": "v",
        "ConsistentRead": True}})
    assert sorted(int(item["v"]["N"]) for item in left["Responses"]["batches"]) == \
        list(range(1, 50, 2))


def test_an_invalid_batch_changes_no_partition(cluster: Cluster) -> None:
    ddb, table_map = cluster.ddb, cluster.table_map("batches")
    writes = [{"PutRequest": {"Item": _key(f"bad{i}")}} for i in range(24)]
    bad_pk = writes[5]["PutRequest"]["Item"]["pk"]["S"]
    writes[5] = {"PutRequest": {"Item": {"pk": {"S": bad_pk}, "sk": {"S": "not a number"}}}}
    touched = {_partition_of(table_map, w["PutRequest"]["Item"]["pk"]["S"]) for w in writes}
    assert len(touched) == 4
    with pytest.raises(ClientError) as error:
        ddb.batch_write_item(RequestItems={"batches": writes})
    assert error.value.response["Error"]["Code"] == "ValidationException"
    answer = ddb.batch_get_item(RequestItems={"batches": {
        "Keys": [_key(f"bad{i}") for i in range(24)], "ConsistentRead": True}})
    assert answer["Responses"]["batches"] == [] and answer["UnprocessedKeys"] == {}
    with pytest.raises(ClientError) as error:  # a duplicate key across the batch
        ddb.batch_get_item(RequestItems={"batches": {"Keys": [_key("b1"), _key("b3"),
                                                               _key("b5"), _key("b1")]}})
    assert error.value.response["Error"]["Code"] == "ValidationException"


def test_kill_one_partition_leader_every_partition_stays_writable(cluster: Cluster) -> None:
    table_map = cluster.table_map("spread")
    keys = [_key_in(table_map, index, "after-kill") for index in range(3)]
    victim = cluster.leader_of("spread", _key(keys[0]))
    assert victim is not None
    for pk in keys:  # the router learns every group's leader first
        cluster.ddb.put_item(TableName="spread", Item={**_key(pk), "v": {"N": "0"}})
    os.kill(running_pids(cluster.data_dir)[f"node-{victim}"], signal.SIGKILL)
    killed_at = time.monotonic()
    ddb = _client(cluster.endpoint, attempts=3)  # an SDK retries a write's unknown outcome
    for pk in keys:
        ddb.put_item(TableName="spread", Item={**_key(pk), "v": {"N": "1"}})
    elapsed_s = time.monotonic() - killed_at
    assert elapsed_s < FAILOVER_WRITE_S_MAX
    for pk in keys:
        got = ddb.get_item(TableName="spread", Key=_key(pk), ConsistentRead=True)
        assert got["Item"]["v"] == {"N": "1"}
    new_leader = cluster.leader_of("spread", _key(keys[0]))
    assert new_leader is not None and new_leader != victim
    print(f"all partitions writable {elapsed_s:.3f}s after kill -9 of node {victim}")
