"""The global secondary index checker: does an index hold exactly what its table says?

Once writes stop and propagation drains, every base item that has all of an
index's key attributes (of their declared types) must appear in the index
exactly once, with exactly the projected attributes (all of them for ALL;
the table's and index's keys plus NonKeyAttributes otherwise), and the index
must hold nothing else. This is computed from the definitions and the items'
attributes, not from the propagation code; the only shared piece is where
an entry must live (`GlobalIndex.key_of`, checked against each entry's own
attributes, so a misplaced entry is found too).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

import orjson

from triplica.engine.global_index_keys import GlobalIndex
from triplica.engine.item_images import decode_image
from triplica.model.keys import encode_storage_key

PROBLEMS_MAX = 20


def _canonical(item: dict[str, Any]) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)


def _expected(index: GlobalIndex, item: dict[str, Any]) -> dict[str, Any] | None:
    for name, type_name in index.hash_keys + index.range_keys:
        value = item.get(name)
        if type(value) is not dict or list(value) != [type_name]:
            return None
    if index.projected is None:
        return item
    return {name: value for name, value in item.items() if name in index.projected}


def check_index(index: GlobalIndex, hash_key: str, range_key: str | None,
                items: Iterable[bytes], entries: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """Problems (empty: none) of one index, from its table's item images and its
    entries (index key, entry image)."""
    expected = Counter(_canonical(e) for e in (_expected(index, decode_image(raw) or {})
                                                for raw in items) if e is not None)
    held: Counter[bytes] = Counter()
    problems: list[str] = []
    for key, raw in entries:
        entry = decode_image(raw) or {}
        held[_canonical(entry)] += 1
        try:
            base_key = encode_storage_key(entry[hash_key],
                                          entry[range_key] if range_key else None)
            placed = index.key_of(entry, base_key)
        except (KeyError, TypeError, AssertionError):
            placed = None
        if placed != bytes(key):
            problems.append(f"{index.name}: entry {entry} is under the wrong key")
    for canonical, count in (expected - held).items():
        problems.append(f"{index.name}: missing {count}x {canonical[:200]!r}")
    for canonical, count in (held - expected).items():
        problems.append(f"{index.name}: {count}x extra or stale {canonical[:200]!r}")
    return problems[:PROBLEMS_MAX]
