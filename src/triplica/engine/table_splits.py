"""Splits of a `triplica serve` table's partitions: catalogue steps and the size trigger.

One split (partition_split.py carries out the data part) is three catalogue
states, each one durable write of catalog.json:

    parent                      intent: parent + children being built
    intent                      switch: children replace the parent (`commit`,
                                        before any held write reaches them)
    switch                      the parent's files are deleted afterwards

`recover_splits` runs before the tables open: an intent still in the
catalogue means the switch never happened, so the children's directories
are deleted and the parent goes on (no write reached the children: they are
released only after the switch); a partition directory the catalogue no
longer names is a parent whose deletion a crash interrupted, and goes too.

The triggers (`SplitMonitor`, started by `serve`): every SIZE_CHECK_S it
looks at each replicated partition. Size (`serve --split-size-bytes N`,
DynamoDB's ~10 GB by default): a partition holding more splits at the hash
that halves its bytes, found from a bounded sample of its keys.
Consumption: each partition's leader meters the reads and writes it serves
(access_meter.py); every CONSUMPTION_WINDOW_S the windows close, and a
partition above 80% of 3,000 RCU or 1,000 WCU for three windows running
splits at the point metadata/split_policy.py picks from the accesses it saw
(heavy keys isolated, never the midpoint by default). At most
SPLITS_PER_CHECK_MAX splits per check; a table does one split at a time.

Consumption splits are off by default in `serve` (`--split-for-traffic`
turns them on): measured with bench/splits.py, every partition of one
process shares the same cores and each extra group adds its own log,
fsyncs and messages, so Zipf PutItem throughput FELL with each split (about
3,900/s with one partition, 2,900/s with two, 2,000/s with four). Splitting
for traffic pays off when the children's leaders run on different nodes
(the cluster, issue 4). Size splits stay on: they bound a partition's copy
and catch-up time.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from typing import TYPE_CHECKING

from triplica.engine.catalogue import Catalogue, PartitionInfo
from triplica.engine.partition_split import ChildSpec, split
from triplica.engine.replicated_partition import ReplicatedPartition
from triplica.errors import InternalServerError
from triplica.engine.access_meter import AccessMeter
from triplica.engine.split_policy import (READ_UNITS_PER_PARTITION, WRITE_UNITS_PER_PARTITION,
                                            AccessSketch, choose_split_point, split_reason)

if TYPE_CHECKING:
    from triplica.engine.database import Database

log = logging.getLogger(__name__)

SIZE_CHECK_S = 1.0
CONSUMPTION_WINDOW_S = 5.0
SAMPLE_RECORDS_MAX = 100_000
SPLITS_PER_CHECK_MAX = 1


def tables_directory(data_dir: str, table_id: str) -> str:
    return os.path.join(data_dir, "tables", table_id)


def recover_splits(catalogue: Catalogue, data_dir: str) -> None:
    """Undo splits whose switch never happened; drop parents whose deletion was cut short."""
    changed = False
    for info in catalogue.tables.values():
        directory = tables_directory(data_dir, info.table_id)
        for child in info.split_intent:
            log.warning("table %s: a split of partition(s) did not finish; removing child %s",
                        info.name, child.partition_id)
            shutil.rmtree(os.path.join(directory, child.partition_id), ignore_errors=True)
        if info.split_intent:
            info.split_intent = []
            changed = True
    if changed:
        catalogue.save()
    remove_unnamed_partitions(catalogue, data_dir)


def remove_unnamed_partitions(catalogue: Catalogue, data_dir: str) -> None:
    """Delete partition directories the catalogue no longer names: split parents
    whose deletion a crash cut short (and children a split left half built)."""
    for info in catalogue.tables.values():
        directory = tables_directory(data_dir, info.table_id)
        if not os.path.isdir(directory):
            continue
        known = {p.partition_id for p in info.partitions}
        for name in os.listdir(directory):
            if name not in known and not name.startswith("."):
                log.warning("table %s: removing %s, a partition that was split", info.name, name)
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


async def split_partition(db: "Database", table_name: str, partition_id: str,
                          boundary: int) -> tuple[PartitionInfo, PartitionInfo]:
    """Split one partition of a table at hash `boundary`; returns the children's infos."""
    from triplica.engine.database import Table  # the Database imports this module

    table = db.tables[table_name]
    info = table.info
    position = next(i for i, p in enumerate(info.partitions) if p.partition_id == partition_id)
    parent_info, parent = info.partitions[position], table.partitions[position]
    assert isinstance(parent, ReplicatedPartition), "only replicated partitions split"
    assert parent_info.hash_start < boundary < parent_info.hash_end, boundary
    assert not info.split_intent, "one split at a time per table"
    left = PartitionInfo(uuid.uuid4().hex[:12], parent_info.hash_start, boundary)
    right = PartitionInfo(uuid.uuid4().hex[:12], boundary, parent_info.hash_end)
    info.split_intent = [left, right]
    db.catalogue.save()

    def commit(left_child: ReplicatedPartition, right_child: ReplicatedPartition) -> None:
        if db.tables.get(table_name) is not table:  # deleted (or recreated) meanwhile
            raise InternalServerError("Internal server error")
        old = list(info.partitions)
        info.partitions = old[:position] + [left, right] + old[position + 1:]
        info.split_intent = []
        try:
            db.catalogue.save()
        except BaseException:
            info.partitions, info.split_intent = old, [left, right]
            raise
        partitions = list(table.partitions)
        partitions[position:position + 1] = [left_child, right_child]
        db.tables[table_name] = Table(info, partitions)

    directory = tables_directory(db.data_dir, info.table_id)
    try:
        await split(parent, ChildSpec(os.path.join(directory, left.partition_id), left.hash_start, left.hash_end),
                    ChildSpec(os.path.join(directory, right.partition_id), right.hash_start, right.hash_end),
                    commit=commit, heal_after_s=db.heal_after_s)
    except BaseException:
        if info.split_intent:
            info.split_intent = []
            db.catalogue.save()
        raise
    await parent.drain()
    await parent.aclose()
    shutil.rmtree(os.path.join(directory, parent_info.partition_id), ignore_errors=True)
    return left, right


from triplica.engine.split_advisor import size_split_point  # noqa: E402


class SplitMonitor:
    """Splits partitions that outgrow their size or keep running hot (module docstring).

    The limits default to DynamoDB's per-partition ones; tests scale them down.
    """

    def __init__(self, db: "Database", size_bytes_max: int, for_traffic: bool = True,
                 read_units_max: float = READ_UNITS_PER_PARTITION,
                 write_units_max: float = WRITE_UNITS_PER_PARTITION,
                 window_s: float = CONSUMPTION_WINDOW_S) -> None:
        assert size_bytes_max > 0 and read_units_max > 0 and write_units_max > 0 and window_s > 0
        self.db = db
        self.size_bytes_max = size_bytes_max
        self.for_traffic = for_traffic
        self.read_units_max = read_units_max
        self.write_units_max = write_units_max
        self.window_s = window_s
        self.splits: list[tuple[str, int]] = []  # (reason, boundary), in order
        self._window_started = asyncio.get_running_loop().time()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SIZE_CHECK_S)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed split leaves its parent as it was: try again later
                log.exception("split failed")

    async def check(self) -> None:
        loop = asyncio.get_running_loop()
        window_closed = loop.time() - self._window_started >= self.window_s
        if window_closed:
            elapsed, self._window_started = loop.time() - self._window_started, loop.time()
        candidates: list[tuple[str, str, str, ReplicatedPartition]] = []
        for name, table in list(self.db.tables.items()):
            for info, partition in zip(list(table.info.partitions), list(table.partitions)):
                if not isinstance(partition, ReplicatedPartition):
                    continue
                if partition.meter is None:
                    partition.meter = AccessMeter(info.hash_start, info.hash_end)
                elif window_closed:
                    partition.meter.close_window(elapsed)
                recent = list(partition.meter.recent) if self.for_traffic else []
                reason = split_reason(partition.stats()[1], recent,
                                      self.size_bytes_max, self.read_units_max, self.write_units_max)
                if reason is not None:
                    candidates.append((reason, name, info.partition_id, partition))
        for reason, name, partition_id, partition in candidates[:SPLITS_PER_CHECK_MAX]:
            info = next(p for p in self.db.tables[name].info.partitions if p.partition_id == partition_id)
            if reason == "size":  # a scan of the whole partition: off the event loop
                boundary = await loop.run_in_executor(
                    None, size_split_point, partition, info.hash_start, info.hash_end)
            else:
                assert partition.meter is not None
                boundary = choose_split_point(partition.meter.sketch)
            if boundary is None or partition not in self.db.tables[name].partitions:
                continue
            await split_partition(self.db, name, partition_id, boundary)
            self.splits.append((reason, boundary))
            log.warning("table %s: split a partition for %s at hash %#x", name, reason, boundary)
