"""The index simulation's partitions: real stores, who leads them, their maps, splits.

A replication group is modelled as its state machine only: one real
PartitionStore (the replication inside a group is tested by the other
simulators) plus "who leads" (a term that grows at every leader change, and
a time until which it has no leader). Every group applies log entries in
order with strictly increasing indexes; a split child starts from a copy of
its parent's store at the parent's last index A (storage/lmdb_store.py
`become_child`, as engine/group_split.py builds children) and continues
from A + 1, so sequences of a base partition's outbox keep growing across
splits (docs/GLOBAL_INDEXES.md "Splits").

Base partitions cover the table's 64-bit hash space; each global index has
its own list of index partitions over the hash space of index keys (their
first 8 bytes). A split parent is `gone`: its store stays open until the end
of the run (only a deliberate fault still writes to it), and the maps name
its children instead.
"""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import Any, Callable

from triplica.engine.log_entries import Write, decode_entry, encode_entry, stored_item_size
from triplica.storage.index_outbox import DeltaSourceOf
from triplica.storage.lmdb_store import PartitionStore

HASH_SPACE = 1 << 64
MAP_SIZE_BYTES = 64 * 1024 * 1024   # the runs hold a few hundred small items


@dataclass
class Group:
    """One partition's replication group: its store and its leadership."""

    gid: str
    low: int
    high: int                 # exclusive; HASH_SPACE for the last partition
    store: PartitionStore
    term: int = 0             # the leader's term: a propagator of an older one is gone
    down_until_ms: int = 0    # no leader (election after a crash) until then
    gone: bool = False        # split: its children took over its range
    split_from: str | None = None

    def leads(self, now_ms: int) -> bool:
        return not self.gone and now_ms >= self.down_until_ms

    def apply(self, writes: list[Write]) -> int:
        """Apply one log entry (through the wire encoding, as a replica gets it); its index."""
        index = self.store.applied_index() + 1
        self.store.apply(index, decode_entry(encode_entry(writes)))
        return index

    def holds(self, key_hash: int) -> bool:
        return self.low <= key_hash < self.high


def key_hash(key: bytes) -> int:
    """A storage or index key's placement hash: its first 8 bytes."""
    return int.from_bytes(key[:8], "big")


def _hash_bytes(value: int) -> bytes | None:
    return None if value >= HASH_SPACE else value.to_bytes(8, "big")


class PartitionMap:
    """Partitions covering the hash space, in hash order."""

    def __init__(self, groups: list[Group]) -> None:
        self.groups = groups

    def find(self, key_hash_value: int) -> Group:
        position = bisect.bisect_right([g.low for g in self.groups], key_hash_value) - 1
        return self.groups[position]

    def replace(self, parent: Group, children: list[Group]) -> None:
        position = self.groups.index(parent)
        self.groups[position:position + 1] = children


class Stores:
    """Opens, copies and cuts the run's stores under one temporary directory."""

    def __init__(self, root: str, global_of: DeltaSourceOf) -> None:
        self.root = root
        self.global_of = global_of
        self.opened: list[PartitionStore] = []

    def open(self, name: str, base: bool) -> PartitionStore:
        store = PartitionStore(os.path.join(self.root, name), map_size_bytes=MAP_SIZE_BYTES,
                               value_size=stored_item_size,
                               global_of=self.global_of if base else None)
        self.opened.append(store)
        return store

    def cut_child(self, parent: Group, gid: str, low: int, high: int, base: bool) -> Group:
        """A split child: the parent's store copied, cut to [low, high), at its index."""
        index = parent.store.applied_index()
        parent.store.copy_to(os.path.join(self.root, gid))
        store = self.open(gid, base)
        store.become_child(low.to_bytes(8, "big"), _hash_bytes(high), index)
        return Group(gid, low, high, store, split_from=parent.gid)

    def close(self) -> None:
        for store in self.opened:
            store.close()


def split_point(group: Group, keys: Callable[[], list[bytes]], pick: Callable[[list[Any]], Any]) -> int:
    """A boundary inside the group's range: one of its keys' hashes (as production picks
    from the observed keys), else the middle of the range."""
    hashes = sorted({key_hash(k) for k in keys() if group.low < key_hash(k) < group.high})
    if hashes:
        return int(pick(hashes))
    return group.low + (group.high - group.low) // 2
