"""A cluster node whose replica is damaged heals it from its peers.

Real processes over real sockets (`triplica cluster up` through the
fixture of test_cluster.py): write through the router, SIGKILL node 1,
damage its replica on disk (a flipped bit in its Paxos log, or the whole
replica directory deleted), restart it. It must start, quarantine the
damaged directory (`replica.corrupt-<time>`, when there is one), rebuild
from the bound its two peers give it, catch up, and vote again: after one
of the OTHER two nodes is killed, strongly consistent reads and writes keep
working on node 1 plus the last one. With two members damaged, nothing is
moved and both nodes log why.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import time
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError

from tests.integration import test_cluster
from tests.integration.test_cluster import Cluster, _client, _key, _make_table, _query_all
from tests.integration.test_replicated_heal import _flip_bit_in_log, _retry
from triplica.cluster.local import POLL_S, _alive, running_pids, start_node, wait_ready

cluster = test_cluster.cluster  # the fixture: a running cluster, stopped by PID afterwards

TABLE = "ledger"  # the table and hash key _query_all reads
PK = "w"
ITEMS = 100
AFTER_REBUILD = range(1000, 1020)  # sort keys written once node 1 is rebuilt
AFTER_KILL = range(2000, 2010)  # ... and once another node is killed
STOP_S_MAX = 10.0
HEAL_S_MAX = 20.0
QUORUM_S_MAX = 20.0
REPAIR_WAIT_S = 4.0  # the refusing test's nodes give up on their peers after this


def _until(check: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll `check` until it returns something truthy (an exception counts as not yet)."""
    def checked() -> Any:
        result = check()
        assert result, f"still waiting for {what}"
        return result
    return _retry(checked, seconds)


def _partition_dir(cluster: Cluster, node: int) -> str:
    [path] = glob.glob(os.path.join(cluster.data_dir, f"node-{node}", "tables", "*", "*"))
    return path


def _populate(cluster: Cluster) -> Any:
    ddb = _client(cluster.endpoint)
    _make_table(ddb, TABLE)
    for sk in range(ITEMS):
        ddb.put_item(TableName=TABLE, Item={**_key(PK, sk), "n": {"N": str(sk)}})
    return ddb


def _kill(cluster: Cluster, node: int) -> None:
    pid = running_pids(cluster.data_dir)[f"node-{node}"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_S_MAX
    while _alive(pid):
        assert time.monotonic() < deadline, f"node {node} (pid {pid}) did not die"
        time.sleep(POLL_S)


def _restart(cluster: Cluster, node: int) -> Any:
    start_node(cluster.data_dir, node)
    wait_ready(f"http://127.0.0.1:{cluster.base_port + node}", cluster.data_dir)
    return cluster.node_client(node)


def _log(cluster: Cluster, node: int) -> str:
    with open(os.path.join(cluster.data_dir, f"node-{node}.log")) as file:
        return file.read()


def _damage(kind: str, replica: str) -> None:
    if kind == "flipped bit in the log":
        _flip_bit_in_log(replica)
    else:
        shutil.rmtree(replica)


@pytest.mark.parametrize("damage", ["flipped bit in the log", "deleted replica directory"])
def test_damaged_replica_heals_from_its_peers_and_votes_again(cluster: Cluster,
                                                              damage: str) -> None:
    ddb = _populate(cluster)
    _kill(cluster, 1)
    partition = _partition_dir(cluster, 1)
    _damage(damage, os.path.join(partition, "replica"))

    node = _restart(cluster, 1)
    _until(lambda: "rebuilt empty" in _log(cluster, 1), HEAL_S_MAX, "node 1 to rebuild")
    quarantined = glob.glob(os.path.join(partition, "replica.corrupt-*"))
    assert len(quarantined) == (1 if damage == "flipped bit in the log" else 0), quarantined
    acknowledged = set(range(ITEMS))
    assert _query_all(ddb, consistent=True) == acknowledged
    for sk in AFTER_REBUILD:  # proposed after the rebuild, so above its repair marker
        ddb.put_item(TableName=TABLE, Item={**_key(PK, sk), "n": {"N": "1"}})
    acknowledged |= set(AFTER_REBUILD)
    # Node 1's own applied state holds everything: it caught up, and having
    # applied entries past its marker it left repair mode (it votes again).
    _until(lambda: _query_all(node, consistent=False) == acknowledged, HEAL_S_MAX,
           "node 1 to catch up")

    leader = cluster.leader(TABLE, _key(PK, 0))
    assert leader is not None
    other = leader if leader != 1 else 2
    _kill(cluster, other)  # node 1 and the last node must now form every quorum
    first, *rest = AFTER_KILL
    _until(lambda: ddb.put_item(TableName=TABLE, Item={**_key(PK, first), "n": {"N": "1"}}),
           QUORUM_S_MAX, "a write with node 1 and one other node")
    for sk in rest:
        ddb.put_item(TableName=TABLE, Item={**_key(PK, sk), "n": {"N": "1"}})
    acknowledged |= set(AFTER_KILL)
    got = ddb.get_item(TableName=TABLE, Key=_key(PK, ITEMS - 1), ConsistentRead=True)
    assert got["Item"]["n"] == {"N": str(ITEMS - 1)}
    assert _query_all(ddb, consistent=True) == acknowledged


def _short_repair_wait(cluster: Cluster, node: int) -> None:
    path = os.path.join(cluster.data_dir, f"node-{node}.json")
    with open(path) as file:
        config = json.load(file)
    config["repair_wait_s"] = REPAIR_WAIT_S
    with open(path, "w") as file:
        json.dump(config, file)


def _tree(path: str) -> dict[str, bytes]:
    files = {}
    for root, _, names in os.walk(path):
        for name in names:
            with open(os.path.join(root, name), "rb") as file:
                files[os.path.relpath(os.path.join(root, name), path)] = file.read()
    return files


def test_two_damaged_members_move_nothing_and_say_why(cluster: Cluster) -> None:
    _populate(cluster)
    for node in (1, 2):
        _kill(cluster, node)
        _short_repair_wait(cluster, node)
    flipped, deleted = _partition_dir(cluster, 1), _partition_dir(cluster, 2)
    _flip_bit_in_log(os.path.join(flipped, "replica"))
    shutil.rmtree(os.path.join(deleted, "replica"))
    before = {path: _tree(path) for path in (flipped, deleted)}

    for node in (1, 2):
        start_node(cluster.data_dir, node)

    def gave_up(node: int) -> bool:
        return "is damaged and stays unopened" in _log(cluster, node)

    _until(lambda: gave_up(1) and gave_up(2), REPAIR_WAIT_S + HEAL_S_MAX, "both nodes to give up")
    for node, peer in ((1, 2), (2, 1)):
        text = _log(cluster, node)
        assert f"node {peer}: unavailable: its own replica is damaged" in text, text
        assert "no files were moved" in text
        wait_ready(f"http://127.0.0.1:{cluster.base_port + node}", cluster.data_dir)
    assert {path: _tree(path) for path in (flipped, deleted)} == before, "files were moved"
    assert not os.path.exists(os.path.join(deleted, "replica"))
    with pytest.raises(ClientError) as caught:  # the unopened replica redirects everything
        cluster.node_client(1).get_item(TableName=TABLE, Key=_key(PK, 0))
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 421
