"""Global secondary indexes: their tables, and what entries an item image has.

A global secondary index is a key space of its own (the paper's and
DynamoDB's design): an *index table* in the catalogue, named
`index_table_name(table, index)` ("<table>/<index>": a slash is never in a
table name DynamoDB accepts, so it cannot meet a user's table), cut into
partitions that are replication groups like a table's, placed, split,
healed and moved by the same code. Its items are the index entries; users
never see it by that name (ListTables and DescribeTable show it only as an
index of its table).

Index key (the index table's storage key; model/keys.py encodings, each
self-delimiting so a concatenation compares like a tuple):

    hash8(index HASH values) || enc(h1) .. enc(hn) || enc(r1) .. enc(rm)
        || base storage key without its hash (enc(table pk) [|| enc(table sk)])

- hash8: for one HASH attribute, the table hash (model/keys.py
  `partition_hash`), so a single-attribute index spreads like a table; for
  several (multi-attribute keys), a hash of their concatenated encodings.
- Every RANGE attribute is present (an item missing any key attribute of
  the index, or holding one of another type, is not in it: sparse), so
  the parts are fixed in number and one index partition key value's
  entries are contiguous, ordered by the RANGE values left to right, then
  by the table key (DynamoDB leaves that order unspecified).
- The table key at the end makes entries of different items distinct.

Index entry: the projected image (engine/item_images.py form, like a local
index entry): the whole item for ALL, else the table's and index's key
attributes plus INCLUDE's NonKeyAttributes, in the item's attribute order.

`GlobalIndexer.deltas` turns an item change (old image, new image) into the
index changes: a pure function of the two images and the definitions, so
every replica that applies the same log entries computes the same ones
(engine/index_outbox.py keeps them until they are delivered).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from triplica.engine.index_definitions import IndexInfo
from triplica.engine.item_images import SIZE_PREFIX, encode_image
from triplica.model.index_keys import (INDEX_TABLE_SEPARATOR, base_of, index_hash, index_prefix,
                                       index_table_name, is_index_table)
from triplica.model.keys import PARTITION_HASH_BYTES, encode_key_value
from triplica.model.size import item_size_bytes

# The names the router needs too live in the model layer (it loads no engine).
__all__ = ["INDEX_TABLE_SEPARATOR", "GlobalIndex", "GlobalIndexer", "IndexDelta", "base_of",
           "index_hash", "index_prefix", "index_table_name", "indexer_of", "is_index_table"]

# (index name, index key, entry or None for a delete)
IndexDelta = tuple[str, bytes, bytes | None]


@dataclass(frozen=True)
class GlobalIndex:
    """One global index as its base partitions compute entries for it."""

    name: str
    hash_keys: tuple[tuple[str, str], ...]
    range_keys: tuple[tuple[str, str], ...]
    projected: frozenset[str] | None      # None: ALL

    @staticmethod
    def of(index: IndexInfo, table_keys: list[str]) -> "GlobalIndex":
        assert index.is_global, index.name
        return GlobalIndex(index.name, tuple(index.hash_keys), tuple(index.range_keys),
                           index.projected_names(table_keys))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "hash_keys": [list(k) for k in self.hash_keys],
                "range_keys": [list(k) for k in self.range_keys],
                "projected": None if self.projected is None else sorted(self.projected)}

    @staticmethod
    def from_json(data: dict[str, Any]) -> "GlobalIndex":
        projected = data["projected"]
        return GlobalIndex(str(data["name"]),
                           tuple((str(n), str(t)) for n, t in data["hash_keys"]),
                           tuple((str(n), str(t)) for n, t in data["range_keys"]),
                           None if projected is None else frozenset(map(str, projected)))

    def key_values(self, item: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The item's index key values, HASH ones first (None: not in the index)."""
        values = []
        for name, type_name in self.hash_keys + self.range_keys:
            value = item.get(name)
            if type(value) is not dict or type_name not in value:
                return None  # sparse
            values.append(value)
        return values

    def key_of(self, item: dict[str, Any], base_key: bytes) -> bytes | None:
        """The item's key in this index, from its attributes and table storage key."""
        values = self.key_values(item)
        if values is None:
            return None
        hashes = len(self.hash_keys)
        return (index_prefix(values[:hashes])
                + b"".join(encode_key_value(v) for v in values[hashes:])
                + base_key[PARTITION_HASH_BYTES:])

    def entry_of(self, item: dict[str, Any], image: bytes) -> bytes:
        if self.projected is None:
            return bytes(image)
        projected = {name: value for name, value in item.items() if name in self.projected}
        return encode_image(projected, item_size_bytes(projected))


class GlobalIndexer:
    """The global indexes a base partition keeps entries for (its store's definitions)."""

    def __init__(self, indexes: list[GlobalIndex]) -> None:
        assert len({index.name for index in indexes}) == len(indexes)
        self.indexes = tuple(indexes)
        self.names = tuple(index.name for index in indexes)

    def entries(self, key: bytes, image: bytes) -> list[tuple[str, bytes, bytes]]:
        """(index name, index key, entry) of every index this stored item is in."""
        item = orjson.loads(memoryview(image)[SIZE_PREFIX.size:])
        found = []
        for index in self.indexes:
            index_key = index.key_of(item, key)
            if index_key is not None:
                found.append((index.name, index_key, index.entry_of(item, image)))
        return found

    def deltas(self, key: bytes, old: bytes | None, new: bytes | None) -> list[IndexDelta]:
        """The index changes of one item change: stale entries removed, new or changed
        ones written; an entry that stays the same is not touched (and not charged)."""
        before = self.entries(key, old) if old is not None else []
        after = self.entries(key, new) if new is not None else []
        previous = {(name, index_key): entry for name, index_key, entry in before}
        staying = {(name, index_key) for name, index_key, _ in after}
        changed: list[IndexDelta] = [(name, index_key, None) for name, index_key in previous
                                     if (name, index_key) not in staying]
        changed += [(name, index_key, entry) for name, index_key, entry in after
                    if previous.get((name, index_key)) != entry]
        return changed


def indexer_of(definitions: list[dict[str, Any]]) -> GlobalIndexer | None:
    """The indexer of a store's saved definitions (GlobalIndex.to_json documents)."""
    if not definitions:
        return None
    return GlobalIndexer([GlobalIndex.from_json(d) for d in definitions])
