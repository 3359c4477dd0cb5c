"""Global index propagation, the pure part: outbox records -> per-destination batches,
and the log entries that carry them (docs/GLOBAL_INDEXES.md "Propagation").

A base partition's outbox (storage/index_outbox.py) is read in sequence
order and cut by destination: the index table partition whose hash range
holds each delta's index key (its first 8 bytes). Each destination gets one
batch: the contiguous run of the outbox's deltas for it, in order, and the
highest sequence of the whole run read (not only of its own deltas: a
destination with nothing in this run still may need its cursor moved, and
the same high mark for everyone keeps the rule simple: "everything of this
source up to here that is yours, you have"). Deltas of an index that is no
longer kept (deleted, or being deleted) are dropped here.

An index partition applies a batch as one log entry: the cursor operation
first (source, high sequence, ancestors to fence), then the deltas as item
writes (`cursor_entry`). Base partitions' own operations (adopt, drop,
backfill chunk, trim) are entries of one write each.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import msgpack
import orjson

from triplica.engine.log_entries import Write
from triplica.storage.index_outbox import (OP_ADOPT, OP_BACKFILL, OP_CURSOR, OP_DROP, OP_TRIM,
                                           OpKey, OutboxRecord)

BATCH_DELTAS_MAX = 1000
BATCH_BYTES_MAX = 2 * 1024 * 1024


@dataclass
class Batch:
    """What one destination receives from one read of a source's outbox."""

    destination: Hashable
    index_table: str
    writes: list[Write] = field(default_factory=list)


@dataclass
class Round:
    """One read of a source's outbox, cut by destination; `high` is its last sequence."""

    high: bytes
    batches: dict[Hashable, Batch]
    dropped: int


# (index name, index key) -> (destination, index table name), or None: index not kept
Route = Callable[[str, bytes], "tuple[Hashable, str] | None"]


def cut(records: list[OutboxRecord], route: Route) -> Round | None:
    """The batches of one run of outbox records (module docstring); None if empty."""
    if not records:
        return None
    batches: dict[Hashable, Batch] = {}
    dropped = 0
    for _, _, name, index_key, entry in records:
        target = route(name, index_key)
        if target is None:
            dropped += 1
            continue
        destination, index_table = target
        batch = batches.get(destination)
        if batch is None:
            batch = batches[destination] = Batch(destination, index_table)
        batch.writes.append((index_key, entry))
    return Round(records[-1][0], batches, dropped)


def run_of(records: list[OutboxRecord]) -> list[OutboxRecord]:
    """The longest prefix of `records` within the batch bounds (at least one record)."""
    total = 0
    for count, (_, _, _, index_key, entry) in enumerate(records):
        total += len(index_key) + (0 if entry is None else len(entry))
        if count >= BATCH_DELTAS_MAX or (count and total > BATCH_BYTES_MAX):
            return records[:count]
    return records


def cursor_entry(source: str, high: bytes, ancestors: list[str],
                 writes: list[Write]) -> list[Write]:
    """An index partition's log entry for one batch."""
    header = msgpack.packb([source, high, ancestors], use_bin_type=True)
    return [(OpKey(OP_CURSOR), header)] + writes


def adopt_entry(definition: dict[str, Any]) -> list[Write]:
    return [(OpKey(OP_ADOPT), orjson.dumps(definition))]


def drop_entry(name: str) -> list[Write]:
    return [(OpKey(OP_DROP), name.encode())]


def backfill_entry(name: str, count: int) -> list[Write]:
    return [(OpKey(OP_BACKFILL), msgpack.packb([name, count], use_bin_type=True))]


def trim_entry(high: bytes) -> list[Write]:
    return [(OpKey(OP_TRIM), high)]
