"""The control plane moves replicas off a drained node and off a dead one (issue 4).

Each test starts a six-node cluster (two nodes in each of three AZs, so a
group has somewhere to go: a log replica on one node outside it, the full
replacement on the other node of the leaving member's AZ), creates a table
of three partitions through the router, writes to it while replicas move,
and stops the cluster afterwards.

- `triplica node drain`: every replica leaves the node (none of the table's
  partitions lists it, its replica directories are gone), no write fails,
  every item is readable, and the drained node can then be killed with no
  effect on reads or writes;
- draining the node that leads the metadata group moves the metadata
  group's replica too (recorded in every catalogue); killing that node and
  one more of the group's first members leaves table operations working;
- a node killed with SIGKILL: after `replace_after_s` its replicas are
  replaced (log replica first, then a full copy, as the mover's log says),
  no acknowledged write is lost, every partition is writable, and the node,
  restarted, drops the replicas it no longer holds.
"""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import pytest

from tests.integration.test_cluster import _free_base_port
from tests.integration.test_cluster_partitions import _client
from triplica.engine.node_config import load_node_config
from triplica.metadata.placement import placement
from triplica.cluster.drain import _call, drain
from triplica.cluster.local import cluster_down, cluster_up, running_pids, start_node
from triplica.metadata.metadata_replica import METADATA_GROUP
from triplica.common.internal import PARTITION_MAP_TARGET

NODES = 6
ITEMS = 150
MOVE_WAIT_S = 90.0
REPLACE_AFTER_S = 2.0


class MoveCluster:
    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.base_port = _free_base_port(NODES)
        self.endpoint = cluster_up(data_dir, nodes=NODES, azs=3, base_port=self.base_port,
                                   replace_after_s=REPLACE_AFTER_S)[0]
        self.ddb = _client(self.endpoint, attempts=3)

    def members(self, table: str) -> list[list[int]]:
        return [p["members"] for p in
                _call(self.endpoint, PARTITION_MAP_TARGET, {"TableName": table})["partitions"]]

    def kill(self, node: int) -> None:
        with open(os.path.join(self.data_dir, f"node-{node}.pid")) as file:
            os.kill(int(file.read()), signal.SIGKILL)

    def replica_dirs(self, node: int) -> list[str]:
        return glob.glob(os.path.join(self.data_dir, f"node-{node}", "tables", "*", "*",
                                      "replica"))


@pytest.fixture
def cluster(tmp_path: Any, monkeypatch: Any) -> Iterator[MoveCluster]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    started = MoveCluster(str(tmp_path / "cluster"))
    try:
        yield started
    finally:
        cluster_down(started.data_dir)
        assert not running_pids(started.data_dir)


def _item(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"item-{i}"}, "v": {"S": f"value-{i}"}}


def _create(cluster: MoveCluster, name: str) -> None:
    cluster.ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                             AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                             ProvisionedThroughput={"ReadCapacityUnits": 10,
                                                    "WriteCapacityUnits": 3000})
    for i in range(ITEMS):
        cluster.ddb.put_item(TableName=name, Item=_item(i))


class Writer:
    """Writes items ITEMS, ITEMS+1, ... until stopped; records what was acknowledged."""

    def __init__(self, endpoint: str, table: str) -> None:
        self.ddb = _client(endpoint, attempts=3)
        self.table = table
        self.acknowledged: list[int] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = ITEMS
        while not self._stop.is_set() and i < ITEMS + 20_000:
            try:
                self.ddb.put_item(TableName=self.table, Item=_item(i))
                self.acknowledged.append(i)
            except Exception as error:  # counted; the tests bound them
                self.errors.append(str(error))
            i += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive()


def _check_items(cluster: MoveCluster, table: str, expected: list[int]) -> None:
    for i in expected:
        got = cluster.ddb.get_item(TableName=table, Key={"pk": {"S": f"item-{i}"}},
                                   ConsistentRead=True)
        assert got.get("Item") == _item(i), i


def _busiest_node(cluster: MoveCluster, table: str) -> int:
    counts: dict[int, int] = {}
    for members in cluster.members(table):
        for member in members:
            counts[member] = counts.get(member, 0) + 1
    return max(sorted(counts), key=lambda n: counts[n])


def _wait_gone(cluster: MoveCluster, table: str, node: int) -> list[list[int]]:
    deadline = time.monotonic() + MOVE_WAIT_S
    members = cluster.members(table)
    while any(node in m for m in members) and time.monotonic() < deadline:
        time.sleep(0.5)
        members = cluster.members(table)
    return members


def test_drain_moves_every_replica_off_a_node(cluster: MoveCluster) -> None:
    _create(cluster, "drained")
    node = _busiest_node(cluster, "drained")
    zone = lambda n: (n - 1) % 3  # noqa: E731 - cluster up's AZ of node n
    writer = Writer(cluster.endpoint, "drained")
    result = subprocess.run([sys.executable, "-m", "triplica.cli", "node", "drain",
                             "--endpoint", cluster.endpoint, "--node", str(node),
                             "--wait", str(MOVE_WAIT_S)],
                            capture_output=True, text=True, timeout=MOVE_WAIT_S + 30)
    writer.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"node {node}: 0 replicas left" in result.stdout
    members = cluster.members("drained")
    for group in members:
        assert node not in group and len(group) == 3
        assert sorted(zone(m) for m in group) == [0, 1, 2]  # still one replica per AZ
    assert writer.errors == []
    _check_items(cluster, "drained", list(range(ITEMS)) + writer.acknowledged)
    deadline = time.monotonic() + MOVE_WAIT_S
    while cluster.replica_dirs(node) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.replica_dirs(node) == []
    # Drained: powering it off changes nothing for the table.
    cluster.kill(node)
    for i in range(ITEMS, ITEMS + 30):
        cluster.ddb.put_item(TableName="drained", Item=_item(i))
    _check_items(cluster, "drained", list(range(ITEMS + 30)))


def test_a_dead_nodes_replicas_are_replaced(cluster: MoveCluster) -> None:
    _create(cluster, "orphaned")
    node = _busiest_node(cluster, "orphaned")
    writer = Writer(cluster.endpoint, "orphaned")
    time.sleep(0.5)
    cluster.kill(node)
    members = _wait_gone(cluster, "orphaned", node)
    writer.stop()
    assert all(node not in group and len(group) == 3 for group in members), members
    assert len(writer.errors) <= 3, writer.errors[:3]  # writes in flight at the kill
    _check_items(cluster, "orphaned", list(range(ITEMS)) + writer.acknowledged)
    logs = "".join(open(path).read() for path in
                   glob.glob(os.path.join(cluster.data_dir, "node-*.log")))
    assert "adding a log replica" in logs and "adding a full replica" in logs
    for i in range(ITEMS + 20_000, ITEMS + 20_030):  # every partition takes writes
        cluster.ddb.put_item(TableName="orphaned", Item=_item(i))
    # The node comes back: it learns it holds none of these replicas any more.
    start_node(cluster.data_dir, node)
    deadline = time.monotonic() + MOVE_WAIT_S
    while cluster.replica_dirs(node) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.replica_dirs(node) == []


def _catalogue(cluster: MoveCluster, node: int) -> dict[str, Any]:
    with open(os.path.join(cluster.data_dir, f"node-{node}", "catalog.json")) as file:
        return json.load(file)


def _metadata_leader(cluster: MoveCluster) -> int:
    """The node whose control plane answers (the others redirect with 421)."""
    for node in range(1, NODES + 1):
        try:
            _client(f"http://127.0.0.1:{cluster.base_port + node}").update_table(
                TableName="no-such-table", BillingMode="PAY_PER_REQUEST")
        except Exception as error:
            if "ResourceNotFoundException" in str(error):
                return node
    raise AssertionError("no metadata leader")


def test_draining_the_metadata_leader_moves_the_metadata_group(cluster: MoveCluster) -> None:
    """The catalogue must outlive its nodes: drain the node leading the metadata group,
    then kill it and one more of the original members; table operations still work."""
    _create(cluster, "first")
    leader = _metadata_leader(cluster)
    original = placement(load_node_config(os.path.join(cluster.data_dir, f"node-{leader}.json"))
                         .nodes, METADATA_GROUP)
    assert leader in original
    left = drain(cluster.endpoint, leader, MOVE_WAIT_S)
    assert left == 0
    other = next(n for n in range(1, NODES + 1) if n != leader)
    deadline = time.monotonic() + MOVE_WAIT_S
    while leader in (_catalogue(cluster, other)["metadata_members"] or original) and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    members = _catalogue(cluster, other)["metadata_members"]
    assert members and leader not in members and len(members) == 3, members
    assert sorted((m - 1) % 3 for m in members) == [0, 1, 2]
    while os.path.exists(os.path.join(cluster.data_dir, f"node-{leader}", "metadata")) and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    assert not os.path.exists(os.path.join(cluster.data_dir, f"node-{leader}", "metadata"))
    # Lose the drained node and one more of the first metadata members: two of the
    # group's three replicas remain, so the control plane still works.
    cluster.kill(leader)
    cluster.kill(next(m for m in original if m != leader and m in members))
    # Once the control plane has seen them silent, a new table is not placed on them.
    time.sleep(REPLACE_AFTER_S)
    cluster.ddb.create_table(TableName="second",
                             KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                             AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                             BillingMode="PAY_PER_REQUEST")
    cluster.ddb.put_item(TableName="second", Item=_item(1))
    assert cluster.ddb.get_item(TableName="second", Key={"pk": {"S": "item-1"}},
                                ConsistentRead=True)["Item"] == _item(1)
    cluster.ddb.delete_table(TableName="first")
