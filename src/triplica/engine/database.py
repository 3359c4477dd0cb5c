"""The storage side of one server: the catalogue and the open partitions.

It answers "which partition holds this key" by the key's hash and the table's
ordered hash ranges, and owns the partitions' lifecycle (open on start, create
with a table, drain and remove with a table).

`replicas` picks the partition kind: 1 is a single `Partition` (WAL + LMDB),
3 a `ReplicatedPartition` (a Multi-Paxos group of three replicas in three AZs,
in this process, over the in-process transport). Replicated partitions run
drivers on the event loop, so such a Database must be built inside a running
loop (cli.py does), and `wait_for_leaders` lets the server start listening
only once every partition has a leader.
"""
from __future__ import annotations

import asyncio
import bisect
import logging
import os
import shutil
import time
import uuid
from typing import Any, Awaitable, Callable

from triplica.engine.catalogue import HASH_SPACE_END, Catalogue, PartitionInfo, TableInfo
from triplica.engine.partition import Partition
from triplica.engine.partition_plan import hash_ranges, initial_partition_count
from triplica.engine.replicated_partition import HEAL_AFTER_S_DEFAULT, ReplicatedPartition
from triplica.engine.table_splits import SplitMonitor, recover_splits, remove_unnamed_partitions

log = logging.getLogger(__name__)


class Table:
    """A table's definition plus its open partitions in hash order."""

    __slots__ = ("info", "partitions", "_starts")

    def __init__(self, info: TableInfo, partitions: list[Partition]) -> None:
        assert len(partitions) == len(info.partitions) >= 1
        self.info = info
        self.partitions = partitions
        self._starts = [p.hash_start for p in info.partitions]
        assert self._starts[0] == 0 and info.partitions[-1].hash_end == HASH_SPACE_END

    def partition_for_hash(self, key_hash: int) -> Partition:
        return self.partitions[bisect.bisect_right(self._starts, key_hash) - 1]

    def stats(self) -> tuple[int, int]:
        items = size = 0
        for partition in self.partitions:
            count, total = partition.stats()
            items += count
            size += total
        return items, size


REPLICA_COUNTS = (1, 3)
LEADERS_WAIT_S_DEFAULT = 10.0


# Builds the partition of one hash range: (table, range, directory) -> partition.
PartitionFactory = Callable[[TableInfo, PartitionInfo, str], Any]
# Before a cluster split's switch is saved: (parent's open partition, child, child's
# directory) -> prepares this node's child replica (cluster/node.py).
PrepareChild = Callable[[Any, PartitionInfo, str], Awaitable[None]]


async def _close_partition(partition: "Partition | ReplicatedPartition") -> None:
    await partition.drain()
    aclose = getattr(partition, "aclose", None)
    if aclose is not None:
        await aclose()
    else:
        partition.close()


class Database:
    def __init__(self, data_dir: str, sync_mode: str = "batch", replicas: int = 1,
                 partition_factory: PartitionFactory | None = None,
                 heal_after_s: float | None = HEAL_AFTER_S_DEFAULT,
                 split_size_bytes: int | None = None, split_for_traffic: bool = False) -> None:
        """`partition_factory` overrides `replicas` (a storage node's NodePartition).
        `heal_after_s`: replicated partitions replace a replica down this long.
        `split_size_bytes`: replicated partitions split in two when they hold
        more, or (`split_for_traffic`) keep running hot (table_splits.py; needs a
        running loop)."""
        assert replicas in REPLICA_COUNTS, replicas
        os.makedirs(data_dir, exist_ok=True)
        self.data_dir = data_dir
        self.sync_mode = sync_mode
        self.replicas = replicas
        self.partition_factory = partition_factory
        self.heal_after_s = heal_after_s
        # A cluster's router still sends a table's requests to one node (one
        # partition per table there until issue 4's router routes per partition).
        self.partitions_follow_capacity = partition_factory is None
        self.catalogue = Catalogue(data_dir)
        if partition_factory is None:
            recover_splits(self.catalogue, data_dir)
        self.tables: dict[str, Table] = {}
        for info in self.catalogue.tables.values():
            self.tables[info.name] = self._open_table(info)
        if partition_factory is not None:
            # Split parents are read while their children are built (above), then go.
            remove_unnamed_partitions(self.catalogue, data_dir)
        self.prepare_child: PrepareChild | None = None
        self.splits: SplitMonitor | None = None
        self._split_task: asyncio.Task | None = None
        if split_size_bytes is not None and replicas > 1 and partition_factory is None:
            self.splits = SplitMonitor(self, split_size_bytes, for_traffic=split_for_traffic)
            self._split_task = asyncio.get_running_loop().create_task(self.splits.run())

    def _partition_dir(self, info: TableInfo, partition: PartitionInfo) -> str:
        return os.path.join(self.data_dir, "tables", info.table_id, partition.partition_id)

    def _open_table(self, info: TableInfo) -> Table:
        if self.partition_factory is not None:
            partitions = [self.partition_factory(info, p, self._partition_dir(info, p))
                          for p in info.partitions]
        elif self.replicas == 1:
            partitions = [Partition(self._partition_dir(info, p), self.sync_mode)
                          for p in info.partitions]
        else:
            partitions = [ReplicatedPartition(self._partition_dir(info, p), self.sync_mode,
                                              replicas=self.replicas,
                                              heal_after_s=self.heal_after_s)
                          for p in info.partitions]
        return Table(info, partitions)

    async def wait_for_leaders(self, timeout_s: float = LEADERS_WAIT_S_DEFAULT) -> bool:
        """Wait (bounded) until every replicated partition can serve consistent reads."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(partition.leader() is not None and partition.leader().read_allowed()
                   for table in self.tables.values() for partition in table.partitions
                   if isinstance(partition, ReplicatedPartition)):
                return True
            await asyncio.sleep(0.01)
        return False

    def create_table(self, info: TableInfo) -> Table:
        assert info.name not in self.tables
        count = (initial_partition_count(info.billing_mode, info.read_units, info.write_units)
                 if self.partitions_follow_capacity else 1)
        info.partitions = [PartitionInfo(uuid.uuid4().hex[:12], start, end)
                           for start, end in hash_ranges(count)]
        return self.adopt_table(info)

    def adopt_table(self, info: TableInfo, epoch: int | None = None) -> Table:
        """Add a table whose partitions are already cut (by the cluster's metadata
        system, which also gives the catalogue's new `epoch`)."""
        assert info.name not in self.tables and info.partitions
        previous_epoch = self.catalogue.epoch
        self.catalogue.tables[info.name] = info
        if epoch is not None:
            self.catalogue.epoch = epoch
        try:
            self.catalogue.save()
        except BaseException:
            del self.catalogue.tables[info.name]
            self.catalogue.epoch = previous_epoch
            raise
        table = self._open_table(info)
        self.tables[info.name] = table
        return table

    def partition_dir(self, info: TableInfo, partition: PartitionInfo) -> str:
        return self._partition_dir(info, partition)

    async def replace_members(self, info: TableInfo, epoch: int) -> None:
        """A cluster table whose partitions' members changed (a replica moved to another
        node, metadata/replica_mover.py): each such partition is built again by the
        factory (which hands over a replica this node already joined, or redirects),
        and a replica this node no longer hosts is closed and removed."""
        assert self.partition_factory is not None, "cluster tables only"
        table = self.tables[info.name]
        before = [p.members for p in table.info.partitions]
        self.replace_table_info(info, epoch)
        partitions = list(table.partitions)
        for position, partition_info in enumerate(info.partitions):
            if before[position] == partition_info.members:
                continue
            current = partitions[position]
            replacement = self.partition_factory(info, partition_info,
                                                 self._partition_dir(info, partition_info))
            if replacement is current:
                continue
            partitions[position] = replacement
            if getattr(current, "closed", True) is False:
                await _close_partition(current)
                if getattr(replacement, "driver", None) is None:  # no longer hosted here
                    shutil.rmtree(self._partition_dir(info, partition_info), ignore_errors=True)
        self.tables[info.name] = Table(info, partitions)

    def replace_table_info(self, info: TableInfo, epoch: int) -> None:
        """A table's new definition with the same partitions (throughput, status, tags)."""
        table = self.tables[info.name]
        assert [(p.hash_start, p.group) for p in info.partitions] == \
            [(p.hash_start, p.group) for p in table.info.partitions], info.name
        self.catalogue.tables[info.name] = info
        self.catalogue.epoch = epoch
        self.catalogue.save()
        table.info = info

    async def apply_split(self, info: TableInfo, epoch: int) -> None:
        """A cluster table whose partitions were split (metadata/control_plane.py): each
        child is prepared from its parent here, the catalogue switches to the children,
        they open, and the parents close and go."""
        table = self.tables[info.name]
        assert self.partition_factory is not None, "cluster splits only"
        old = {p.partition_id: partition for p, partition in zip(table.info.partitions,
                                                                  table.partitions)}
        children = [p for p in info.partitions if p.partition_id not in old]
        assert children and all(c.split_from in old for c in children), info.name
        for child in children:
            if self.prepare_child is not None:
                await self.prepare_child(old[child.split_from], child,
                                         self._partition_dir(info, child))
        previous = (self.catalogue.tables[info.name], self.catalogue.epoch)
        self.catalogue.tables[info.name] = info
        self.catalogue.epoch = epoch
        try:
            self.catalogue.save()
        except BaseException:
            self.catalogue.tables[info.name], self.catalogue.epoch = previous
            raise
        partitions = [old[p.partition_id] if p.partition_id in old else
                      self.partition_factory(info, p, self._partition_dir(info, p))
                      for p in info.partitions]
        self.tables[info.name] = Table(info, partitions)
        kept = {p.partition_id for p in info.partitions}
        for partition_id, partition in old.items():
            if partition_id not in kept:
                await _close_partition(partition)
                shutil.rmtree(os.path.join(self.data_dir, "tables", info.table_id, partition_id),
                              ignore_errors=True)

    def set_draining(self, nodes: list[int], epoch: int) -> None:
        """The cluster's nodes being drained (a metadata record, replica_mover.py)."""
        assert epoch > self.catalogue.epoch, (epoch, self.catalogue.epoch)
        self.catalogue.draining = sorted(nodes)
        self.catalogue.epoch = epoch
        self.catalogue.save()

    def set_metadata_members(self, nodes: list[int], epoch: int) -> None:
        """The metadata group's members after a move (a metadata record)."""
        assert epoch > self.catalogue.epoch, (epoch, self.catalogue.epoch)
        self.catalogue.metadata_members = sorted(nodes)
        self.catalogue.epoch = epoch
        self.catalogue.save()

    def note_epoch(self, epoch: int) -> None:
        """A metadata change that needs nothing of this node (a table it never had)."""
        assert epoch > self.catalogue.epoch, (epoch, self.catalogue.epoch)
        self.catalogue.epoch = epoch
        self.catalogue.save()

    def save_catalogue(self) -> None:
        self.catalogue.save()

    async def delete_table(self, name: str, epoch: int | None = None) -> None:
        table = self.tables.pop(name)
        del self.catalogue.tables[name]
        if epoch is not None:
            self.catalogue.epoch = epoch
        self.catalogue.save()
        for partition in table.partitions:
            await _close_partition(partition)
        shutil.rmtree(os.path.join(self.data_dir, "tables", table.info.table_id),
                      ignore_errors=True)

    async def close(self) -> None:
        if self._split_task is not None:
            self._split_task.cancel()
            await asyncio.gather(self._split_task, return_exceptions=True)
        for table in self.tables.values():
            for partition in table.partitions:
                await _close_partition(partition)
        self.tables.clear()
