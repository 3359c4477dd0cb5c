"""A stand-in Database on which the control plane runs DynamoDB's table handlers.

The control-plane operations (CreateTable, UpdateTable, DeleteTable,
TagResource, UntagResource) keep one implementation of DynamoDB's checks,
messages and answers: the handlers of engine/operations/tables.py. On the metadata
leader they run against a `PlanningDatabase` built from the node's catalogue
(which is the metadata log folded up to its last epoch): it looks like a
Database to the handlers, but records what they would change instead of
changing it. The control plane then commits the recorded changes to the
metadata log; every node (this one included) applies them from there.

Placement happens here: a new table's partitions get hash ranges
(engine/partition_plan.py), a fresh group key each, and members by the
cluster's placement rule (three nodes in three AZs).

Restoring a table (`restore`, hosting/migrate.py converting a data directory
of an earlier release): the CreateTable handler runs as for any client, with
every check, and the new table then takes the identity the table already had
(table id, creation time, billing and throughput history) instead of a fresh
one, so DescribeTable answers as before the conversion.
"""
from __future__ import annotations

import copy
import uuid
from typing import Callable

from triplica.engine.catalogue import PartitionInfo, TableInfo
from triplica.engine.database import Database
from triplica.engine.partition_plan import hash_ranges, initial_partition_count
from triplica.metadata.catalogue_log import Change, delete_table, put_table

Placement = Callable[[str], list[int]]  # group key -> member node ids


class PlannedTable:
    """What a handler sees of a table: its definition (a copy) and its stats."""

    __slots__ = ("info", "_stats", "_index_stats")

    def __init__(self, info: TableInfo, stats: Callable[[], tuple[int, int]],
                 index_stats: Callable[[str], tuple[int, int]] = lambda _: (0, 0)) -> None:
        self.info = info
        self._stats = stats
        self._index_stats = index_stats

    def stats(self) -> tuple[int, int]:
        return self._stats()

    def index_stats(self, name: str) -> tuple[int, int]:
        return self._index_stats(name)


class PlanningDatabase:
    """Database-shaped recorder of catalogue changes (see the module docstring)."""

    def __init__(self, db: Database, placement: Placement,
                 restore: TableInfo | None = None) -> None:
        """`restore`: the earlier definition whose identity a created table of the
        same name keeps (see the module docstring)."""
        self._placement = placement
        self._restore = restore
        self._originals = {name: table.info.to_json() for name, table in db.tables.items()}
        self.tables: dict[str, PlannedTable] = {
            name: PlannedTable(copy.deepcopy(table.info), table.stats, table.index_stats)
            for name, table in db.tables.items()}
        self._created: set[str] = set()
        self._deleted: list[str] = []

    def create_table(self, info: TableInfo) -> PlannedTable:
        assert info.name not in self.tables
        if self._restore is not None and self._restore.name == info.name:
            _keep_identity(info, self._restore)
        count = initial_partition_count(info.billing_mode, info.read_units, info.write_units)
        info.partitions = []
        for start, end in hash_ranges(count):
            group = uuid.uuid4().hex
            info.partitions.append(PartitionInfo(uuid.uuid4().hex[:12], start, end,
                                                 group=group, members=self._placement(group)))
        info.status = "CREATING"
        table = PlannedTable(info, lambda: (0, 0))
        self.tables[info.name] = table
        self._created.add(info.name)
        return table

    async def delete_table(self, name: str) -> None:
        assert name in self.tables
        del self.tables[name]
        self._created.discard(name)
        self._deleted.append(name)

    def save_catalogue(self) -> None:
        """Handlers call this after changing a definition in place: nothing to do
        until `changes` compares them with the originals."""

    def changes(self) -> list[Change]:
        """The catalogue changes the handler made, in a valid order."""
        out: list[Change] = [delete_table(name) for name in self._deleted
                             if name in self._originals]
        for name, table in self.tables.items():
            if name in self._created or table.info.to_json() != self._originals.get(name):
                out.append(put_table(table.info))
        return out

    def created(self) -> set[str]:
        return set(self._created)

    def updated(self) -> set[str]:
        """Tables that existed before and whose definition the handler changed."""
        return {name for name, table in self.tables.items()
                if name not in self._created and
                table.info.to_json() != self._originals.get(name)}


def _keep_identity(info: TableInfo, earlier: TableInfo) -> None:
    """What a restored table keeps of its earlier self; the rest is the request's."""
    info.table_id = earlier.table_id
    info.creation_time = earlier.creation_time
    if info.billing_mode == earlier.billing_mode:
        info.pay_per_request_since = earlier.pay_per_request_since
    info.throughput_increased_at = earlier.throughput_increased_at
    info.throughput_decreased_at = earlier.throughput_decreased_at
