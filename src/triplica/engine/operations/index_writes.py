"""What a write must check and report because its table has secondary indexes.

- Index key values (every write path, before anything is proposed): an item
  whose attribute that is a key of some index has another type than its
  AttributeDefinition, or is an empty string or binary, is refused with
  DynamoDB's ValidationException and nothing is written. An item without
  an index's key attributes is simply not in that index.
- Write capacity per index, local or global (ReturnConsumedCapacity INDEXES,
  DynamoDB's rules): nothing when the index entry does not change, one write of the
  entry's size when one is put or deleted or its projected attributes
  change, two (the old entry deleted, the new one put) when its key changes.
- Item collections of tables with local indexes: ReturnItemCollectionMetrics
  SIZE answers the collection's key and a size estimate in GB; a write that
  would grow a collection past ITEM_COLLECTION_BYTES_MAX is refused with
  ItemCollectionSizeLimitExceededException. The size comes from the leader's
  store (storage/lmdb_store.py keeps it per collection, index entries with
  their 100 bytes of overhead included) plus what this request adds; writes
  still in flight from other requests are not in it, so the limit can be
  passed by about what is in flight at once, an estimate as DynamoDB's is.

The limit is DynamoDB's 10 GB; the environment variable
TRIPLICA_ITEM_COLLECTION_BYTES_MAX lowers it (read at start, for tests).
"""
from __future__ import annotations

import math
import os
from typing import Any

from triplica.engine.catalogue import TableInfo
from triplica.engine.item_images import image_size
from triplica.engine.local_indexes import INDEX_ENTRY_OVERHEAD_BYTES, LocalIndexer, collection_key
from triplica.errors import ItemCollectionSizeLimitExceededException, ValidationException
from triplica.model import limits
from triplica.model.capacity import write_units
from triplica.model.keys import validate_key_value
from triplica.model.values import decode_binary

ITEM_COLLECTION_BYTES_MAX = int(os.environ.get("TRIPLICA_ITEM_COLLECTION_BYTES_MAX",
                                               limits.ITEM_COLLECTION_BYTES_MAX))
GB_BYTES = 1024 ** 3


def check_index_keys(info: TableInfo, item: dict[str, Any]) -> None:
    """Refuse an item whose index key attributes have the wrong type or are empty."""
    if not (info.local_indexes or info.global_indexes):
        return
    for index in info.indexes():
        hash_names = {name for name, _ in index.hash_keys}
        for name, type_name in index.key_attributes():
            value = item.get(name)
            if value is None:
                continue
            actual = next(iter(value))
            if actual != type_name:
                raise ValidationException(
                    "One or more parameter values were invalid: Type mismatch for Index Key "
                    f"{name} Expected: {type_name} Actual: {actual} IndexName: {index.name}")
            inner = value[actual]
            if actual in ("S", "B") and not (inner if actual == "S" else decode_binary(inner)):
                kind = "string" if actual == "S" else "binary"
                raise ValidationException(
                    "One or more parameter values are not valid. A value specified for a "
                    "secondary index key is not supported. The AttributeValue for a key "
                    f"attribute cannot contain an empty {kind} value. IndexName: {index.name}, "
                    f"IndexKey: {name}")
            validate_key_value(name, value, name in hash_names)


def index_units(indexer: Any, key: bytes, old: bytes | None,
                new: bytes | None) -> dict[str, float]:
    """Write units each index is charged for one item's write (module docstring): of a
    LocalIndexer or a GlobalIndexer (engine/global_index_keys.py), the same rules."""
    if indexer is None:
        return {}
    before = {name: (k, v) for name, k, v in indexer.entries(key, old)} if old else {}
    after = {name: (k, v) for name, k, v in indexer.entries(key, new)} if new else {}
    charged: dict[str, float] = {}
    for name in indexer.names:
        was, now = before.get(name), after.get(name)
        if was is not None and now is not None:
            if was[0] != now[0]:
                units = write_units(image_size(was[1])) + write_units(image_size(now[1]))
            else:
                units = write_units(image_size(now[1])) if was[1] != now[1] else 0.0
        elif was is not None or now is not None:
            units = write_units(image_size((was or now)[1]))  # type: ignore[index]
        else:
            units = 0.0
        if units:
            charged[name] = units
    return charged


def collection_growth(indexer: LocalIndexer, key: bytes, old: bytes | None,
                      new: bytes | None) -> int:
    """Bytes an item's write adds to its collection (negative when it shrinks), counted
    as the store counts them."""
    def size(stored: bytes | None) -> int:
        if stored is None:
            return 0
        entries = indexer.entries(key, stored)
        return image_size(stored) + sum(image_size(entry) + INDEX_ENTRY_OVERHEAD_BYTES
                                        for _, _, entry in entries)
    return size(new) - size(old)


class ItemCollections:
    """The collections one request writes to, with what it adds to each (module docstring)."""

    def __init__(self, info: TableInfo, indexer: LocalIndexer) -> None:
        self.info = info
        self.indexer = indexer
        self._sizes: dict[bytes, int] = {}

    def write(self, partition: Any, key: bytes, old: bytes | None, new: bytes | None,
              partition_value: dict) -> dict[str, Any]:
        """Account one item's write; its ItemCollectionMetrics. Raises when the write
        would grow its collection past the limit."""
        collection = collection_key(key)
        size = self._sizes.get(collection)
        if size is None:
            size = partition.collection_size(collection)
        growth = collection_growth(self.indexer, key, old, new)
        if growth > 0 and size + growth > ITEM_COLLECTION_BYTES_MAX:
            raise ItemCollectionSizeLimitExceededException("Collection size exceeded.")
        size = max(0, size + growth)
        self._sizes[collection] = size
        return metrics(self.info, partition_value, size)


def metrics(info: TableInfo, partition_value: dict, size_bytes: int) -> dict[str, Any]:
    """ItemCollectionMetrics: the collection's key and a size range in GB."""
    low = math.floor(size_bytes / GB_BYTES)
    return {"ItemCollectionKey": {info.hash_key: partition_value},
            "SizeEstimateRangeGB": [float(low), float(low + 1)]}
