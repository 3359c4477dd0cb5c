"""`triplica serve --replicas 3`: three replicas per partition in one process.

CRUD, Query and Scan through boto3 (strongly and eventually consistent reads),
and a power-off (SIGKILL) under write load followed by a restart that must
show every acknowledged write.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import pytest

from tests.integration.conftest import make_table
from tests.integration.server import ServerProcess

WRITER_THREADS = 8
WRITES_PER_THREAD_MAX = 5000
LOAD_SECONDS = 2.0


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(str(tmp_path_factory.mktemp("replicated")), "--replicas", "3").start()
    yield process
    process.stop()


def test_crud_and_queries_with_three_replicas(replicated: ServerProcess) -> None:
    ddb = replicated.client()
    table = make_table(ddb)
    for i in range(20):
        ddb.put_item(TableName=table, Item={"pk": {"S": "p"}, "sk": {"S": f"s{i:02d}"}, "n": {"N": str(i)}})
    key = {"pk": {"S": "p"}, "sk": {"S": "s03"}}
    assert ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["n"] == {"N": "3"}
    assert ddb.get_item(TableName=table, Key=key)["Item"]["n"] == {"N": "3"}
    updated = ddb.update_item(TableName=table, Key=key, UpdateExpression="SET n = n + :one",
                              ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="ALL_NEW")
    assert updated["Attributes"]["n"] == {"N": "4"}
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.put_item(TableName=table, Item={"pk": {"S": "p"}, "sk": {"S": "s03"}},
                     ConditionExpression="attribute_not_exists(pk)")
    ddb.delete_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"S": "s00"}})
    for consistent in (True, False):
        page = ddb.query(TableName=table, KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
                         ExpressionAttributeValues={":p": {"S": "p"}, ":a": {"S": "s00"}, ":b": {"S": "s05"}},
                         ConsistentRead=consistent)
        assert [item["sk"]["S"] for item in page["Items"]] == ["s01", "s02", "s03", "s04", "s05"]
        scanned = ddb.scan(TableName=table, ConsistentRead=consistent)
        assert scanned["Count"] == 19
    batch = ddb.batch_get_item(RequestItems={table: {"Keys": [key, {"pk": {"S": "p"}, "sk": {"S": "s09"}}],
                                                     "ConsistentRead": True}})
    assert len(batch["Responses"][table]) == 2
    assert ddb.describe_table(TableName=table)["Table"]["TableName"] == table
    ddb.delete_table(TableName=table)


def _writer(server: ServerProcess, thread: int, acked: list, stop: threading.Event) -> None:
    client = server.client()
    for i in range(WRITES_PER_THREAD_MAX):
        if stop.is_set():
            return
        key = f"t{thread}-{i}"
        try:
            client.put_item(TableName="durable", Item={"pk": {"S": key}, "n": {"N": str(i)}})
        except Exception:  # the server died under us: this write was never acknowledged
            return
        acked.append((key, i))


@pytest.mark.parametrize("sync_mode", ["batch", "none"])
def test_acknowledged_writes_survive_sigkill_with_three_replicas(tmp_path: Any, sync_mode: str) -> None:
    server = ServerProcess(str(tmp_path), "--replicas", "3", "--sync", sync_mode).start()
    try:
        server.client().create_table(
            TableName="durable", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST")
        acked: list[tuple[str, int]] = []
        stop = threading.Event()
        threads = [threading.Thread(target=_writer, args=(server, t, acked, stop))
                   for t in range(WRITER_THREADS)]
        for thread in threads:
            thread.start()
        time.sleep(LOAD_SECONDS)
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert len(acked) > 100, "the load did not get going"
    finally:
        server.kill()
    restarted = ServerProcess(str(tmp_path), "--replicas", "3", "--sync", sync_mode).start()
    try:
        client = restarted.client()
        present: dict[str, str] = {}
        for page in client.get_paginator("scan").paginate(TableName="durable", ConsistentRead=True):
            for item in page["Items"]:
                present[item["pk"]["S"]] = item["n"]["N"]
        missing = [key for key, _ in acked if key not in present]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
        assert all(present[key] == str(i) for key, i in acked)
        client.put_item(TableName="durable", Item={"pk": {"S": "after"}, "n": {"N": "1"}})
        assert client.get_item(TableName="durable", Key={"pk": {"S": "after"}}, ConsistentRead=True)["Item"]
    finally:
        restarted.stop()
