"""The metadata system of a real cluster: the catalogue in its own Paxos group.

Table operations go through the router to the control plane on the metadata
group's leader, are committed to the metadata log and applied by every
node. These tests kill nodes with SIGKILL: a node down while tables are
created and deleted catches up when it restarts; killing the metadata
leader leaves a working control plane (two of three metadata replicas).
"""
from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from triplica.cluster.local import MEMDS_PORT_OFFSET, start_node, wait_ready
from triplica.memds.client import MemdsClient

from tests.integration.test_cluster import (NODES, Cluster, _client, _key, _make_table,  # noqa: F401
                                            cluster)

CATCH_UP_S_MAX = 20.0


def _metadata_leader(cluster: Cluster) -> int | None:
    """The node whose control plane answers (the others redirect with 421)."""
    for node in range(1, NODES + 1):
        try:
            cluster.node_client(node).update_table(TableName="no-such-table",
                                                   BillingMode="PAY_PER_REQUEST")
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                return node
        except Exception:  # down
            continue
    return None


def _eventually(check: Any, timeout_s: float = CATCH_UP_S_MAX) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception:
            if time.monotonic() >= deadline:
                raise
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_every_node_has_the_table_when_create_answers(cluster: Cluster) -> None:
    ddb = _client(cluster.endpoint)
    created = ddb.create_table(
        TableName="capacity", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 10, "WriteCapacityUnits": 2500})
    assert created["TableDescription"]["TableStatus"] == "CREATING"
    for node in range(1, NODES + 1):  # no lag: the control plane published before answering
        table = cluster.node_client(node).describe_table(TableName="capacity")["Table"]
        assert table["TableStatus"] == "ACTIVE"
        assert table["TableId"] == created["TableDescription"]["TableId"]
    with pytest.raises(ClientError) as caught:  # DynamoDB's errors from the control plane
        ddb.create_table(TableName="capacity", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    assert caught.value.response["Error"]["Code"] == "ResourceInUseException"
    with pytest.raises(ClientError) as caught:
        ddb.create_table(TableName="x", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert ddb.list_tables()["TableNames"] == ["capacity"]
    ddb.update_table(TableName="capacity",
                     ProvisionedThroughput={"ReadCapacityUnits": 20, "WriteCapacityUnits": 2500})
    ddb.tag_resource(ResourceArn=created["TableDescription"]["TableArn"],
                     Tags=[{"Key": "team", "Value": "blue"}])
    for node in range(1, NODES + 1):
        client = cluster.node_client(node)
        table = client.describe_table(TableName="capacity")["Table"]
        assert table["ProvisionedThroughput"]["ReadCapacityUnits"] == 20
        tags = client.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]
        assert tags == [{"Key": "team", "Value": "blue"}]
    for i in range(30):
        ddb.put_item(TableName="capacity", Item={"pk": {"S": f"k{i}"}})
    assert ddb.scan(TableName="capacity", ConsistentRead=True)["Count"] == 30
    # MemDS holds the map at the table's latest epoch, with the leaders the nodes reported.
    answer = _eventually(lambda: _memds_table(cluster, "capacity", with_leaders=3))
    assert answer.map.partition_count == 3
    for group, leader in answer.leaders.items():
        assert leader in answer.map.members[answer.map.groups.index(group)]


def _memds_table(cluster: Cluster, table: str, with_leaders: int) -> Any:
    async def ask() -> Any:
        client = MemdsClient([("127.0.0.1", cluster.base_port + MEMDS_PORT_OFFSET + 1)])
        try:
            return await client.table(table)
        finally:
            await client.close()
    answer = asyncio.run(ask())
    return answer if answer.map is not None and len(answer.leaders) >= with_leaders else None


def test_a_node_down_during_create_and_delete_catches_up(cluster: Cluster) -> None:
    ddb = _client(cluster.endpoint)
    _make_table(ddb, "doomed")
    leader = _metadata_leader(cluster)
    assert leader is not None
    absent = next(n for n in range(1, NODES + 1) if n != leader)
    os.kill(cluster.pids_started[f"node-{absent}"], signal.SIGKILL)
    _make_table(ddb, "born")  # while `absent` is down: its copy of the catalogue misses both
    for sk in range(20):
        ddb.put_item(TableName="born", Item=_key("p", sk))
    ddb.delete_table(TableName="doomed")
    assert sorted(ddb.list_tables()["TableNames"]) == ["born"]
    start_node(cluster.data_dir, absent)
    wait_ready(f"http://127.0.0.1:{cluster.base_port + absent}", cluster.data_dir)
    node = cluster.node_client(absent)
    _eventually(lambda: node.list_tables()["TableNames"] == ["born"])
    assert node.describe_table(TableName="born")["Table"]["TableStatus"] == "ACTIVE"
    # its replica of the new table's group caught up too (eventual reads are local)
    _eventually(lambda: node.scan(TableName="born")["Count"] == 20)
    assert not os.path.exists(os.path.join(cluster.data_dir, f"node-{absent}", "tables",
                                           "doomed"))


def test_killing_the_metadata_leader_keeps_the_control_plane(cluster: Cluster) -> None:
    ddb = _client(cluster.endpoint)
    _make_table(ddb, "before")
    leader = _metadata_leader(cluster)
    assert leader is not None
    os.kill(cluster.pids_started[f"node-{leader}"], signal.SIGKILL)
    started = time.monotonic()
    _make_table(ddb, "after")  # the router follows redirects to the new leader
    assert time.monotonic() - started < 15
    new_leader = _metadata_leader(cluster)
    assert new_leader is not None and new_leader != leader
    ddb.put_item(TableName="after", Item=_key("a", 1))
    assert ddb.get_item(TableName="after", Key=_key("a", 1), ConsistentRead=True)["Item"]
    ddb.delete_table(TableName="before")
    assert ddb.list_tables()["TableNames"] == ["after"]
    start_node(cluster.data_dir, leader)  # the old leader comes back as a follower
    wait_ready(f"http://127.0.0.1:{cluster.base_port + leader}", cluster.data_dir)
    node = cluster.node_client(leader)
    _eventually(lambda: node.list_tables()["TableNames"] == ["after"])
