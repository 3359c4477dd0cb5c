"""The index simulation's end-of-run checks, once every fault healed and propagation drained.

- Every global index the catalogue keeps holds exactly what its table says
  (engine/global_index_check.py `check_index`: every base item with the
  index's keys once, with the projected attributes, nothing else, every
  entry under the key its own attributes give), over all of its partitions.
- Every base partition keeps exactly the catalogue's indexes, none of them
  still backfilling, and its outbox is empty.
- Every partition holds only keys of its own hash range.
"""
from __future__ import annotations

from typing import Iterable

from triplica.engine.global_index_check import check_index
from triplica.sim.index_workload import HASH_KEY, Table
from triplica.sim.index_world import Group, PartitionMap, key_hash
from triplica.engine.global_index_keys import GlobalIndex

PROBLEMS_MAX = 10


def check_indexes(table: Table, bases: PartitionMap, indexes: dict[str, GlobalIndex],
                  index_maps: dict[str, PartitionMap]) -> list[str]:
    items = [image for group in bases.groups for _, image in group.store.scan(b"", None)]
    problems: list[str] = []
    for name, index in sorted(indexes.items()):
        entries = [row for group in index_maps[name].groups for row in group.store.scan(b"", None)]
        problems += check_index(index, HASH_KEY, table.range_key, items, entries)
    return problems[:PROBLEMS_MAX]


def check_outboxes(bases: PartitionMap, names: Iterable[str]) -> list[str]:
    expected = sorted(names)
    problems = []
    for group in bases.groups:
        store = group.store
        kept = sorted(d["name"] for d in store.global_definitions())
        if kept != expected:
            problems.append(f"base {group.gid} keeps indexes {kept}, the catalogue has {expected}")
        if store.backfilling():
            problems.append(f"base {group.gid} still backfilling {sorted(store.backfilling())}")
        if store.outbox_size():
            problems.append(f"base {group.gid} outbox holds {store.outbox_size()} deltas")
    return problems


def check_placement(maps: Iterable[PartitionMap]) -> list[str]:
    problems = []
    for partition_map in maps:
        for group in partition_map.groups:
            stray = _stray(group)
            if stray:
                problems.append(f"{group.gid} [{group.low:x}, {group.high:x}) holds {stray} keys "
                                f"outside its range")
    return problems


def _stray(group: Group) -> int:
    return sum(1 for key, _ in group.store.scan(b"", None) if not group.holds(key_hash(key)))
