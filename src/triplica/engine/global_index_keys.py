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

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from triplica.engine.catalogue import TableInfo
from triplica.engine.index_definitions import CREATING, IndexInfo
from triplica.engine.item_images import SIZE_PREFIX, encode_image
from triplica.model.keys import PARTITION_HASH_BYTES, encode_key_value, partition_hash
from triplica.model.size import item_size_bytes

INDEX_TABLE_SEPARATOR = "/"
_MULTI_HASH_PERSON = b"triplica-gsi"

# (index name, index key, entry or None for a delete)
IndexDelta = tuple[str, bytes, bytes | None]


def index_table_name(table: str, index: str) -> str:
    return f"{table}{INDEX_TABLE_SEPARATOR}{index}"


def index_table_info(info: TableInfo, index: IndexInfo, table_id: str) -> TableInfo:
    """The index table of a global index of `info`, without partitions (placed by the
    metadata system like a table's). Its key fields name the index's first HASH and
    RANGE attributes (for the operator's eyes: the real layout is the module's)."""
    assert index.is_global
    hash_key, hash_type = index.hash_keys[0]
    range_key, range_type = index.range_keys[0] if index.range_keys else (None, None)
    return TableInfo(name=index_table_name(info.name, index.name), table_id=table_id,
                     region=info.region, hash_key=hash_key, hash_type=hash_type,
                     range_key=range_key, range_type=range_type, attribute_definitions=[],
                     billing_mode=info.billing_mode, read_units=index.read_units,
                     write_units=index.write_units, creation_time=info.creation_time,
                     status=CREATING)


def is_index_table(name: str) -> bool:
    return INDEX_TABLE_SEPARATOR in name


def base_of(index_table: str) -> tuple[str, str]:
    """(table, index) of an index table's name."""
    table, _, index = index_table.partition(INDEX_TABLE_SEPARATOR)
    assert table and index, index_table
    return table, index


def index_hash(values: list[dict[str, Any]]) -> int:
    """The 64-bit hash of an index partition key (its HASH attributes' values, in key
    schema order): the table hash for one value, else a hash of their encodings."""
    assert values
    if len(values) == 1:
        return partition_hash(values[0])
    digest = hashlib.blake2b(b"".join(encode_key_value(v) for v in values),
                             digest_size=PARTITION_HASH_BYTES, person=_MULTI_HASH_PERSON).digest()
    return int.from_bytes(digest, "big")


def index_prefix(values: list[dict[str, Any]]) -> bytes:
    """Hash and encoded HASH values: the prefix of one index partition key's entries."""
    return index_hash(values).to_bytes(PARTITION_HASH_BYTES, "big") + \
        b"".join(encode_key_value(v) for v in values)


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
