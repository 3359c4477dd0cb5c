"""Checkers comparing every local secondary index with its table, for integration tests.

`check_through_api` reads the table and each of its local secondary indexes
through boto3 (strongly consistent, paged Scans) and asserts that each item
having an index's sort key (of its type) is in the index exactly once, with
exactly the projected attributes, in index order within its partition key,
and that the index holds nothing else; DescribeTable's ItemCount agrees.

`check_on_disk` opens every replica of every partition of a stopped
server's table (`D/node-*/tables/<id>/<partition>/replica/items`) and runs
the engine's own checker on it (engine/local_index_check.py, which also
checks the stored counts and item collection sizes), then asserts that the
replicas of each partition hold the same items and index entries.
"""
from __future__ import annotations

import base64
import contextlib
import glob
import json
import os
import time
from decimal import Decimal
from typing import Any

from triplica.engine.catalogue import TableInfo
from triplica.engine.local_index_check import check_store
from triplica.engine.local_indexes import LocalIndexer
from triplica.engine.log_entries import stored_item_size
from triplica.storage.lmdb_store import PartitionStore

PAGES_MAX = 10_000
COUNTS_WAIT_S = 5.0


def scan_all(client: Any, **request: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    start = None
    for _ in range(PAGES_MAX):
        page = client.scan(**request, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if start is None:
            return items
    raise AssertionError("scan did not end")


def order_key(value: dict[str, Any]) -> Any:
    """DynamoDB's order of one key value (S by UTF-8 bytes, N numerically, B by bytes)."""
    (kind, inner), = value.items()
    if kind == "N":
        return Decimal(inner)
    if kind == "B":   # boto3 decodes binaries; the raw JSON has them in base64
        return inner if isinstance(inner, bytes) else base64.b64decode(inner)
    return inner.encode("utf-8")


def _canonical(item: dict[str, Any]) -> str:
    return json.dumps(item, sort_keys=True, default=lambda b: base64.b64encode(b).decode())


def check_through_api(client: Any, table: str) -> dict[str, int]:
    """Assert every local index of `table` agrees with its items; entries per index."""
    counts = _check_entries(client, table)
    # DescribeTable's counts come from the answering node's replicas, which may apply the
    # last writes a moment after the leader acknowledged them.
    deadline = time.monotonic() + COUNTS_WAIT_S
    while True:
        described = client.describe_table(TableName=table)["Table"]
        seen = {i["IndexName"]: i["ItemCount"] for i in described.get("LocalSecondaryIndexes", [])}
        if seen == counts or time.monotonic() > deadline:
            assert seen == counts, (seen, counts)
            return counts
        time.sleep(0.1)


def _check_entries(client: Any, table: str) -> dict[str, int]:
    description = client.describe_table(TableName=table)["Table"]
    schema = {k["KeyType"]: k["AttributeName"] for k in description["KeySchema"]}
    types = {d["AttributeName"]: d["AttributeType"] for d in description["AttributeDefinitions"]}
    table_keys = [schema["HASH"], schema["RANGE"]]
    items = scan_all(client, TableName=table, ConsistentRead=True)
    counts = {}
    for index in description.get("LocalSecondaryIndexes", []):
        name = index["IndexName"]
        sort_key = index["KeySchema"][1]["AttributeName"]
        projection = index["Projection"]
        projected = None if projection["ProjectionType"] == "ALL" else \
            set(table_keys) | {sort_key} | set(projection.get("NonKeyAttributes", []))
        expected = [item if projected is None else
                    {k: v for k, v in item.items() if k in projected}
                    for item in items if types[sort_key] in item.get(sort_key, {})]
        entries = scan_all(client, TableName=table, IndexName=name, ConsistentRead=True)
        assert sorted(map(_canonical, entries)) == sorted(map(_canonical, expected)), \
            f"index {name} differs from its table"
        keys = [tuple(_canonical(e[k]) for k in table_keys) for e in entries]
        assert len(set(keys)) == len(keys), f"index {name} holds an item twice"
        _check_order(entries, schema["HASH"], sort_key, schema["RANGE"], name)
        counts[name] = len(entries)
    return counts


def _check_order(entries: list[dict], hash_key: str, sort_key: str, range_key: str,
                 name: str) -> None:
    """Within one partition key, entries come by index sort key, then table sort key."""
    groups: dict[str, list[dict]] = {}
    for entry in entries:
        groups.setdefault(_canonical(entry[hash_key]), []).append(entry)
    for group in groups.values():
        order = [(order_key(e[sort_key]), order_key(e[range_key])) for e in group]
        assert order == sorted(order), f"index {name} out of order"
    # One partition key's entries are contiguous in a Scan.
    seen, previous = set(), None
    for entry in entries:
        current = _canonical(entry[hash_key])
        if current != previous:
            assert current not in seen, f"index {name}: a partition key's entries are split"
            seen.add(current)
            previous = current


def table_info(data_dir: str, table: str) -> TableInfo:
    with open(os.path.join(data_dir, "node-1", "catalog.json"), "rb") as file:
        tables = json.load(file)["tables"]
    return TableInfo.from_json(next(t for t in tables if t["name"] == table))


def check_on_disk(data_dir: str, table: str) -> int:
    """Run the engine's checker on every replica of the (stopped) server's table and
    compare the replicas of each partition; the number of replicas checked."""
    info = table_info(data_dir, table)
    by_partition: dict[str, list[Any]] = {}
    checked = 0
    for node_dir in sorted(glob.glob(os.path.join(data_dir, "node-*"))):
        for partition in info.partitions:
            items = os.path.join(node_dir, "tables", info.table_id, partition.partition_id,
                                 "replica", "items")
            if not os.path.isdir(items):
                continue
            with PartitionStore(items, value_size=stored_item_size,
                                indexer=LocalIndexer(info)) as store:
                problems = check_store(store, info)
                assert problems == [], f"{items}: {problems}"
                with contextlib.closing(store.scan(b"", None)) as rows:
                    state = [list(rows)]
                for index in info.local_indexes:
                    with contextlib.closing(store.scan_index(index.name, b"", None)) as rows:
                        state.append([(key, entry) for key, entry, _ in rows])
                by_partition.setdefault(partition.partition_id, []).append(
                    (store.applied_index(), state))
            checked += 1
    for partition_id, states in by_partition.items():
        latest = max(index for index, _ in states)
        same = [state for index, state in states if index == latest]
        assert all(state == same[0] for state in same), f"replicas of {partition_id} differ"
    return checked
