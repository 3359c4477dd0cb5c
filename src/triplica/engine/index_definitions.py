"""A table's secondary index definitions, as CreateTable declared them.

An index is global (its own key space: up to four HASH and four RANGE
attributes, DynamoDB's multi-attribute keys of November 2025) or local
(inside its table's partitions: the table's HASH attribute and one RANGE
attribute of its own). Its projection is ALL, KEYS_ONLY or INCLUDE with
NonKeyAttributes; the table's and the index's key attributes are always
projected. Definitions live in the catalogue (engine/catalogue.py
TableInfo), so they follow the metadata log and survive restarts; a
catalogue document written before indexes existed has none.

Local secondary indexes are kept by engine/local_indexes.py; a global one
is a table of its own in the catalogue, its *index table*
(engine/index_tables.py, docs/GLOBAL_INDEXES.md). A global index has a
status (CREATING, ACTIVE, DELETING) and a backfilling flag, moved by the
control plane; a definition saved before they existed loads ACTIVE and not
backfilling (the index existed and was complete).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GLOBAL = "GLOBAL"
LOCAL = "LOCAL"
PROJECTION_ALL = "ALL"
PROJECTION_KEYS_ONLY = "KEYS_ONLY"
PROJECTION_INCLUDE = "INCLUDE"
PROJECTION_TYPES = (PROJECTION_ALL, PROJECTION_KEYS_ONLY, PROJECTION_INCLUDE)
CREATING = "CREATING"
ACTIVE = "ACTIVE"
DELETING = "DELETING"
INDEX_STATUSES = (CREATING, ACTIVE, DELETING)
STATUS_CREATING, STATUS_ACTIVE, STATUS_DELETING = CREATING, ACTIVE, DELETING


@dataclass
class IndexInfo:
    name: str
    kind: str                                  # GLOBAL or LOCAL
    hash_keys: list[tuple[str, str]]           # (attribute name, type S/N/B), HASH entries
    range_keys: list[tuple[str, str]]          # RANGE entries, in key schema order
    projection_type: str
    non_key_attributes: list[str] = field(default_factory=list)
    read_units: int = 0                        # a global index's provisioned throughput
    write_units: int = 0
    # A global index's lifecycle (docs/GLOBAL_INDEXES.md): CREATING (Backfilling while its
    # base partitions backfill it), ACTIVE, DELETING. A local index is always ACTIVE.
    status: str = ACTIVE
    backfilling: bool = False

    def __post_init__(self) -> None:
        assert self.kind in (GLOBAL, LOCAL) and self.projection_type in PROJECTION_TYPES
        assert self.status in INDEX_STATUSES, self.status
        assert self.hash_keys, self.name
        assert self.kind == GLOBAL or (len(self.hash_keys) == 1 and len(self.range_keys) == 1)

    @property
    def is_global(self) -> bool:
        return self.kind == GLOBAL

    def key_attributes(self) -> list[tuple[str, str]]:
        """(name, type) of every key attribute of the index, HASH ones first."""
        return list(self.hash_keys) + list(self.range_keys)

    def key_names(self) -> list[str]:
        return [name for name, _ in self.key_attributes()]

    def key_schema(self) -> list[dict[str, str]]:
        return ([{"AttributeName": name, "KeyType": "HASH"} for name, _ in self.hash_keys]
                + [{"AttributeName": name, "KeyType": "RANGE"} for name, _ in self.range_keys])

    def projection(self) -> dict[str, Any]:
        projection: dict[str, Any] = {"ProjectionType": self.projection_type}
        if self.projection_type == PROJECTION_INCLUDE:
            projection["NonKeyAttributes"] = list(self.non_key_attributes)
        return projection

    def projects_all(self) -> bool:
        return self.projection_type == PROJECTION_ALL

    def projected_names(self, table_keys: list[str]) -> frozenset[str] | None:
        """The top-level attributes an index entry holds (None: all of them)."""
        if self.projects_all():
            return None
        return frozenset(table_keys) | frozenset(self.key_names()) | \
            frozenset(self.non_key_attributes)

    def arn(self, table_arn: str) -> str:
        return f"{table_arn}/index/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind,
                "hash_keys": [list(k) for k in self.hash_keys],
                "range_keys": [list(k) for k in self.range_keys],
                "projection_type": self.projection_type,
                "non_key_attributes": list(self.non_key_attributes),
                "read_units": self.read_units, "write_units": self.write_units,
                "status": self.status, "backfilling": self.backfilling}

    @staticmethod
    def from_json(data: dict[str, Any]) -> "IndexInfo":
        return IndexInfo(name=data["name"], kind=data["kind"],
                         hash_keys=[(str(n), str(t)) for n, t in data["hash_keys"]],
                         range_keys=[(str(n), str(t)) for n, t in data["range_keys"]],
                         projection_type=data["projection_type"],
                         non_key_attributes=list(data.get("non_key_attributes", [])),
                         read_units=int(data.get("read_units", 0)),
                         write_units=int(data.get("write_units", 0)),
                         status=str(data.get("status", ACTIVE)),
                         backfilling=bool(data.get("backfilling", False)))
