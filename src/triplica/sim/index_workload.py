"""The index simulation's table, its global indexes and its item writes, from the seed.

The table has a HASH key `id` (S) and, in half of the seeds, a RANGE key
`s` (N). Items carry a sparse set of attributes, some of them sometimes of
another type than an index declares (such an item is not in that index,
DynamoDB's rule), so puts and updates move items into, out of and around
the indexes. The indexes are drawn from a pool that has single and
multi-attribute HASH and RANGE keys and the three projections (ALL,
KEYS_ONLY, INCLUDE).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from triplica.engine.global_index_keys import GlobalIndex
from triplica.engine.item_images import decode_image, encode_image
from triplica.model.keys import encode_storage_key
from triplica.model.size import item_size_bytes

HASH_KEY = "id"
RANGE_KEY = "s"

# name -> (HASH attributes, RANGE attributes)
_INDEX_POOL: dict[str, tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]] = {
    "byColour": ((("colour", "S"),), ()),
    "byColourSize": ((("colour", "S"),), (("size", "N"),)),
    "byShapeColour": ((("shape", "S"), ("colour", "S")), (("size", "N"),)),
    "byShapeRanked": ((("shape", "S"),), (("size", "N"), ("colour", "S"))),
    "bySize": ((("size", "N"),), ()),
}
_VALUES: dict[str, list[dict[str, Any]]] = {
    "colour": [{"S": "red"}, {"S": "blue"}, {"S": "green"}, {"N": "7"}],   # N: not of the type
    "size": [{"N": str(n)} for n in range(4)] + [{"S": "big"}],
    "shape": [{"S": "round"}, {"S": "square"}],
    "note": [{"S": "x" * n} for n in (1, 30, 200)],
}


@dataclass(frozen=True)
class Table:
    has_range: bool
    key_count: int

    @property
    def range_key(self) -> str | None:
        return RANGE_KEY if self.has_range else None

    def keys(self) -> list[str]:
        return [HASH_KEY] + ([RANGE_KEY] if self.has_range else [])

    def key_attributes(self, number: int) -> dict[str, Any]:
        found: dict[str, Any] = {HASH_KEY: {"S": f"k{number // 3 if self.has_range else number}"}}
        if self.has_range:
            found[RANGE_KEY] = {"N": str(number % 3)}
        return found

    def storage_key(self, number: int) -> bytes:
        attributes = self.key_attributes(number)
        return encode_storage_key(attributes[HASH_KEY], attributes.get(RANGE_KEY))


def draw_table(rng: random.Random) -> Table:
    return Table(has_range=rng.random() < 0.5, key_count=rng.randint(20, 120))


def draw_indexes(rng: random.Random, table: Table) -> list[GlobalIndex]:
    """One to three indexes of the pool, each with a projection."""
    chosen = rng.sample(sorted(_INDEX_POOL), rng.randint(1, 3))
    indexes = []
    for name in chosen:
        hash_keys, range_keys = _INDEX_POOL[name]
        kind = rng.choice(["ALL", "KEYS_ONLY", "INCLUDE"])
        projected = None
        if kind != "ALL":
            names = set(table.keys()) | {n for n, _ in hash_keys + range_keys}
            projected = frozenset(names | ({"note"} if kind == "INCLUDE" else set()))
        indexes.append(GlobalIndex(name, hash_keys, range_keys, projected))
    return indexes


def image_of(item: dict[str, Any]) -> bytes:
    return encode_image(item, item_size_bytes(item))


def new_item(rng: random.Random, table: Table, number: int) -> dict[str, Any]:
    """A put's item: the key and each other attribute with probability 0.7."""
    item = dict(table.key_attributes(number))
    for name, values in _VALUES.items():
        if rng.random() < 0.7:
            item[name] = rng.choice(values)
    return item


def updated_item(rng: random.Random, table: Table, number: int, old: bytes | None) -> dict[str, Any]:
    """An update's item: one or two attributes of the current image set or removed."""
    item = decode_image(old) if old is not None else dict(table.key_attributes(number))
    assert item is not None
    for name in rng.sample(sorted(_VALUES), rng.randint(1, 2)):
        if rng.random() < 0.25:
            item.pop(name, None)
        else:
            item[name] = rng.choice(_VALUES[name])
    return item
