"""Local secondary indexes: what entries an item image has, and the index key layout.

A local secondary index lives inside its base partition (the paper's and
DynamoDB's design): one LMDB database of the partition's environment,
changed in the same transaction as the base item, from the same committed
log entry (storage/lmdb_store.py, "Secondary indexes"). A log entry holds
only the item's new image; the store reads the old one at apply time, and
`LocalIndexer.entries` is a pure function of an image, so every replica
applying the same entries holds the same index, consistent with its items
at every applied index, through restarts (WAL replay), snapshots (the LMDB
image carries the index databases) and splits (a child keeps the entries of
its hash range).

Index key: `hash(pk) || enc(pk) || enc(index sort key) || enc(table sort key)`
(model/keys.py encodings, self-delimiting), so one partition key's entries
are contiguous, ordered by the index sort key, then by the table sort key
(DynamoDB's order), and a parallel Scan segment is a hash range, as for the
table. An item without the index sort key (or, defensively, with a value of
another type) has no entry: the index is sparse.

Index entry: an item image (engine/item_images.py) of the projected
attributes: the whole stored image for ALL, else the table's and index's key
attributes plus INCLUDE's NonKeyAttributes, in the item's attribute order.
An item collection (every item of one partition key value, with their index
entries) has a size kept by the store; its key is the hash followed by a
16-byte digest of the partition prefix (LMDB keys stop at 511 bytes).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from triplica.engine.catalogue import TableInfo
from triplica.engine.index_definitions import IndexInfo
from triplica.engine.item_images import SIZE_PREFIX, encode_image
from triplica.model.keys import (PARTITION_HASH_BYTES, encode_key_value, encode_partition_prefix,
                                 encoded_value_end, partition_prefix_length)
from triplica.model.size import item_size_bytes

# DynamoDB counts each index entry's storage with 100 bytes of overhead.
INDEX_ENTRY_OVERHEAD_BYTES = 100
COLLECTION_DIGEST_BYTES = 16
_COLLECTION_PERSON = b"triplica-icoll"


@dataclass(frozen=True)
class _LocalIndex:
    name: str
    range_key: str
    range_type: str
    projected: frozenset[str] | None    # None: ALL


class LocalIndexer:
    """The local secondary indexes of one table (storage/lmdb_store.py SecondaryIndexer)."""

    entry_overhead_bytes = INDEX_ENTRY_OVERHEAD_BYTES

    def __init__(self, info: TableInfo) -> None:
        assert info.local_indexes and info.range_key is not None, info.name
        table_keys = [info.hash_key, info.range_key]
        self._indexes = tuple(
            _LocalIndex(index.name, index.range_keys[0][0], index.range_keys[0][1],
                        index.projected_names(table_keys))
            for index in info.local_indexes)
        self.names = tuple(index.name for index in self._indexes)

    def entries(self, key: bytes, value: bytes) -> list[tuple[str, bytes, bytes]]:
        item = orjson.loads(memoryview(value)[SIZE_PREFIX.size:])
        prefix_end = partition_prefix_length(key)
        found = []
        for index in self._indexes:
            sort_value = item.get(index.range_key)
            if type(sort_value) is not dict or index.range_type not in sort_value:
                continue  # sparse: no entry
            index_key = key[:prefix_end] + encode_key_value(sort_value) + key[prefix_end:]
            found.append((index.name, index_key, _project(index, item, value)))
        return found

    def collection(self, key: bytes) -> bytes:
        return collection_key(key)

    def base_key(self, name: str, index_key: bytes) -> bytes:
        prefix_end = partition_prefix_length(index_key)
        return index_key[:prefix_end] + index_key[encoded_value_end(index_key, prefix_end):]


def _project(index: _LocalIndex, item: dict, value: bytes) -> bytes:
    if index.projected is None:
        return value
    projected = {name: attribute for name, attribute in item.items() if name in index.projected}
    return encode_image(projected, item_size_bytes(projected))


def local_indexer_of(info: TableInfo) -> LocalIndexer | None:
    """The indexer a partition of this table keeps (None: the table has no local index)."""
    return LocalIndexer(info) if info.local_indexes else None


def collection_key(storage_key: bytes) -> bytes:
    """The key of the item collection a storage key (or index key) belongs to."""
    prefix = storage_key[:partition_prefix_length(storage_key)]
    digest = hashlib.blake2b(prefix, digest_size=COLLECTION_DIGEST_BYTES,
                             person=_COLLECTION_PERSON).digest()
    return prefix[:PARTITION_HASH_BYTES] + digest


def index_key_of(index: IndexInfo, info: TableInfo, item: dict) -> bytes | None:
    """The key an item has in a local index (None: not in it); the same bytes as
    `LocalIndexer.entries` makes, from the item's attributes."""
    assert not index.is_global and info.range_key is not None
    name, type_name = index.range_keys[0]
    sort_value = item.get(name)
    if type(sort_value) is not dict or type_name not in sort_value:
        return None
    return index_key(item[info.hash_key], sort_value, item[info.range_key])


def index_key(partition_value: dict, index_sort_value: dict, table_sort_value: dict) -> bytes:
    return (encode_partition_prefix(partition_value) + encode_key_value(index_sort_value)
            + encode_key_value(table_sort_value))
