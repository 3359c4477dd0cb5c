"""Local secondary indexes stay consistent with their tables through kill -9, splits and
replicas rebuilt from their peers (real `triplica serve` processes, three replicas).

After each, the index is checked through boto3 (index_checker.check_through_api) and,
once the server is stopped, on every replica's files (index_checker.check_on_disk: the
engine's checker on each store, and the replicas of a partition identical).
"""
from __future__ import annotations

import asyncio
import glob
import json
import os
import threading
import time
from typing import Any

import boto3
from botocore.config import Config

from tests.integration.index_checker import (check_on_disk, check_through_api, scan_all,
                                             table_info)
from tests.integration.server import ServerProcess
from tests.integration.test_local_indexes import create_lsi_table
from tests.integration.test_replicated_heal import _retry

WRITERS = 3
CONVERGE_S_MAX = 30.0


def one_attempt_client(process: ServerProcess) -> Any:
    return boto3.client("dynamodb", endpoint_url=process.endpoint, region_name="us-east-1",
                        aws_access_key_id="AKIDTEST", aws_secret_access_key="secret",
                        config=Config(retries={"total_max_attempts": 1}, read_timeout=30,
                                      connect_timeout=5))


def _expected(writer: int, step: int) -> dict[str, Any]:
    """What one writer's step `step` leaves of its item: puts, puts that move the item in
    the indexes, deletes (an empty dict)."""
    key = {"pk": {"S": f"w{writer}-{step % 7}"}, "sk": {"S": f"{step % 5}"}}
    kind = step % 4
    if kind == 3:
        return {}
    item = {**key, "n": {"N": str(step)}, "x": {"S": f"x{step}"}}
    if kind == 1:
        item["s"] = {"S": f"s{step % 3}"}
    if kind == 2:
        item["b"] = {"B": bytes([step % 256])}
    return item


def _write(client: Any, table: str, writer: int, step: int) -> dict[str, Any]:
    item = _expected(writer, step)
    if item:
        client.put_item(TableName=table, Item=item)
    else:
        client.delete_item(TableName=table, Key={"pk": {"S": f"w{writer}-{step % 7}"},
                                                 "sk": {"S": f"{step % 5}"}})
    return item


def test_kill_9_keeps_indexes_consistent_with_their_table(tmp_path: Any) -> None:
    data_dir = str(tmp_path)
    server = ServerProcess(data_dir).start()
    acked: dict[str, dict] = {}
    unknown: dict[str, list[dict]] = {}
    lock = threading.Lock()
    stop = threading.Event()
    try:
        client = server.client()
        table = create_lsi_table(client, "durable")

        def writer(number: int) -> None:
            own = one_attempt_client(server)
            step = 0
            while not stop.is_set():
                key = f"w{number}-{step % 7}|{step % 5}"
                try:
                    item = _write(own, table, number, step)
                except Exception:
                    with lock:   # in flight at the kill: either outcome is fine
                        unknown.setdefault(key, []).append(_expected(number, step))
                    return
                with lock:
                    acked[key] = item
                    unknown.pop(key, None)
                step += 1

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        time.sleep(3.0)
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert len(acked) >= 20, len(acked)
        server = ServerProcess(data_dir, port=server.port).start()
        client = server.client()
        items = _retry(lambda: scan_all(client, TableName=table, ConsistentRead=True))
        found = {f"{i['pk']['S']}|{i['sk']['S']}": i for i in items}
        for key, item in acked.items():
            allowed = [item] + unknown.get(key, [])
            assert found.get(key, {}) in allowed, (key, found.get(key), allowed)
        counts = check_through_api(client, table)
        assert counts["by_n"] == len(items)
        # And the index keeps working after the restart.
        client.put_item(TableName=table, Item={"pk": {"S": "after"}, "sk": {"S": "1"},
                                               "n": {"N": "1"}})
        assert client.query(TableName=table, IndexName="by_n", ConsistentRead=True,
                            KeyConditionExpression="pk = :p",
                            ExpressionAttributeValues={":p": {"S": "after"}})["Count"] == 1
    finally:
        stop.set()
        server.stop()
    assert check_on_disk(data_dir, "durable") == 3


def _partitions(data_dir: str, table: str) -> int:
    with open(os.path.join(data_dir, "node-1", "catalog.json")) as file:
        tables = json.load(file)["tables"]
    return len(next(t for t in tables if t["name"] == table)["partitions"])


def test_local_indexes_go_with_their_items_through_splits(tmp_path: Any) -> None:
    data_dir = str(tmp_path)
    server = ServerProcess(data_dir, "--split-size-bytes", "60000").start()
    try:
        client = server.client()
        table = create_lsi_table(client, "splitting")
        pad = "p" * 900
        errors: list[str] = []

        def writer(number: int) -> None:
            own = one_attempt_client(server)
            for i in range(90):
                item = {"pk": {"S": f"k{number}-{i % 30}"}, "sk": {"S": f"{i // 30}"},
                        "n": {"N": str(i)}, "x": {"S": pad}}
                if i % 2:
                    item["s"] = {"S": f"v{i % 4}"}
                try:
                    own.put_item(TableName=table, Item=item)
                except Exception as error:  # noqa: BLE001 (reported below)
                    errors.append(repr(error))

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        deadline = time.monotonic() + 30.0
        while _partitions(data_dir, table) < 3:
            assert time.monotonic() < deadline, "the table did not split"
            time.sleep(0.2)
        items = scan_all(client, TableName=table, ConsistentRead=True)
        assert len(items) == WRITERS * 90
        counts = check_through_api(client, table)
        assert counts == {"by_n": 270, "by_s": 135, "by_b": 0}
        # Every partition key's Query of an index answers from its own partition.
        for number in range(WRITERS):
            for i in range(30):
                answer = client.query(TableName=table, IndexName="by_n", ConsistentRead=True,
                                      KeyConditionExpression="pk = :p",
                                      ExpressionAttributeValues={":p": {"S": f"k{number}-{i}"}})
                assert [int(item["n"]["N"]) for item in answer["Items"]] == [i, i + 30, i + 60]
        segments = [scan_all(client, TableName=table, IndexName="by_s", Segment=s,
                             TotalSegments=4, Limit=7) for s in range(4)]
        assert sum(len(s) for s in segments) == 135
    finally:
        server.stop()
    assert check_on_disk(data_dir, "splitting") >= 9


def _replica_dirs(data_dir: str, table: str) -> list[str]:
    """The table's own replicas (not its global index's index table's)."""
    table_id = table_info(data_dir, table).table_id
    return sorted(glob.glob(os.path.join(data_dir, "node-*", "tables", table_id, "*", "replica")))


def test_a_replica_rebuilt_from_its_peers_has_its_local_indexes(tmp_path: Any) -> None:
    data_dir = str(tmp_path)
    server = ServerProcess(data_dir).start()
    try:
        client = server.client()
        table = create_lsi_table(client, "rebuilt")
        for step in range(120):
            _write(client, table, 0, step)
    finally:
        server.kill()
    damaged = _replica_dirs(data_dir, table)[1]
    for path in glob.glob(os.path.join(damaged, "items", "*.mdb")):
        os.remove(path)
    server = ServerProcess(data_dir).start()
    try:
        client = server.client()
        _retry(lambda: client.put_item(TableName=table, Item={
            "pk": {"S": "new"}, "sk": {"S": "1"}, "n": {"N": "1"}, "s": {"S": "z"}}))
        check_through_api(client, table)
        deadline = time.monotonic() + CONVERGE_S_MAX
        while not glob.glob(os.path.join(os.path.dirname(damaged), "replica.corrupt-*")):
            assert time.monotonic() < deadline, "the damaged replica was not rebuilt"
            time.sleep(0.2)
        _wait_applied_everywhere(data_dir, client, table)
    finally:
        server.stop()
    assert check_on_disk(data_dir, "rebuilt") == 3


def _wait_applied_everywhere(data_dir: str, client: Any, table: str) -> None:
    """Until the three replicas hold the same applied index (checked with the server up,
    through their files)."""
    from triplica.storage.lmdb_store import PartitionStore
    deadline = time.monotonic() + CONVERGE_S_MAX
    while True:
        applied = set()
        try:
            for replica in _replica_dirs(data_dir, table):
                with PartitionStore(os.path.join(replica, "items")) as store:
                    applied.add(store.applied_index())
        except Exception:  # noqa: BLE001 (a store being swapped in by an install)
            applied = {-1, -2}
        if len(applied) == 1:
            return
        assert time.monotonic() < deadline, f"replicas did not converge: {applied}"
        time.sleep(0.2)


def test_a_replica_caught_up_by_an_lmdb_image_carries_the_indexes(tmp_path: Any) -> None:
    """In process, with logs compacted every 25 entries: the replica whose store was
    deleted is rebuilt from an image of the leader's LMDB environment, index databases
    included; it then applies later entries to them like the others."""
    from tests.unit.group_harness import LocalGroup
    from tests.unit.test_local_indexes import INFO, _item, _put
    from triplica.engine.local_index_check import check_store
    from triplica.engine.local_indexes import LocalIndexer

    indexer = LocalIndexer(INFO)

    async def first_life() -> None:
        group = await LocalGroup(str(tmp_path), compact_entries=25, indexer=indexer).start()
        for i in range(100):
            await group.propose([_put(_item(f"p{i % 9}", str(i), n={"N": str(i % 13)},
                                            s={"S": str(i % 3)}))])
        await group.close()

    async def second_life() -> None:
        group = LocalGroup(str(tmp_path), compact_entries=25, indexer=indexer)
        await group.start()
        try:
            await group.propose([_put(_item("late", "1", n={"N": "1"}))])
            deadline = time.monotonic() + CONVERGE_S_MAX
            while True:
                drivers = [d for d in group.drivers.values() if d is not None]
                indexes = {repr([list(d.store.scan_index("by_n", b"", None)) for _ in (0,)])
                           for d in drivers}
                if len(drivers) == 3 and len(indexes) == 1 and \
                        len({d.store.applied_index() for d in drivers}) == 1:
                    break
                assert time.monotonic() < deadline, "the rebuilt replica did not catch up"
                await asyncio.sleep(0.02)
            for driver in drivers:
                assert check_store(driver.store, INFO) == []
                assert driver.store.index_stats("by_n")[0] == 101
        finally:
            await group.close()

    asyncio.run(first_life())
    replica = os.path.join(str(tmp_path), "node-2", "replica")
    for path in glob.glob(os.path.join(replica, "items", "*.mdb")):
        os.remove(path)
    asyncio.run(second_life())
    assert glob.glob(os.path.join(str(tmp_path), "node-2", "replica.corrupt-*"))
