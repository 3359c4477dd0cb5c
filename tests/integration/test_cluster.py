"""A real 3-node cluster (3 AZs) plus a router, as processes on 127.0.0.1.

`triplica cluster up` starts it, boto3 talks only to the router, the
failover test kill -9s the leader's process under a steady writer, measures
the write-unavailability window, checks every acknowledged write, restarts
the node and waits for it to catch up, then `triplica cluster down` must
leave no process behind.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.ports import free_base_port
from triplica.cluster.local import ROUTER_PORT_OFFSET, running_pids

NODES = 3
ROUTERS_MAX_TESTED = 3
MEMDS_SERVERS = 2  # `cluster up`'s default
FAILOVER_S_MAX = 10.0
CATCH_UP_S_MAX = 20.0


def _free_base_port(nodes: int = NODES) -> int:
    return free_base_port(nodes, ROUTERS_MAX_TESTED, MEMDS_SERVERS)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "triplica.cli", *args], capture_output=True,
                          text=True, timeout=60)


def _client(endpoint: str, **config: Any) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="AKIDTEST", aws_secret_access_key="secret",
                        config=Config(**{"retries": {"max_attempts": 1}, "connect_timeout": 5,
                                         "read_timeout": 30, **config}))


class Cluster:
    def __init__(self, data_dir: str, routers: int = 1) -> None:
        assert routers <= ROUTERS_MAX_TESTED
        self.data_dir = data_dir
        self.base_port = _free_base_port()
        up = _cli("cluster", "up", "--nodes", "3", "--azs", "3", "--data-dir", data_dir,
                  "--base-port", str(self.base_port), "--routers", str(routers))
        assert up.returncode == 0, up.stderr
        self.endpoints = up.stdout.strip().splitlines()[-1].split()
        self.endpoint = self.endpoints[0]
        assert self.endpoints == [f"http://127.0.0.1:{self.base_port}"] + [
            f"http://127.0.0.1:{self.base_port + ROUTER_PORT_OFFSET + r}" for r in range(2, routers + 1)]
        self.pids_started = dict(running_pids(data_dir))
        assert sorted(self.pids_started) == [
            "memds-1", "memds-2", "node-1", "node-2", "node-3", "router"] + [
            f"router-{r}" for r in range(2, routers + 1)]

    def node_client(self, node: int) -> Any:
        return _client(f"http://127.0.0.1:{self.base_port + node}")

    def leader(self, table: str, key: dict[str, Any]) -> int | None:
        """The node answering a strong read itself (the others answer 421)."""
        for node in range(1, NODES + 1):
            try:
                self.node_client(node).get_item(TableName=table, Key=key, ConsistentRead=True)
                return node
            except Exception:  # 421 (not the leader) or down
                continue
        return None

    def down(self) -> list[int]:
        pids = list(running_pids(self.data_dir, include_dead=True).values())
        result = _cli("cluster", "down", "--data-dir", self.data_dir)
        assert result.returncode == 0, result.stderr
        return pids


@pytest.fixture
def cluster(tmp_path: Any) -> Iterator[Cluster]:
    cluster = Cluster(str(tmp_path / "cluster"))
    try:
        yield cluster
    finally:
        if running_pids(cluster.data_dir):
            cluster.down()


def _make_table(ddb: Any, name: str) -> None:
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"}])


def _key(pk: str, sk: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}}


def test_item_api_through_the_router(cluster: Cluster) -> None:
    ddb = _client(cluster.endpoint)
    _make_table(ddb, "orders")
    assert ddb.describe_table(TableName="orders")["Table"]["TableStatus"] == "ACTIVE"
    assert ddb.list_tables()["TableNames"] == ["orders"]
    for node in range(1, NODES + 1):  # the broadcast reached every node
        assert cluster.node_client(node).list_tables()["TableNames"] == ["orders"]
    for sk in range(10):
        ddb.put_item(TableName="orders", Item={**_key("a", sk), "n": {"N": str(sk)}})
    got = ddb.get_item(TableName="orders", Key=_key("a", 3), ConsistentRead=True)
    assert got["Item"]["n"] == {"N": "3"}
    ddb.update_item(TableName="orders", Key=_key("a", 3), UpdateExpression="ADD n :one",
                    ExpressionAttributeValues={":one": {"N": "1"}})
    assert ddb.get_item(TableName="orders", Key=_key("a", 3),
                        ConsistentRead=True)["Item"]["n"] == {"N": "4"}
    with pytest.raises(ClientError) as caught:  # errors pass through unchanged
        ddb.put_item(TableName="orders", Item=_key("a", 3),
                     ConditionExpression="attribute_not_exists(pk)")
    assert caught.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    ddb.delete_item(TableName="orders", Key=_key("a", 9))
    query = ddb.query(TableName="orders", KeyConditionExpression="pk = :p AND sk >= :s",
                      ExpressionAttributeValues={":p": {"S": "a"}, ":s": {"N": "5"}},
                      ConsistentRead=True)
    assert [int(i["sk"]["N"]) for i in query["Items"]] == [5, 6, 7, 8]
    ddb.batch_write_item(RequestItems={"orders": [
        {"PutRequest": {"Item": _key("b", sk)}} for sk in range(20)]})
    batch = ddb.batch_get_item(RequestItems={"orders": {
        "Keys": [_key("b", sk) for sk in range(20)], "ConsistentRead": True}})
    assert len(batch["Responses"]["orders"]) == 20
    assert ddb.scan(TableName="orders", ConsistentRead=True)["Count"] == 29
    deadline = time.monotonic() + 5  # eventually consistent reads go to any node
    while ddb.scan(TableName="orders")["Count"] != 29:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ddb.delete_table(TableName="orders")
    assert ddb.list_tables()["TableNames"] == []


class Writer(threading.Thread):
    """Puts sequential items through the router; records acks and their times."""

    def __init__(self, endpoint: str, table: str) -> None:
        super().__init__(daemon=True)
        self.client = _client(endpoint, read_timeout=15)
        self.table = table
        self.acked: list[int] = []
        self.ack_times: list[float] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        sk = 0
        while not self.stop.is_set():
            try:
                self.client.put_item(TableName=self.table, Item=_key("w", sk))
                self.acked.append(sk)
                self.ack_times.append(time.monotonic())
            except Exception:
                self.failures += 1
            sk += 1


def test_leader_kill_failover_restart_and_down(cluster: Cluster) -> None:
    ddb = _client(cluster.endpoint)
    _make_table(ddb, "ledger")
    ddb.put_item(TableName="ledger", Item=_key("w", -1))
    leader = cluster.leader("ledger", _key("w", -1))
    assert leader is not None
    writer = Writer(cluster.endpoint, "ledger")
    writer.start()
    time.sleep(1.0)
    killed_at = time.monotonic()
    os.kill(cluster.pids_started[f"node-{leader}"], signal.SIGKILL)
    while time.monotonic() < killed_at + FAILOVER_S_MAX and \
            not any(t > killed_at + 0.2 for t in writer.ack_times[-3:]):
        time.sleep(0.01)
    time.sleep(1.5)
    writer.stop.set()
    writer.join(timeout=30)
    after_kill = [t for t in writer.ack_times if t > killed_at]
    assert after_kill, "no write succeeded after the leader was killed"
    times = writer.ack_times  # the longest gap between consecutive acks spans the kill
    window_s = max(later - earlier for earlier, later in zip(times, times[1:]))
    print(f"write unavailability after kill -9 of leader node {leader}: {window_s:.3f}s "
          f"({len(writer.acked)} acked, {writer.failures} failed)")
    assert window_s < FAILOVER_S_MAX
    new_leader = cluster.leader("ledger", _key("w", -1))
    assert new_leader is not None and new_leader != leader

    stored = _query_all(ddb, consistent=True)
    missing = set(writer.acked) - stored
    assert not missing, f"acknowledged writes lost: {sorted(missing)[:10]}"

    restarted = _cli("cluster", "start-node", "--data-dir", cluster.data_dir,
                     "--node", str(leader))
    assert restarted.returncode == 0, restarted.stderr
    ddb.put_item(TableName="ledger", Item=_key("w", 10**6))  # written while it was down
    expected = stored | {10**6}
    node = cluster.node_client(leader)
    deadline = time.monotonic() + CATCH_UP_S_MAX
    while True:
        try:
            if _query_all(node, consistent=False) >= expected:
                break
        except Exception:
            pass  # still starting
        assert time.monotonic() < deadline, "restarted node did not catch up"
        time.sleep(0.1)

    pids = cluster.down()
    assert len(pids) == NODES + MEMDS_SERVERS + 1
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or _zombie(pid), f"process {pid} still runs"
    assert running_pids(cluster.data_dir) == {}


def _query_all(client: Any, consistent: bool) -> set[int]:
    found: set[int] = set()
    arguments: dict[str, Any] = {
        "TableName": "ledger", "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "w"}}, "ConsistentRead": consistent}
    while True:
        page = client.query(**arguments)
        found.update(int(item["sk"]["N"]) for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return found
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_several_stateless_routers_serve_the_same_cluster(tmp_path: Any) -> None:
    cluster = Cluster(str(tmp_path / "cluster"), routers=3)
    try:
        clients = [_client(endpoint) for endpoint in cluster.endpoints]
        _make_table(clients[1], "shared")
        for i in range(30):  # writes spread over the routers, read back through others
            clients[i % 3].put_item(TableName="shared", Item={**_key("k", i), "v": {"N": str(i)}})
            got = clients[(i + 1) % 3].get_item(TableName="shared", Key=_key("k", i), ConsistentRead=True)
            assert got["Item"]["v"] == {"N": str(i)}
        # A router dying changes nothing for the others: they hold no state of their own.
        os.kill(cluster.pids_started["router"], signal.SIGKILL)
        clients[2].update_item(TableName="shared", Key=_key("k", 0), UpdateExpression="SET v = :v",
                               ExpressionAttributeValues={":v": {"N": "100"}})
        assert clients[1].get_item(TableName="shared", Key=_key("k", 0),
                                   ConsistentRead=True)["Item"]["v"] == {"N": "100"}
        assert len(clients[1].scan(TableName="shared", ConsistentRead=True)["Items"]) == 30
    finally:
        pids = cluster.down()
    assert len(pids) == NODES + MEMDS_SERVERS + 3
    assert running_pids(cluster.data_dir) == {}
