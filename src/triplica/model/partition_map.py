"""The partition map in compact form: per table, sorted range boundaries.

What MemDS servers hold and routers cache (paper: MemDS "stores all the
metadata in memory ... in a compact form"). A table is not one object per
key or per partition but four parallel tuples indexed by partition number:
the sorted hash-range starts (the first is 0; a range ends where the next
starts, the last at 2**64), the replication group key, and the member node
ids. "Which partition holds hash h" is one bisect.

The metadata system publishes a table's map as a document (`TableMap.to_doc`,
msgpack/JSON-safe: hash starts are < 2**64, so they fit msgpack's uint64)
with an epoch: the metadata log index of the change that produced it. Epochs
only grow, so a copy keeps whichever version of a table has the higher epoch
and changes may arrive late or twice without harm.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

HASH_SPACE_END = 1 << 64
PARTITIONS_PER_TABLE_MAX = 1 << 16


@dataclass(frozen=True)
class GlobalIndexRoute:
    """What a router needs of a global index to route a read of it."""

    name: str
    hash_keys: tuple[tuple[str, str], ...]
    range_keys: tuple[str, ...]

    def to_doc(self) -> dict[str, Any]:
        return {"name": self.name, "hash_keys": [list(pair) for pair in self.hash_keys],
                "range_keys": list(self.range_keys)}

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> "GlobalIndexRoute":
        return GlobalIndexRoute(str(doc["name"]),
                                tuple((str(n), str(t)) for n, t in doc["hash_keys"]),
                                tuple(str(n) for n in doc["range_keys"]))


@dataclass(frozen=True)
class Route:
    """Where one hash lives: partition number `index` of the table's map at `epoch`."""

    table: str
    epoch: int
    index: int
    hash_start: int
    hash_end: int          # exclusive; HASH_SPACE_END for the last range
    group: str
    members: tuple[int, ...]


@dataclass(frozen=True)
class TableMap:
    name: str
    epoch: int
    hash_key: str
    hash_type: str
    range_key: str | None
    range_type: str | None
    starts: tuple[int, ...]
    groups: tuple[str, ...]
    members: tuple[tuple[int, ...], ...]
    # (name, sort key attribute) of each local secondary index: a Query of one is
    # routed by the table's partition key like a Query of the table.
    local_indexes: tuple[tuple[str, str], ...] = ()
    # Each global secondary index: (name, its HASH attributes as (name, type), its RANGE
    # attributes' names). A Query or Scan of one is routed over its index table's map,
    # by the hash of its HASH values (engine/global_index_keys.py `index_hash`).
    global_indexes: tuple[GlobalIndexRoute, ...] = ()

    def __post_init__(self) -> None:
        count = len(self.starts)
        assert 1 <= count <= PARTITIONS_PER_TABLE_MAX, count
        assert len(self.groups) == count and len(self.members) == count
        assert self.starts[0] == 0, self.starts[0]
        assert all(a < b for a, b in zip(self.starts, self.starts[1:])), "starts must increase"
        assert self.starts[-1] < HASH_SPACE_END
        assert self.epoch >= 0

    @property
    def partition_count(self) -> int:
        return len(self.starts)

    def end_of(self, index: int) -> int:
        return self.starts[index + 1] if index + 1 < len(self.starts) else HASH_SPACE_END

    def index_of(self, key_hash: int) -> int:
        assert 0 <= key_hash < HASH_SPACE_END, key_hash
        return bisect.bisect_right(self.starts, key_hash) - 1

    def route(self, index: int) -> Route:
        return Route(self.name, self.epoch, index, self.starts[index], self.end_of(index),
                     self.groups[index], self.members[index])

    def route_for_hash(self, key_hash: int) -> Route:
        return self.route(self.index_of(key_hash))

    def indexes_overlapping(self, hash_start: int, hash_end: int) -> range:
        """Partition numbers whose ranges meet [hash_start, hash_end), in hash order."""
        if hash_start >= hash_end:
            return range(0)
        return range(self.index_of(hash_start), self.index_of(hash_end - 1) + 1)

    def local_index_range_key(self, name: Any) -> str | None:
        return next((key for index, key in self.local_indexes if index == name), None)

    def global_index(self, name: Any) -> GlobalIndexRoute | None:
        return next((index for index in self.global_indexes if index.name == name), None)

    def to_doc(self) -> dict[str, Any]:
        doc = {"name": self.name, "epoch": self.epoch, "hash_key": self.hash_key,
               "hash_type": self.hash_type, "range_key": self.range_key,
               "range_type": self.range_type,
               "partitions": [{"start": s, "group": g, "members": list(m)}
                              for s, g, m in zip(self.starts, self.groups, self.members)]}
        if self.local_indexes:
            doc["local_indexes"] = [list(pair) for pair in self.local_indexes]
        if self.global_indexes:
            doc["global_indexes"] = [index.to_doc() for index in self.global_indexes]
        return doc

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> "TableMap":
        partitions = doc["partitions"]
        return TableMap(name=str(doc["name"]), epoch=int(doc["epoch"]),
                        hash_key=str(doc["hash_key"]), hash_type=str(doc["hash_type"]),
                        range_key=doc.get("range_key"), range_type=doc.get("range_type"),
                        starts=tuple(int(p["start"]) for p in partitions),
                        groups=tuple(str(p["group"]) for p in partitions),
                        members=tuple(tuple(int(m) for m in p["members"]) for p in partitions),
                        local_indexes=tuple((str(n), str(k))
                                            for n, k in doc.get("local_indexes", ())),
                        global_indexes=tuple(GlobalIndexRoute.from_doc(index)
                                             for index in doc.get("global_indexes", ())))
