"""A checker of local secondary indexes against their items, for tests and verification.

`check_store` reads one partition replica's store and reports every way its
local secondary indexes differ from what its items say they must hold: each
item that has an index's sort key (of the defined type) is in that index
exactly once, under the key its attributes give, with exactly the projected
attributes (all of them for ALL; the table's and index's keys, plus
INCLUDE's NonKeyAttributes, otherwise) and their values; the index holds
nothing else; the per-index counts and bytes the store keeps (DescribeTable's
ItemCount and IndexSizeBytes) and the item collection sizes agree with the
entries.

It is deliberately written from the definitions (engine/index_definitions.py)
and the item's attributes, not from the code that maintains the index
(engine/local_indexes.py `LocalIndexer.entries`), so a bug there shows here.
"""
from __future__ import annotations

import contextlib
from typing import Any

from triplica.engine.catalogue import TableInfo
from triplica.engine.item_images import decode_image, image_size
from triplica.engine.local_indexes import INDEX_ENTRY_OVERHEAD_BYTES, collection_key, index_key_of
from triplica.storage.lmdb_store import PartitionStore

PROBLEMS_MAX = 50


def check_store(store: PartitionStore, info: TableInfo) -> list[str]:
    """Every difference found between the store's local indexes and its items (at most
    PROBLEMS_MAX of them); empty when they agree."""
    problems: list[str] = []
    table_keys = [info.hash_key] + ([info.range_key] if info.range_key else [])
    expected: dict[str, dict[bytes, dict[str, Any]]] = {i.name: {} for i in info.local_indexes}
    collections: dict[bytes, int] = {}
    with contextlib.closing(store.scan(b"", None)) as rows:
        for key, value in rows:
            item = decode_image(value)
            assert item is not None
            collection = collection_key(key)
            collections[collection] = collections.get(collection, 0) + image_size(value)
            for index in info.local_indexes:
                index_key = index_key_of(index, info, item)
                if index_key is None:
                    continue
                projected = index.projected_names(table_keys)
                expected[index.name][index_key] = item if projected is None else \
                    {name: v for name, v in item.items() if name in projected}
    for index in info.local_indexes:
        if index.name not in store.index_names():
            problems.append(f"index {index.name}: not kept by this store")
            continue
        _check_index(store, index.name, expected[index.name], collections, problems)
    _check_collections(store, collections, problems)
    return problems[:PROBLEMS_MAX]


def _check_index(store: PartitionStore, name: str, expected: dict[bytes, dict[str, Any]],
                 collections: dict[bytes, int], problems: list[str]) -> None:
    seen: set[bytes] = set()
    count = size = 0
    with contextlib.closing(store.scan_index(name, b"", None)) as rows:
        for index_key, entry, _ in rows:
            count += 1
            size += image_size(entry)
            collection = collection_key(index_key)
            collections[collection] = collections.get(collection, 0) + image_size(entry) \
                + INDEX_ENTRY_OVERHEAD_BYTES
            if index_key in seen:
                problems.append(f"index {name}: entry {index_key.hex()} twice")
                continue
            seen.add(index_key)
            want = expected.get(index_key)
            got = decode_image(entry)
            if want is None:
                problems.append(f"index {name}: entry {got} stands for no item")
            elif got != want:
                problems.append(f"index {name}: entry {got} should be {want}")
    for index_key, item in expected.items():
        if index_key not in seen:
            problems.append(f"index {name}: item {item} has no entry")
    stats = store.index_stats(name)
    if stats != (count, size):
        problems.append(f"index {name}: stats {stats} but {count} entries of {size} bytes")


def _check_collections(store: PartitionStore, collections: dict[bytes, int],
                       problems: list[str]) -> None:
    kept = store.collection_sizes()
    for collection in sorted(set(kept) | set(collections)):
        if kept.get(collection, 0) != collections.get(collection, 0):
            problems.append(f"item collection {collection.hex()}: kept size "
                            f"{kept.get(collection, 0)}, its items and entries add up to "
                            f"{collections.get(collection, 0)}")
