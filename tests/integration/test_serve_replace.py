"""`triplica serve` (three nodes) replaces a stopped replica on the same node.

A replica stopped as a disk failure would (the `Triplica.StopReplica` fault
injection) is reported down by its node; after `--replace-after` seconds
the metadata leader's mover replaces it. A three-node deployment has no
other node in that AZ, so the new replica lives on the same node with the
next generation of replica id (common/replica_ids.py): the partition map
then names replica `node + 1024 * generation`, the old replica's files are
gone and the new one's are in `r<generation>/`. Writes go on throughout,
nothing acknowledged is lost, and the new replica is a full voting copy:
with a second node's replica then stopped, the group still writes and
serves strongly consistent reads (a majority of the new and the third).
Then kill -9 and restart: every item is there, the members as recorded.
"""
from __future__ import annotations

import glob
import os
import time
import urllib.error
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.integration.server import ServerProcess
from triplica.cluster.drain import _call, replicas_on
from triplica.common.internal import PARTITION_MAP_TARGET, STOP_REPLICA_TARGET
from triplica.common.replica_ids import generation_of, node_of

REPLACE_AFTER_S = 1.0
REPLACED_S_MAX = 60.0
TABLE = "replaced"


def _client(server: ServerProcess) -> Any:
    """A client that retries like an application's (a write may meet a leader change)."""
    return boto3.client("dynamodb", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id="AKIDTEST", aws_secret_access_key="secret",
                        config=Config(retries={"max_attempts": 5, "mode": "standard"},
                                      connect_timeout=5, read_timeout=30))


def _members(endpoint: str) -> list[int]:
    [partition] = _call(endpoint, PARTITION_MAP_TARGET, {"TableName": TABLE})["partitions"]
    return [int(m) for m in partition["members"]]


def _put_until(client: Any, written: list[str], done: Any, seconds: float) -> None:
    """Write items one by one until `done()` or `seconds` pass; record the acknowledged."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        key = f"k{len(written):05d}"
        client.put_item(TableName=TABLE, Item={"pk": {"S": key}, "v": {"N": str(len(written))}})
        written.append(key)
        time.sleep(0.02)


def _check_all(client: Any, written: list[str]) -> None:
    for index, key in enumerate(written):
        item = client.get_item(TableName=TABLE, Key={"pk": {"S": key}},
                               ConsistentRead=True).get("Item")
        assert item == {"pk": {"S": key}, "v": {"N": str(index)}}, key


@pytest.fixture
def server(tmp_path: Any, monkeypatch: Any) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    started = ServerProcess(str(tmp_path / "data"), "--replace-after",
                            str(REPLACE_AFTER_S)).start()
    try:
        yield started
    finally:
        started.kill()


def test_a_stopped_replica_is_replaced_on_its_own_node(server: ServerProcess) -> None:
    client = _client(server)
    client.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        BillingMode="PAY_PER_REQUEST")
    client.get_waiter("table_exists").wait(TableName=TABLE,
                                           WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    written: list[str] = []
    _put_until(client, written, lambda: len(written) >= 50, 30.0)
    assert sorted(node_of(m) for m in _members(server.endpoint)) == [1, 2, 3]

    # Malformed fault requests are a 400 with DynamoDB's error types, and stop nothing.
    for body, error in [({}, "ValidationException"), ({"Node": "2"}, "ValidationException"),
                        ({"Node": 2**70, "TableName": TABLE}, "ValidationException"),
                        ({"Node": 9, "TableName": TABLE}, "ValidationException"),
                        ({"Node": 2, "TableName": ["x"]}, "ResourceNotFoundException"),
                        ({"Node": 2, "TableName": "nope"}, "ResourceNotFoundException")]:
        with pytest.raises(urllib.error.HTTPError) as raised:
            _call(server.endpoint, STOP_REPLICA_TARGET, body)
        assert raised.value.code == 400 and error in raised.value.read().decode(), body
    assert sorted(_members(server.endpoint)) == [1, 2, 3]

    stopped = _call(server.endpoint, STOP_REPLICA_TARGET, {"TableName": TABLE, "Node": 2})
    assert stopped == {"Stopped": [2]}

    def replaced() -> bool:
        return any(node_of(m) == 2 and generation_of(m) > 0 for m in _members(server.endpoint))
    _put_until(client, written, replaced, REPLACED_S_MAX)
    members = _members(server.endpoint)
    assert replaced(), f"no replacement in {REPLACED_S_MAX} s: members {members}"
    [new] = [m for m in members if node_of(m) == 2]
    assert sorted(members) == sorted([1, 3, new]) and generation_of(new) >= 1
    assert replicas_on(server.endpoint, 2) == 1  # what `node drain` counts: by node
    _check_all(client, written)

    # The old replica's files go once the move is recorded; the new one has its own home.
    [partition_dir] = glob.glob(os.path.join(server.data_dir, "node-2", "tables", "*", "*"))
    deadline = time.monotonic() + 10.0
    while os.path.exists(os.path.join(partition_dir, "replica")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(os.path.join(partition_dir, "replica"))
    assert os.path.isdir(os.path.join(partition_dir, f"r{generation_of(new)}", "replica"))

    # The new replica votes: with node 1's replica stopped too, node 2's new one and
    # node 3's are the majority that writes and reads.
    count = len(written)
    assert _call(server.endpoint, STOP_REPLICA_TARGET,
                 {"TableName": TABLE, "Node": 1}) == {"Stopped": [1]}
    _put_until(client, written, lambda: len(written) >= count + 20, 30.0)
    assert len(written) == count + 20
    _check_all(client, written)

    server.kill()
    server.start()
    client = _client(server)
    _check_all(client, written)
    assert new in _members(server.endpoint)
