"""A cluster's partitions split while the table is in use (issue 4: splits that follow traffic).

Each test starts its own cluster (three node processes, two MemDS servers,
one router) with split limits scaled down so that a few hundred KB or a few
dozen write units per second are "too big" or "too hot", and stops it
afterwards. boto3 talks to the router; the partition map is asked of a node.

- growth for size under concurrent writers: the table goes through several
  splits, no write fails, and afterwards every item is there exactly once
  (paged Scan), readable (GetItem) and in its Query;
- paged Scans running while the table splits: each returns every item
  written before it started exactly once (LastEvaluatedKey stays valid
  across a split);
- a node killed with SIGKILL while the table splits, restarted: no
  acknowledged write is lost, and the restarted node's replicas catch up
  (it answers eventually consistent reads of every item itself);
- split for consumption, by writes and by eventually consistent reads
  (served by all three members, merged from every node's report): two hot
  keys in one partition end up in different partitions (the split point
  comes from the observed accesses).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Iterator

import pytest

from tests.integration.test_cluster import _free_base_port
from tests.integration.test_cluster_partitions import _client, _post
from triplica.cluster.config import SplitLimits
from triplica.cluster.local import cluster_down, cluster_up, running_pids, start_node
from triplica.model.partition_map import TableMap
from triplica.model.keys import partition_hash
from triplica.common.internal import PARTITION_MAP_TARGET, ROUTER_STATS_TARGET

NODES = 3
WRITERS = 3
PKS_PER_WRITER = 40
SKS_PER_PK = 12
VALUE = "v" * 150
SPLITS_WAIT_S = 60.0
CATCH_UP_S_MAX = 60.0
HOT_WRITE_S_MAX = 40.0


class SplitCluster:
    def __init__(self, data_dir: str, splits: SplitLimits) -> None:
        self.data_dir = data_dir
        self.base_port = _free_base_port()
        self.endpoint = cluster_up(data_dir, nodes=NODES, azs=3, base_port=self.base_port,
                                   splits=splits)[0]
        self.ddb = _client(self.endpoint, attempts=3)

    def node_url(self, node: int) -> str:
        return f"http://127.0.0.1:{self.base_port + node}"

    def table_map(self, table: str, skip: int | None = None) -> TableMap:
        for node in range(1, NODES + 1):
            if node == skip:
                continue
            try:
                return TableMap.from_doc(_post(self.node_url(node), PARTITION_MAP_TARGET,
                                               {"TableName": table}))
            except OSError:
                continue
        raise AssertionError("no node answered the partition map request")


@pytest.fixture
def make_cluster(tmp_path: Any) -> Iterator[Any]:
    started: list[SplitCluster] = []

    def make(splits: SplitLimits) -> SplitCluster:
        cluster = SplitCluster(str(tmp_path / "cluster"), splits)
        started.append(cluster)
        return cluster

    yield make
    for cluster in started:
        cluster_down(cluster.data_dir)
        assert not running_pids(cluster.data_dir)


def _create(ddb: Any, name: str) -> None:
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"}])


def _item(pk: str, sk: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}, "v": {"S": f"{VALUE}-{pk}-{sk}"}}


class Writers:
    """WRITERS threads, each putting its own items; records what was acknowledged."""

    def __init__(self, endpoint: str, table: str, sks: range = range(SKS_PER_PK)) -> None:
        self.table = table
        self.sks = sks
        self.acknowledged: set[tuple[str, int]] = set()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(endpoint, w), daemon=True)
                         for w in range(WRITERS)]

    def start(self) -> "Writers":
        for thread in self._threads:
            thread.start()
        return self

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=300)
            assert not thread.is_alive(), "a writer hung"

    def _run(self, endpoint: str, writer: int) -> None:
        ddb = _client(endpoint, attempts=3)
        for sk in self.sks:
            for p in range(PKS_PER_WRITER):
                pk = f"w{writer}-p{p}"
                try:
                    ddb.put_item(TableName=self.table, Item=_item(pk, sk))
                except Exception as error:  # counted: the test asserts there are none
                    with self._lock:
                        self.errors.append(f"{pk}/{sk}: {error}")
                    continue
                with self._lock:
                    self.acknowledged.add((pk, sk))

    @staticmethod
    def all_keys(sks: range = range(SKS_PER_PK)) -> set[tuple[str, int]]:
        return {(f"w{w}-p{p}", sk) for w in range(WRITERS) for p in range(PKS_PER_WRITER)
                for sk in sks}

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)


def _scan_keys(ddb: Any, table: str, consistent: bool = True) -> list[tuple[str, int]]:
    """A paged Scan; strongly consistent by default (an eventually consistent page may
    come from a member that has not applied the latest writes yet)."""
    keys: list[tuple[str, int]] = []
    arguments: dict[str, Any] = {"TableName": table, "Limit": 97, "ConsistentRead": consistent}
    for _ in range(1000):
        page = ddb.scan(**arguments)
        keys += [(i["pk"]["S"], int(i["sk"]["N"])) for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return keys
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    raise AssertionError("scan did not end")


def _wait_partitions(cluster: SplitCluster, table: str, at_least: int) -> int:
    deadline = time.monotonic() + SPLITS_WAIT_S
    count = len(cluster.table_map(table).starts)
    while count < at_least and time.monotonic() < deadline:
        time.sleep(0.25)
        count = len(cluster.table_map(table).starts)
    return count


def _settled_map(cluster: SplitCluster, table: str, quiet_s: float = 4.0) -> TableMap:
    """The map once no split happened for `quiet_s` (the table stops splitting when
    every partition is under the size limit)."""
    deadline = time.monotonic() + SPLITS_WAIT_S
    current = cluster.table_map(table)
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.25)
        latest = cluster.table_map(table)
        if latest.starts != current.starts:
            current, quiet_since = latest, time.monotonic()
    return current


def _check_every_item_once(cluster: SplitCluster, table: str,
                           expected: set[tuple[str, int]]) -> None:
    scanned = _scan_keys(cluster.ddb, table)
    assert len(scanned) == len(set(scanned)), "an item appeared twice in a Scan"
    assert set(scanned) == expected
    for pk, sk in sorted(expected):
        got = cluster.ddb.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"N": str(sk)}},
                                   ConsistentRead=True)
        assert got.get("Item") == _item(pk, sk), (pk, sk)
    pks = sorted({pk for pk, _ in expected})
    for pk in pks[::7]:
        page = cluster.ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                                 ExpressionAttributeValues={":p": {"S": pk}})
        assert [int(i["sk"]["N"]) for i in page["Items"]] == \
            sorted(sk for p, sk in expected if p == pk)


def test_a_table_grows_through_several_splits_under_concurrent_writes(make_cluster: Any) -> None:
    cluster = make_cluster(SplitLimits(size_bytes=40_000, for_traffic=False, window_s=1.0))
    _create(cluster.ddb, "grows")
    assert len(cluster.table_map("grows").starts) == 1
    writers = Writers(cluster.endpoint, "grows").start()
    writers.join()
    assert writers.errors == []
    assert writers.acknowledged == Writers.all_keys()
    # Requests did hit partitions that had just split; the router retried them.
    assert _post(cluster.endpoint, ROUTER_STATS_TARGET, {})["stale_routes"] >= 1
    partitions = _wait_partitions(cluster, "grows", 4)
    assert partitions >= 4, f"only {partitions} partitions"
    _check_every_item_once(cluster, "grows", Writers.all_keys())
    table_map = _settled_map(cluster, "grows")
    assert list(table_map.starts) == sorted(table_map.starts) and table_map.starts[0] == 0
    assert len(set(table_map.groups)) == len(table_map.groups)
    # Every node has dropped the parents' replicas: one directory per partition.
    for node in range(1, NODES + 1):
        tables = os.path.join(cluster.data_dir, f"node-{node}", "tables")
        (table_id,) = os.listdir(tables)
        assert len(os.listdir(os.path.join(tables, table_id))) == len(table_map.starts)


def test_scans_page_cleanly_while_the_table_splits(make_cluster: Any) -> None:
    """LastEvaluatedKey stays valid across splits: a paged Scan that runs while the
    table splits returns every item written before it started, each exactly once."""
    cluster = make_cluster(SplitLimits(size_bytes=30_000, for_traffic=False, window_s=1.0))
    _create(cluster.ddb, "paged")
    first, second = range(0, SKS_PER_PK // 2), range(SKS_PER_PK // 2, SKS_PER_PK)
    before = Writers(cluster.endpoint, "paged", first).start()
    before.join()
    assert before.errors == []
    during = Writers(cluster.endpoint, "paged", second).start()
    scans = spanning = 0
    deadline = time.monotonic() + SPLITS_WAIT_S
    while (during.alive() or spanning == 0) and time.monotonic() < deadline:
        epoch = cluster.table_map("paged").epoch
        scanned = _scan_keys(cluster.ddb, "paged")
        spanning += cluster.table_map("paged").epoch != epoch
        scans += 1
        assert len(scanned) == len(set(scanned)), "an item appeared twice in one Scan"
        assert Writers.all_keys(first) <= set(scanned)
        assert set(scanned) <= Writers.all_keys()
    during.join()
    assert during.errors == []
    assert spanning >= 1, f"none of {scans} scans ran across a split"
    _check_every_item_once(cluster, "paged", Writers.all_keys())


def _metadata_leader(cluster: SplitCluster) -> int:
    """The node whose control plane answers (the others redirect with 421)."""
    for node in range(1, NODES + 1):
        try:
            _client(cluster.node_url(node)).update_table(TableName="no-such-table",
                                                         BillingMode="PAY_PER_REQUEST")
        except Exception as error:
            if "ResourceNotFoundException" in str(error):
                return node
    raise AssertionError("no metadata leader")


@pytest.mark.parametrize("victim_role", ["metadata leader", "another node"])
def test_a_node_killed_while_the_table_splits_loses_nothing(make_cluster: Any,
                                                            victim_role: str) -> None:
    """Killing the metadata leader may cut a split between its intent and its switch:
    the next leader finishes it."""
    cluster = make_cluster(SplitLimits(size_bytes=40_000, for_traffic=False, window_s=1.0))
    _create(cluster.ddb, "crashy")
    writers = Writers(cluster.endpoint, "crashy").start()
    leader = _metadata_leader(cluster)
    victim = leader if victim_role == "metadata leader" else leader % NODES + 1
    while len(writers.acknowledged) < 300 and any(t.is_alive() for t in writers._threads):
        time.sleep(0.05)
    pid_file = os.path.join(cluster.data_dir, f"node-{victim}.pid")
    with open(pid_file) as file:
        os.kill(int(file.read()), signal.SIGKILL)
    writers.join()
    assert _wait_partitions(cluster, "crashy", 3) >= 3
    start_node(cluster.data_dir, victim)
    # Acknowledged writes survive; writes whose answer was lost may or may not be there.
    scanned = set(_scan_keys(cluster.ddb, "crashy"))
    assert writers.acknowledged <= scanned
    assert len(writers.errors) <= WRITERS, writers.errors  # at most one in flight each
    # The restarted node catches up: it follows the splits and its replicas get the data.
    node_ddb = _client(cluster.node_url(victim), attempts=1)
    deadline = time.monotonic() + CATCH_UP_S_MAX
    missing = sorted(writers.acknowledged)
    while missing and time.monotonic() < deadline:
        still = []
        for pk, sk in missing:
            try:
                got = node_ddb.get_item(TableName="crashy",
                                        Key={"pk": {"S": pk}, "sk": {"N": str(sk)}})
            except Exception:  # 421 while its replica heals
                still.append((pk, sk))
                continue
            if got.get("Item") != _item(pk, sk):
                still.append((pk, sk))
        missing = still
        if missing:
            time.sleep(0.5)
    assert not missing, f"node {victim} never served {len(missing)} items, e.g. {missing[:3]}"
    assert cluster.table_map("crashy", skip=None).starts == \
        TableMap.from_doc(_post(cluster.node_url(victim), PARTITION_MAP_TARGET,
                                {"TableName": "crashy"})).starts


@pytest.mark.parametrize("traffic", ["writes", "eventually consistent reads"])
def test_a_hot_partition_splits_between_its_two_hot_keys(make_cluster: Any, traffic: str) -> None:
    """Writes go to the leader; eventually consistent reads are spread over the three
    members, so only their sum (every node's report, merged) makes the partition hot."""
    reads = traffic != "writes"
    cluster = make_cluster(SplitLimits(write_units=30, read_units=40, window_s=1.0))
    _create(cluster.ddb, "hot")
    hot = [("hot-a", 1), ("hot-b", 1)]
    hashes = [partition_hash({"S": pk}) for pk, _ in hot]
    for pk, sk in hot:
        cluster.ddb.put_item(TableName="hot", Item=_item(pk, sk))
    deadline = time.monotonic() + HOT_WRITE_S_MAX
    count = 0
    while len(cluster.table_map("hot").starts) < 2 and time.monotonic() < deadline:
        for pk, sk in hot:
            if reads:
                cluster.ddb.get_item(TableName="hot", Key={"pk": {"S": pk}, "sk": {"N": str(sk)}})
            else:
                cluster.ddb.put_item(TableName="hot", Item=_item(pk, sk))
        if count % 20 == 0:  # a little cold traffic elsewhere
            cluster.ddb.put_item(TableName="hot", Item=_item(f"cold-{count}", 0))
        count += 1
    table_map = cluster.table_map("hot")
    assert len(table_map.starts) >= 2, "the hot partition never split"
    routes = [table_map.route_for_hash(h).group for h in hashes]
    assert routes[0] != routes[1], "both hot keys stayed in one partition"
    # The cut is next to a hot key, not at the middle of the hash space.
    assert 1 << 63 not in table_map.starts
    for pk, sk in hot:
        got = cluster.ddb.get_item(TableName="hot", Key={"pk": {"S": pk}, "sk": {"N": str(sk)}},
                                   ConsistentRead=True)
        assert got["Item"] == _item(pk, sk)
