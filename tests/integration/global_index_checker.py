"""Checkers of global secondary indexes against their table, for integration tests.

`wait_drained` watches a running server's files (LMDB allows readers in
other processes): it returns once every replica of every base partition
has an empty outbox and every replica of each index partition has applied
the same log index, twice in a row (propagation is quiet).

`check_on_disk` opens every replica of a stopped server's table and of its
index tables: replicas of one partition at the same applied index must hold
the same items, and each index (the union of its partitions' most advanced
replicas) must hold exactly what the table's items say
(engine/global_index_check.py).
"""
from __future__ import annotations

import contextlib
import glob
import os
import time
from typing import Any

import lmdb

from tests.integration.index_checker import table_info
from triplica.engine.global_index_check import check_index
from triplica.engine.global_index_keys import GlobalIndex, index_table_name, indexer_of
from triplica.engine.log_entries import stored_item_size
from triplica.storage.lmdb_store import PartitionStore

POLL_S = 0.2


def _replica_dirs(data_dir: str, table_id: str, partition_id: str) -> list[str]:
    base = os.path.join(data_dir, "node-*", "tables", table_id, partition_id)
    return sorted(glob.glob(os.path.join(base, "replica", "items")) +
                  glob.glob(os.path.join(base, "r*", "replica", "items")))


def _peek(path: str) -> tuple[int, int]:
    """(outbox records, applied index) of a live replica's store, read-only."""
    env = lmdb.open(path, readonly=True, max_dbs=16, subdir=True)
    try:
        with env.begin() as txn:
            meta = env.open_db(b"meta", txn=txn, create=False)
            raw = txn.get(b"applied_index", db=meta)
            applied = 0 if raw is None else int.from_bytes(raw, "big")
            try:
                outbox = env.open_db(b"gsi_outbox", txn=txn, create=False)
            except lmdb.NotFoundError:
                return 0, applied
            return int(txn.stat(outbox)["entries"]), applied
    finally:
        env.close()


def wait_drained(data_dir: str, table: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        info = table_info(data_dir, table)
        waiting = sum(_peek(path)[0] for p in info.partitions
                      for path in _replica_dirs(data_dir, info.table_id, p.partition_id))
        applied = []
        for index in info.global_indexes:
            index_info = table_info(data_dir, index_table_name(table, index.name))
            for p in index_info.partitions:
                applied.append(sorted(_peek(path)[1] for path in
                                      _replica_dirs(data_dir, index_info.table_id,
                                                    p.partition_id)))
        state = (waiting, applied)
        if waiting == 0 and all(len(set(a)) == 1 for a in applied) and state == last:
            return
        last = state
        time.sleep(POLL_S)
    raise AssertionError(f"propagation did not drain in {timeout_s} s: {last}")


def _latest(data_dir: str, table_id: str, partition_id: str) -> list[tuple[bytes, bytes]]:
    """The items of a partition's most advanced replica (replicas level with it agree)."""
    states = []
    for path in _replica_dirs(data_dir, table_id, partition_id):
        with PartitionStore(path, value_size=stored_item_size, global_of=indexer_of) as store:
            with contextlib.closing(store.scan(b"", None)) as rows:
                states.append((store.applied_index(), list(rows)))
    assert states, f"no replica of partition {partition_id}"
    latest = max(index for index, _ in states)
    same = [rows for index, rows in states if index == latest]
    assert all(rows == same[0] for rows in same), f"replicas of {partition_id} differ"
    return same[0]


def check_on_disk(data_dir: str, table: str) -> dict[str, int]:
    """Check every global index of a stopped server's table; entries per index."""
    info = table_info(data_dir, table)
    items = [image for p in info.partitions
             for _, image in _latest(data_dir, info.table_id, p.partition_id)]
    table_keys = [info.hash_key] + ([info.range_key] if info.range_key else [])
    counts = {}
    for index in info.global_indexes:
        index_info = table_info(data_dir, index_table_name(table, index.name))
        entries = [row for p in index_info.partitions
                   for row in _latest(data_dir, index_info.table_id, p.partition_id)]
        problems = check_index(GlobalIndex.of(index, table_keys), info.hash_key,
                               info.range_key, items, entries)
        assert problems == [], problems
        counts[index.name] = len(entries)
    return counts
