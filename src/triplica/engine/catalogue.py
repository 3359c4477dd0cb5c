"""The table catalogue of one server: table definitions and their partitions.

Each table is cut into hash ranges of the 64-bit partition-key hash space
(ordered, contiguous, non-overlapping), one replication group each; splits
cut a range in two (engine/group_split.py). Every node's catalogue is the
metadata log folded up to an epoch (metadata/catalogue_log.py).

The catalogue is small and changes rarely, so each node saves it as one JSON
document (`catalog.json`, its name since the first release) written
atomically (temporary file, fsync, rename, fsync of the directory). A table is
visible only after its catalogue entry is durable.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import orjson

from triplica.engine.index_definitions import IndexInfo
from triplica.model.partition_map import GlobalIndexRoute, TableMap

HASH_SPACE_END = 1 << 64
LINEAGE_MAX = 32   # split ancestors a partition remembers (storage/index_outbox.py allows 64)
# The metadata group's key (metadata/metadata_replica.py): no table group has it.
METADATA_GROUP = "__metadata__"
# The file name predates the code's spelling; kept so existing data directories open.
CATALOGUE_FILE_NAME = "catalog.json"
CATALOGUE_FORMAT_VERSION = 1
ACCOUNT_ID = "000000000000"   # the one account every table belongs to (in ARNs)


@dataclass
class PartitionInfo:
    partition_id: str
    hash_start: int          # inclusive
    hash_end: int            # exclusive; HASH_SPACE_END for the last range
    # A cluster's replication group of this range: its key and member node ids
    # (set by the metadata system; None in `triplica serve`).
    group: str | None = None
    members: list[int] | None = None
    # A cluster split's child: the partition id of the parent it is cut from
    # (engine/group_split.py: a node builds its replica from the parent's).
    split_from: str | None = None
    # Every split ancestor's partition id, the parent first (at most LINEAGE_MAX): a
    # child's index batches fence them all (docs/GLOBAL_INDEXES.md "Splits"); empty for a
    # partition placed at CreateTable.
    ancestors: list[str] = field(default_factory=list)

    def lineage(self) -> list[str]:
        """The split ancestors to fence: `ancestors`, else (a catalogue written before
        they were kept) the parent alone."""
        if self.ancestors:
            return list(self.ancestors)
        return [self.split_from] if self.split_from else []


@dataclass
class TableInfo:
    name: str
    table_id: str
    region: str
    hash_key: str
    hash_type: str
    range_key: str | None
    range_type: str | None
    attribute_definitions: list[dict[str, str]]
    billing_mode: str
    read_units: int
    write_units: int
    creation_time: float
    table_class: str = "STANDARD"
    deletion_protection: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    status: str = "ACTIVE"
    pay_per_request_since: float | None = None
    throughput_increased_at: float | None = None
    throughput_decreased_at: float | None = None
    partitions: list[PartitionInfo] = field(default_factory=list)
    # The two children of a split under way (metadata/control_plane.py), else empty.
    split_intent: list[PartitionInfo] = field(default_factory=list)
    # Secondary indexes (engine/index_definitions.py), as CreateTable declared them.
    global_indexes: list[IndexInfo] = field(default_factory=list)
    local_indexes: list[IndexInfo] = field(default_factory=list)

    @property
    def arn(self) -> str:
        return f"arn:aws:dynamodb:{self.region}:{ACCOUNT_ID}:table/{self.name}"

    def key_schema(self) -> list[dict[str, str]]:
        schema = [{"AttributeName": self.hash_key, "KeyType": "HASH"}]
        if self.range_key is not None:
            schema.append({"AttributeName": self.range_key, "KeyType": "RANGE"})
        return schema

    def indexes(self) -> list[IndexInfo]:
        """Every secondary index, local ones first."""
        return self.local_indexes + self.global_indexes

    def index(self, name: str) -> IndexInfo | None:
        return next((index for index in self.indexes() if index.name == name), None)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        # JSON integers stop at 64 bits; the hash space ends at 2**64.
        data["partitions"] = [_partition_json(p) for p in self.partitions]
        data["split_intent"] = [_partition_json(p) for p in self.split_intent]
        data["global_indexes"] = [index.to_json() for index in self.global_indexes]
        data["local_indexes"] = [index.to_json() for index in self.local_indexes]
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> "TableInfo":
        """A table from its document; one written before indexes existed has none."""
        data = dict(data)
        partitions = [_partition_of(p) for p in data.pop("partitions")]
        intent = [_partition_of(p) for p in data.pop("split_intent", [])]
        global_indexes = [IndexInfo.from_json(i) for i in data.pop("global_indexes", [])]
        local_indexes = [IndexInfo.from_json(i) for i in data.pop("local_indexes", [])]
        return TableInfo(partitions=partitions, split_intent=intent,
                         global_indexes=global_indexes, local_indexes=local_indexes, **data)


def _partition_json(partition: PartitionInfo) -> dict[str, Any]:
    data: dict[str, Any] = {"partition_id": partition.partition_id,
                            "hash_start": str(partition.hash_start),
                            "hash_end": str(partition.hash_end)}
    if partition.group is not None:
        data["group"] = partition.group
        data["members"] = list(partition.members or ())
    if partition.split_from is not None:
        data["split_from"] = partition.split_from
    if partition.ancestors:
        data["ancestors"] = list(partition.ancestors)
    return data


def _partition_of(data: dict[str, Any]) -> PartitionInfo:
    members = data.get("members")
    return PartitionInfo(data["partition_id"], int(data["hash_start"]), int(data["hash_end"]),
                         group=data.get("group"),
                         members=None if members is None else [int(m) for m in members],
                         split_from=data.get("split_from"),
                         ancestors=[str(a) for a in data.get("ancestors", [])])


class Catalogue:
    """Durable map of table name -> TableInfo."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.path = os.path.join(data_dir, CATALOGUE_FILE_NAME)
        self.tables: dict[str, TableInfo] = {}
        # In a cluster: the metadata log epoch this catalogue reflects
        # (metadata/catalogue_follower.py); always 0 in `triplica serve`.
        self.epoch = 0
        # In a cluster: the nodes being drained (metadata/replica_mover.py).
        self.draining: list[int] = []
        # The metadata group's members once moved (empty: the placement rule's).
        self.metadata_members: list[int] = []
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                document = orjson.loads(f.read())
            assert document["version"] == CATALOGUE_FORMAT_VERSION, document["version"]
            self.epoch = int(document.get("epoch", 0))
            self.draining = [int(n) for n in document.get("draining", [])]
            self.metadata_members = [int(n) for n in document.get("metadata_members", [])]
            for data in document["tables"]:
                info = TableInfo.from_json(data)
                self.tables[info.name] = info

    def save(self) -> None:
        document = {"version": CATALOGUE_FORMAT_VERSION, "epoch": self.epoch,
                    "draining": self.draining, "metadata_members": self.metadata_members,
                    "tables": [t.to_json() for t in self.tables.values()]}
        payload = orjson.dumps(document, option=orjson.OPT_INDENT_2)
        temporary = self.path + ".tmp"
        with open(temporary, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.data_dir, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def table_map_of(info: TableInfo, epoch: int) -> TableMap:
    """The routing view of a table (what MemDS serves) at `epoch`."""
    partitions = info.partitions
    assert partitions and all(p.group is not None for p in partitions), info.name
    return TableMap(name=info.name, epoch=epoch, hash_key=info.hash_key,
                    hash_type=info.hash_type, range_key=info.range_key,
                    range_type=info.range_type,
                    starts=tuple(p.hash_start for p in partitions),
                    groups=tuple(p.group for p in partitions),  # type: ignore[misc]
                    members=tuple(tuple(p.members or ()) for p in partitions),
                    local_indexes=tuple((index.name, index.range_keys[0][0])
                                        for index in info.local_indexes),
                    global_indexes=tuple(GlobalIndexRoute(index.name, tuple(index.hash_keys),
                                                          tuple(n for n, _ in index.range_keys))
                                         for index in info.global_indexes))
