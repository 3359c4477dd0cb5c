"""Global secondary indexes are propagated from the base partitions to the index tables,
and stay exactly what the table says through kill -9 (real `triplica serve` processes,
three replicas; the cluster shape is in test_cluster_indexes.py).

The check is on the files (global_index_checker.py): once propagation is quiet and the
server stopped, each index holds exactly the projected images of the table's items
that have its keys, every replica of a partition agreeing.
"""
from __future__ import annotations

import json
import os
import random
import time
import threading
from typing import Any

import pytest

from tests.integration.global_index_checker import check_on_disk, wait_drained
from tests.integration.server import ServerProcess
from triplica.cluster.drain import _call
from triplica.common.internal import STOP_REPLICA_TARGET

TABLE = "orders"
DRAIN_S_MAX = 60.0
GSIS = [
    {"IndexName": "byStatus",
     "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"},
                   {"AttributeName": "updated", "KeyType": "RANGE"}],
     "Projection": {"ProjectionType": "ALL"}},
    {"IndexName": "byOwner",
     "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}],
     "Projection": {"ProjectionType": "KEYS_ONLY"}},
    {"IndexName": "byPlace",
     "KeySchema": [{"AttributeName": "region", "KeyType": "HASH"},
                   {"AttributeName": "city", "KeyType": "HASH"},
                   {"AttributeName": "rank", "KeyType": "RANGE"}],
     "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["note"]}},
]
DEFINITIONS = [{"AttributeName": name, "AttributeType": kind} for name, kind in
               [("pk", "S"), ("sk", "N"), ("status", "S"), ("updated", "N"), ("owner", "S"),
                ("region", "S"), ("city", "S"), ("rank", "N")]]


def create_table(client: Any, name: str = TABLE) -> None:
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                   {"AttributeName": "sk", "KeyType": "RANGE"}],
                        AttributeDefinitions=DEFINITIONS, GlobalSecondaryIndexes=GSIS)
    client.get_waiter("table_exists").wait(TableName=name,
                                           WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    described = client.describe_table(TableName=name)["Table"]
    assert described["TableStatus"] == "ACTIVE"
    assert sorted(i["IndexName"] for i in described["GlobalSecondaryIndexes"]) == \
        ["byOwner", "byPlace", "byStatus"]


def random_item(rng: random.Random, number: int, spread: int = 40) -> dict[str, Any]:
    """An item with some of each index's attributes (sparse indexes: some are missing);
    `spread` partition keys of 7 items each."""
    item: dict[str, Any] = {"pk": {"S": f"p{number % spread}"}, "sk": {"N": str(number % 7)},
                            "note": {"S": "n" * rng.randrange(0, 50)},
                            "other": {"S": "o" * rng.randrange(0, 50)}}
    if rng.random() < 0.8:
        item["status"] = {"S": rng.choice(["new", "paid", "sent"])}
    if rng.random() < 0.8:
        item["updated"] = {"N": str(rng.randrange(1000))}
    if rng.random() < 0.6:
        item["owner"] = {"S": rng.choice(["ann", "bob", "cy"])}
    if rng.random() < 0.7:
        item["region"] = {"S": rng.choice(["eu", "us"])}
        item["city"] = {"S": rng.choice(["paris", "oslo", "nyc"])}
    if rng.random() < 0.7:
        item["rank"] = {"N": str(rng.randrange(-5, 5))}
    return item


def write_some(client: Any, rng: random.Random, count: int, table: str = TABLE) -> None:
    for step in range(count):
        number = rng.randrange(300)
        roll = rng.random()
        key = {"pk": {"S": f"p{number % 40}"}, "sk": {"N": str(number % 7)}}
        if roll < 0.6:
            client.put_item(TableName=table, Item=random_item(rng, number))
        elif roll < 0.75:
            client.delete_item(TableName=table, Key=key)
        elif roll < 0.9:
            client.update_item(TableName=table, Key=key,
                               UpdateExpression="SET #s = :s, updated = :u REMOVE #o",
                               ExpressionAttributeNames={"#s": "status", "#o": "owner"},
                               ExpressionAttributeValues={":s": {"S": "done"},
                                                          ":u": {"N": str(step)}})
        else:
            client.batch_write_item(RequestItems={table: [
                {"PutRequest": {"Item": random_item(rng, number + i)}} for i in range(5)]})


@pytest.fixture
def server(tmp_path):
    process = ServerProcess(str(tmp_path / "data")).start()
    yield process
    process.stop()


def test_indexes_hold_exactly_what_the_table_says(server: ServerProcess) -> None:
    client = server.client()
    create_table(client)
    write_some(client, random.Random(1), 400)
    wait_drained(server.data_dir, TABLE, DRAIN_S_MAX)
    server.stop()
    counts = check_on_disk(server.data_dir, TABLE)
    assert all(count > 20 for count in counts.values()), counts


def test_kill_9_during_writes_loses_no_index_entry(server: ServerProcess) -> None:
    client = server.client()
    create_table(client)
    write_some(client, random.Random(2), 150)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            try:
                write_some(client, rng, 1)
            except Exception as error:  # the kill: connections drop, some writes fail
                errors.append(error)
                return

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in (3, 4)]
    for thread in threads:
        thread.start()
    threading.Event().wait(1.0)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(30)
    server.start()
    client = server.client()
    write_some(client, random.Random(5), 100)
    wait_drained(server.data_dir, TABLE, DRAIN_S_MAX)
    server.stop()
    check_on_disk(server.data_dir, TABLE)


def _index_status(client: Any, table: str, name: str) -> str | None:
    described = client.describe_table(TableName=table)["Table"]
    return next((i["IndexStatus"] for i in described.get("GlobalSecondaryIndexes", [])
                 if i["IndexName"] == name), None)


def _wait_status(client: Any, table: str, name: str, wanted: str | None) -> None:
    deadline = time.monotonic() + DRAIN_S_MAX
    while time.monotonic() < deadline:
        if _index_status(client, table, name) == wanted:
            return
        time.sleep(0.2)
    raise AssertionError(f"index {name} not {wanted}: {_index_status(client, table, name)}")


def _plain_table(client: Any, name: str) -> None:
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                   {"AttributeName": "sk", "KeyType": "RANGE"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                              {"AttributeName": "sk", "AttributeType": "N"}])
    client.get_waiter("table_exists").wait(TableName=name,
                                           WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})


def _create_index(client: Any, table: str, spec: dict[str, Any]) -> dict[str, Any]:
    names = {e["AttributeName"] for e in spec["KeySchema"]}
    return client.update_table(
        TableName=table,
        AttributeDefinitions=[d for d in DEFINITIONS if d["AttributeName"] in names],
        GlobalSecondaryIndexUpdates=[{"Create": spec}])["TableDescription"]


def test_an_index_added_to_a_live_table_is_backfilled_while_writes_go_on(
        server: ServerProcess) -> None:
    client = server.client()
    _plain_table(client, "live")
    client_rng = random.Random(6)
    for start in range(0, 1500, 25):
        client.batch_write_item(RequestItems={"live": [
            {"PutRequest": {"Item": random_item(client_rng, start + i)}} for i in range(25)]})
    stop = threading.Event()

    def writer() -> None:
        rng = random.Random(7)
        while not stop.is_set():
            write_some(client, rng, 1, table="live")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        answer = _create_index(client, "live", GSIS[0])
        [described] = answer["GlobalSecondaryIndexes"]
        assert described["IndexStatus"] == "CREATING" and described["Backfilling"] is True
        _wait_status(client, "live", "byStatus", "ACTIVE")
        # A second one while writes go on (one at a time: tests/unit/test_index_updates.py).
        _create_index(client, "live", GSIS[2])
        _wait_status(client, "live", "byPlace", "ACTIVE")
    finally:
        stop.set()
        thread.join(30)
    wait_drained(server.data_dir, "live", DRAIN_S_MAX)
    server.stop()
    counts = check_on_disk(server.data_dir, "live")
    assert counts["byStatus"] > 100 and counts["byPlace"] > 50, counts  # of 280 keys


def test_kill_9_during_a_backfill_then_delete_the_index(server: ServerProcess) -> None:
    client = server.client()
    _plain_table(client, "killed")
    rng = random.Random(8)
    for start in range(0, 3000, 25):   # 3,000 distinct items: a backfill of 6 chunks
        client.batch_write_item(RequestItems={"killed": [
            {"PutRequest": {"Item": random_item(rng, start + i, spread=3000)}}
            for i in range(25)]})
    _create_index(client, "killed", GSIS[0])
    server.kill()   # in the middle of the backfill (or just after it)
    server.start()
    client = server.client()
    write_some(client, random.Random(9), 100, table="killed")
    _wait_status(client, "killed", "byStatus", "ACTIVE")
    wait_drained(server.data_dir, "killed", DRAIN_S_MAX)
    server.stop()
    assert check_on_disk(server.data_dir, "killed")["byStatus"] > 1500
    server.start()
    client = server.client()
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.update_table(TableName="killed",
                            GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "nope"}}])
    answer = client.update_table(TableName="killed",
                                 GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName":
                                                                          "byStatus"}}])
    assert answer["TableDescription"]["GlobalSecondaryIndexes"][0]["IndexStatus"] == "DELETING"
    _wait_status(client, "killed", "byStatus", None)
    write_some(client, random.Random(10), 20, table="killed")
    assert "killed/byStatus" not in open(
        os.path.join(server.data_dir, "node-1", "catalog.json")).read()


def test_a_write_is_charged_for_each_global_index_it_changes(server: ServerProcess) -> None:
    client = server.client()
    create_table(client, "charged")
    item = {"pk": {"S": "a"}, "sk": {"N": "1"}, "status": {"S": "new"}, "updated": {"N": "1"},
            "owner": {"S": "ann"}}
    put = client.put_item(TableName="charged", Item=item, ReturnConsumedCapacity="INDEXES")
    capacity = put["ConsumedCapacity"]
    assert capacity["Table"]["CapacityUnits"] == 1.0
    assert capacity["GlobalSecondaryIndexes"] == {
        "byStatus": {"CapacityUnits": 1.0, "WriteCapacityUnits": 1.0},
        "byOwner": {"CapacityUnits": 1.0, "WriteCapacityUnits": 1.0}}
    assert capacity["CapacityUnits"] == 3.0
    # Moving the item in byStatus costs a delete and a put there; byOwner's KEYS_ONLY
    # entry does not change, and the item is in no byPlace entry: nothing for them.
    update = client.update_item(TableName="charged", Key={"pk": {"S": "a"}, "sk": {"N": "1"}},
                                UpdateExpression="SET #s = :s, note = :n",
                                ExpressionAttributeNames={"#s": "status"},
                                ExpressionAttributeValues={":s": {"S": "paid"},
                                                           ":n": {"S": "x"}},
                                ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    assert update["GlobalSecondaryIndexes"] == {
        "byStatus": {"CapacityUnits": 2.0, "WriteCapacityUnits": 2.0}}
    assert update["CapacityUnits"] == 3.0
    total = client.delete_item(TableName="charged", Key={"pk": {"S": "a"}, "sk": {"N": "1"}},
                               ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    assert total == {"TableName": "charged", "CapacityUnits": 3.0, "WriteCapacityUnits": 3.0}
    batch = client.batch_write_item(RequestItems={"charged": [{"PutRequest": {"Item": item}}]},
                                    ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    assert batch[0]["CapacityUnits"] == 3.0 and set(batch[0]["GlobalSecondaryIndexes"]) == \
        {"byStatus", "byOwner"}


def test_an_index_that_falls_behind_throttles_its_table_writes(tmp_path, monkeypatch) -> None:
    """Two of an index partition's three replicas stopped: deltas pile up in the base
    partitions' outboxes, and past the bound writes are refused with DynamoDB's
    throttling error (changing nothing) until the index partition is back."""
    monkeypatch.setenv("TRIPLICA_INDEX_BACKLOG_MAX", "20")
    server = ServerProcess(str(tmp_path / "data")).start()
    try:
        client = server.client()
        create_table(client, "slowed")
        for node in (1, 2):
            stopped = _call(server.endpoint, STOP_REPLICA_TARGET,
                            {"TableName": "slowed/byOwner", "Node": node})
            assert stopped["Stopped"], stopped
        refused = None
        for number in range(400):
            item = random_item(random.Random(number), number, spread=400)
            item["owner"] = {"S": "ann"}
            try:
                client.put_item(TableName="slowed", Item=item)
            except client.exceptions.ProvisionedThroughputExceededException as error:
                assert "global secondary indexes" in str(error)
                refused = item
                break
        assert refused is not None, "never throttled"
        key = {"pk": refused["pk"], "sk": refused["sk"]}
        if number >= 7:  # its key was not written before: the refused put wrote nothing
            assert "Item" not in client.get_item(TableName="slowed", Key=key,
                                                 ConsistentRead=True)
        # A majority stopped: no reconfiguration can help (Paxos); a restart reopens them.
        server.stop()
        server.start()
        client = server.client()
        deadline = time.monotonic() + DRAIN_S_MAX
        while True:   # the backlog drains
            try:
                client.put_item(TableName="slowed", Item=refused)
                break
            except client.exceptions.ProvisionedThroughputExceededException:
                assert time.monotonic() < deadline, "still throttled"
                time.sleep(0.5)
        wait_drained(server.data_dir, "slowed", DRAIN_S_MAX)
        server.stop()
        check_on_disk(server.data_dir, "slowed")
    finally:
        server.stop()


def _partition_counts(data_dir: str) -> dict[str, int]:
    with open(os.path.join(data_dir, "node-1", "catalog.json"), "rb") as file:
        return {t["name"]: len(t["partitions"]) for t in json.load(file)["tables"]}


def test_splits_of_the_table_and_of_its_indexes_lose_nothing(tmp_path) -> None:
    """Small partitions: the table and its index tables split several times while
    writes go on (base children carry their parent's undelivered deltas and fence it;
    index children keep the cursors); then every index is exactly its table."""
    server = ServerProcess(str(tmp_path / "data"), "--split-size-bytes", "60000").start()
    try:
        client = server.client()
        create_table(client, "growing")
        rng = random.Random(11)
        for start in range(0, 2000, 25):
            client.batch_write_item(RequestItems={"growing": [
                {"PutRequest": {"Item": {**random_item(rng, start + i, spread=2000),
                                         "note": {"S": "n" * 200}}}}
                for i in range(25)]})
            if start % 500 == 0:
                write_some(client, rng, 30, table="growing")
        deadline = time.monotonic() + DRAIN_S_MAX
        while True:   # writes go on while the splits happen
            partitions = _partition_counts(server.data_dir)
            if partitions["growing"] >= 4 and partitions["growing/byStatus"] >= 2:
                break
            assert time.monotonic() < deadline, partitions
            write_some(client, rng, 20, table="growing")
        write_some(client, rng, 100, table="growing")
        wait_drained(server.data_dir, "growing", DRAIN_S_MAX)
        server.stop()
        counts = check_on_disk(server.data_dir, "growing")
        assert counts["byStatus"] > 1000, counts
    finally:
        server.stop()
