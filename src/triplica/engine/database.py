"""A storage node's tables: its catalogue and its open partitions.

It answers "which partition holds this key" by the key's hash and the
table's ordered hash ranges, and owns the partitions' lifecycle on this
node as the catalogue changes (metadata/catalogue_follower.py applies the
metadata log here): a table's partitions open when it is adopted, a split's
children replace their parent, a moved replica is handed over or dropped,
and a deleted table's partitions drain and go. What a partition object is
(this node's replica of the range's group, or a stand-in that redirects to
the members elsewhere) is the node's business: `open_partition`
(node/storage_node.py).

The catalogue is saved, with the metadata log's epoch, before the
partitions change, so a crash in between resumes from the saved state.
"""
from __future__ import annotations

import bisect
import logging
import os
import shutil
from typing import Any, Awaitable, Callable

from triplica.engine.catalogue import HASH_SPACE_END, Catalogue, PartitionInfo, TableInfo
from triplica.engine.global_index_keys import GlobalIndex, GlobalIndexer
from triplica.engine.index_definitions import DELETING
from triplica.engine.local_indexes import local_indexer_of

log = logging.getLogger(__name__)


class Table:
    """A table's definition plus its open partitions in hash order."""

    __slots__ = ("info", "partitions", "_starts", "indexer", "_global")

    def __init__(self, info: TableInfo, partitions: list[Any]) -> None:
        assert len(partitions) == len(info.partitions) >= 1
        self.info = info
        self.partitions = partitions
        # The local secondary indexes' entries (fixed at CreateTable), as the stores keep them.
        self.indexer = local_indexer_of(info)
        self._global: tuple[Any, Any] = ((), None)
        self._starts = [p.hash_start for p in info.partitions]
        assert self._starts[0] == 0 and info.partitions[-1].hash_end == HASH_SPACE_END

    @property
    def global_indexer(self) -> GlobalIndexer | None:
        """The global indexes a write of this table changes (those created or being
        created: what a write is charged for), rebuilt when the definitions change."""
        kept = tuple(i.name for i in self.info.global_indexes if i.status != DELETING)
        if kept != self._global[0]:
            table_keys = [self.info.hash_key] + ([self.info.range_key]
                                                 if self.info.range_key else [])
            indexes = [GlobalIndex.of(i, table_keys) for i in self.info.global_indexes
                       if i.name in kept]
            self._global = (kept, GlobalIndexer(indexes) if indexes else None)
        return self._global[1]

    def partition_for_hash(self, key_hash: int) -> Any:
        return self.partitions[bisect.bisect_right(self._starts, key_hash) - 1]

    def stats(self) -> tuple[int, int]:
        items = size = 0
        for partition in self.partitions:
            count, total = partition.stats()
            items += count
            size += total
        return items, size

    def index_stats(self, name: str) -> tuple[int, int]:
        """(entries, bytes) of a local secondary index over this node's partitions."""
        entries = size = 0
        for partition in self.partitions:
            count, total = partition.index_stats(name)
            entries += count
            size += total
        return entries, size


# Builds this node's object for one hash range: (table, range, directory) -> partition
# (its replica, engine/node_partition.py, or a stand-in that redirects).
PartitionFactory = Callable[[TableInfo, PartitionInfo, str], Any]
# Before a split's switch is saved: (parent's open partition, child, child's
# directory) -> prepares this node's child replica (node/storage_node.py).
PrepareChild = Callable[[Any, PartitionInfo, str], Awaitable[None]]


async def _close_partition(partition: Any) -> None:
    await partition.drain()
    aclose = getattr(partition, "aclose", None)
    if aclose is not None:
        await aclose()
    else:
        partition.close()


def remove_unnamed_partitions(catalogue: Catalogue, data_dir: str) -> None:
    """Delete partition directories the catalogue no longer names: split parents
    whose deletion a crash cut short (and children a split left half built)."""
    for info in catalogue.tables.values():
        directory = os.path.join(data_dir, "tables", info.table_id)
        if not os.path.isdir(directory):
            continue
        known = {p.partition_id for p in info.partitions}
        for name in os.listdir(directory):
            if name not in known and not name.startswith("."):
                log.warning("table %s: removing %s, a partition that was split", info.name, name)
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


class Database:
    def __init__(self, data_dir: str, open_partition: PartitionFactory) -> None:
        """Opens the catalogue and, through `open_partition`, every table's partitions."""
        os.makedirs(data_dir, exist_ok=True)
        self.data_dir = data_dir
        self.open_partition = open_partition
        self.catalogue = Catalogue(data_dir)
        self.tables: dict[str, Table] = {}
        for info in self.catalogue.tables.values():
            self.tables[info.name] = self._open_table(info)
        # Split parents are read while their children are built (above), then go.
        remove_unnamed_partitions(self.catalogue, data_dir)
        self.prepare_child: PrepareChild | None = None

    def _partition_dir(self, info: TableInfo, partition: PartitionInfo) -> str:
        return os.path.join(self.data_dir, "tables", info.table_id, partition.partition_id)

    def _open_table(self, info: TableInfo) -> Table:
        return Table(info, [self.open_partition(info, p, self._partition_dir(info, p))
                            for p in info.partitions])

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
        factory (which hands over a replica this node already joined, or redirects, and
        removes the files of a replica this node no longer hosts), and the partition
        object it replaces is closed."""
        table = self.tables[info.name]
        before = [p.members for p in table.info.partitions]
        self.replace_table_info(info, epoch)
        partitions = list(table.partitions)
        for position, partition_info in enumerate(info.partitions):
            if before[position] == partition_info.members:
                continue
            current = partitions[position]
            replacement = self.open_partition(info, partition_info,
                                                 self._partition_dir(info, partition_info))
            if replacement is current:
                continue
            partitions[position] = replacement
            if getattr(current, "closed", True) is False:
                await _close_partition(current)
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
                      self.open_partition(info, p, self._partition_dir(info, p))
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
        for table in self.tables.values():
            for partition in table.partitions:
                await _close_partition(partition)
        self.tables.clear()
