"""A partition store's global secondary index state: definitions, outbox, cursors.

docs/GLOBAL_INDEXES.md is the design; this module is the part that lives in
a store's LMDB environment and changes only by applying log entries, in the
same write transaction as the items (storage/lmdb_store.py calls it), so
every replica at the same applied index holds the same state:

- definitions (meta `gsi:defs`): the global indexes a base partition keeps
  deltas for, as opaque JSON documents (the engine's GlobalIndex); a
  backfill position per index still backfilling (meta `gsi:backfill:<name>`:
  the last item key read, empty before the first chunk; absent once done);
- the outbox (database `gsi_outbox`): the index deltas of every applied
  item change, under `sequence = u64 log index || u32 position`, valued
  msgpack `[base key hash (8 bytes), index name, index key, entry or nil]`;
- cursors (meta `cursor:<source>`, index partitions): the highest sequence
  applied from each source partition (or FENCED, for a split parent).

Log entries change it through operations (`OpKey` writes; engine/log_entries.py
encodes them):
- ADOPT (a definition document): keep deltas for the index from now on;
  backfill from the start.
- DROP (an index name): stop, and discard its undelivered deltas.
- BACKFILL ([name, count]): read up to `count` items after the position and
  put a write delta for each into the outbox (the state at this log index).
- TRIM (a sequence): delete the outbox up to it (delivered).
- CURSOR ([source, sequence, ancestors]): an index partition's batch
  header: if the source's cursor is at or above `sequence` (or fenced), the
  rest of the entry changes nothing; else the cursor moves to it, and every
  ancestor's cursor is fenced.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, Iterator, Protocol

import lmdb
import msgpack
import orjson

OUTBOX_DATABASE = b"gsi_outbox"
_META_DEFS = b"gsi:defs"
_META_BACKFILL = b"gsi:backfill:"
_META_BACKFILLED = b"gsi:backfilled:"   # the log index of an index's last backfill chunk
_META_CURSOR = b"cursor:"
_U64 = struct.Struct(">Q")
SEQUENCE_BYTES = 12
FENCED = b"\xff" * SEQUENCE_BYTES
NO_SEQUENCE = b"\x00" * SEQUENCE_BYTES
_SEQUENCE = struct.Struct(">QI")
HASH_BYTES = 8
BACKFILL_CHUNK_MAX = 10_000
SOURCE_BYTES_MAX = 128
ANCESTORS_MAX = 64

OP_ADOPT = b"gsi_adopt"
OP_DROP = b"gsi_drop"
OP_BACKFILL = b"gsi_backfill"
OP_TRIM = b"gsi_trim"
OP_CURSOR = b"gsi_cursor"
OPS = (OP_ADOPT, OP_DROP, OP_BACKFILL, OP_TRIM, OP_CURSOR)

# (index name, index key, entry or None)
Delta = tuple[str, bytes, "bytes | None"]
# One outbox record: (sequence, base key hash, index name, index key, entry or None)
OutboxRecord = tuple[bytes, bytes, str, bytes, "bytes | None"]


class OpKey(bytes):
    """The key of a write that is an index operation, not an item (module docstring)."""

    def __new__(cls, op: bytes) -> "OpKey":
        assert op in OPS, op
        return super().__new__(cls, op)


class DeltaSource(Protocol):
    """The engine's GlobalIndexer (engine/global_index_keys.py)."""

    def deltas(self, key: bytes, old: bytes | None, new: bytes | None) -> list[Delta]:
        """The index changes of one item change."""

    def entries(self, key: bytes, image: bytes) -> list[tuple[str, bytes, bytes]]:
        """(index name, index key, entry) of every index the item is in."""


# definition documents -> the delta source for them (None: no index)
DeltaSourceOf = Callable[[list[dict[str, Any]]], "DeltaSource | None"]


def sequence(index: int, position: int) -> bytes:
    return _SEQUENCE.pack(index, position)


def sequence_index(seq: bytes) -> int:
    """The log index of a sequence."""
    return _SEQUENCE.unpack(seq)[0]


def definitions(txn: lmdb.Transaction, meta: Any) -> list[dict[str, Any]]:
    raw = txn.get(_META_DEFS, db=meta)
    return [] if raw is None else list(orjson.loads(raw))


def backfill_positions(txn: lmdb.Transaction, meta: Any) -> dict[str, bytes]:
    """The indexes still backfilling: name -> last item key read (empty: none yet)."""
    found: dict[str, bytes] = {}
    with txn.cursor(db=meta) as cursor:
        if cursor.set_range(_META_BACKFILL):
            for key, value in cursor:
                if not key.startswith(_META_BACKFILL):
                    break
                found[bytes(key[len(_META_BACKFILL):]).decode()] = bytes(value)
    return found


def backfilled_at(txn: lmdb.Transaction, meta: Any, name: str) -> int | None:
    """The log index of the chunk that ended an index's backfill (None: not ended)."""
    raw = txn.get(_META_BACKFILLED + name.encode(), db=meta)
    return None if raw is None else _U64.unpack(raw)[0]


def cursor_of(txn: lmdb.Transaction, meta: Any, source: str) -> bytes:
    raw = txn.get(_META_CURSOR + source.encode(), db=meta)
    return NO_SEQUENCE if raw is None else bytes(raw)


def outbox_records(txn: lmdb.Transaction, outbox: Any, limit: int) -> list[OutboxRecord]:
    """The first `limit` outbox records, in sequence order."""
    found: list[OutboxRecord] = []
    with txn.cursor(db=outbox) as cursor:
        for key, value in cursor:
            if len(found) >= limit:
                break
            base_hash, name, index_key, entry = msgpack.unpackb(value, raw=False)
            found.append((bytes(key), base_hash, name, index_key, entry))
    return found


class IndexOps:
    """Applies index operations and item deltas inside one store write transaction."""

    def __init__(self, txn: lmdb.Transaction, meta: Any, outbox: Any,
                 source_of: DeltaSourceOf | None, deltas: DeltaSource | None) -> None:
        self._txn = txn
        self._meta = meta
        self._outbox = outbox
        self._source_of = source_of
        self.deltas = deltas       # the current definitions' source (changes with ADOPT/DROP)
        self.changed = False       # definitions changed: the store reloads its source

    def item_changed(self, index: int, position: int, key: bytes, old: bytes | None,
                     new: bytes | None) -> int:
        """Put an item change's deltas in the outbox from `position`; the next position."""
        if self.deltas is None:
            return position
        for name, index_key, entry in self.deltas.deltas(key, old, new):
            position = self._put(index, position, key, name, index_key, entry)
        return position

    def _put(self, index: int, position: int, key: bytes, name: str, index_key: bytes,
             entry: bytes | None) -> int:
        value = msgpack.packb([key[:HASH_BYTES], name, index_key, entry], use_bin_type=True)
        self._txn.put(sequence(index, position), value, db=self._outbox)
        return position + 1

    def apply(self, index: int, position: int, op: bytes, value: bytes,
              scan: Callable[..., Iterator[tuple[bytes, bytes]]]) -> tuple[int, bool]:
        """One operation at log `index`; (next outbox position, skip the rest of the entry)."""
        if op == OP_CURSOR:
            return position, self._cursor(value)
        if op == OP_TRIM:
            self._trim(bytes(value))
        elif op == OP_ADOPT:
            self._adopt(orjson.loads(value))
        elif op == OP_DROP:
            self._drop(bytes(value).decode())
        else:
            assert op == OP_BACKFILL, op
            name, count = msgpack.unpackb(value, raw=False)
            position = self._backfill(index, position, str(name), int(count), scan)
        return position, False

    def _cursor(self, value: bytes) -> bool:
        source, seq, ancestors = msgpack.unpackb(value, raw=False)
        assert isinstance(source, str) and 1 <= len(source) <= SOURCE_BYTES_MAX, source
        assert isinstance(seq, bytes) and len(seq) == SEQUENCE_BYTES, seq
        assert isinstance(ancestors, list) and len(ancestors) <= ANCESTORS_MAX
        if cursor_of(self._txn, self._meta, source) >= seq:
            return True  # applied before, or the source was split (fenced)
        self._txn.put(_META_CURSOR + source.encode(), seq, db=self._meta)
        for ancestor in ancestors:
            assert isinstance(ancestor, str) and ancestor != source, ancestor
            self._txn.put(_META_CURSOR + ancestor.encode(), FENCED, db=self._meta)
        return False

    def _trim(self, upto: bytes) -> None:
        assert len(upto) == SEQUENCE_BYTES
        with self._txn.cursor(db=self._outbox) as cursor:
            positioned = cursor.first()
            # (a delete of the last record leaves the cursor unpositioned: an empty key)
            while positioned and cursor.key() and bytes(cursor.key()) <= upto:
                positioned = cursor.delete()

    def _save_defs(self, docs: list[dict[str, Any]]) -> None:
        self._txn.put(_META_DEFS, orjson.dumps(docs), db=self._meta)
        self.deltas = None if self._source_of is None else self._source_of(docs)
        self.changed = True

    def _adopt(self, doc: dict[str, Any]) -> None:
        name = str(doc["name"])
        docs = definitions(self._txn, self._meta)
        if any(d["name"] == name for d in docs):
            return  # adopted before (the control plane asks again after a timeout)
        self._save_defs(docs + [doc])
        self._txn.put(_META_BACKFILL + name.encode(), b"", db=self._meta)
        self._txn.delete(_META_BACKFILLED + name.encode(), db=self._meta)

    def _drop(self, name: str) -> None:
        docs = definitions(self._txn, self._meta)
        self._save_defs([d for d in docs if d["name"] != name])
        self._txn.delete(_META_BACKFILL + name.encode(), db=self._meta)
        self._txn.delete(_META_BACKFILLED + name.encode(), db=self._meta)
        with self._txn.cursor(db=self._outbox) as cursor:  # its undelivered deltas go too
            positioned = cursor.first()
            while positioned and cursor.key():
                if msgpack.unpackb(cursor.value(), raw=False)[1] == name:
                    positioned = cursor.delete()
                else:
                    positioned = cursor.next()

    def _backfill(self, index: int, position: int, name: str, count: int,
                  scan: Callable[..., Iterator[tuple[bytes, bytes]]]) -> int:
        assert 1 <= count <= BACKFILL_CHUNK_MAX, count
        marker = _META_BACKFILL + name.encode()
        after = self._txn.get(marker, db=self._meta)
        if after is None or self.deltas is None:
            return position  # done before, or dropped since
        read = 0
        last = bytes(after)
        rows = scan(self._txn, last)
        try:
            for key, image in rows:
                for entry_name, index_key, entry in self.deltas.entries(key, image):
                    if entry_name == name:
                        position = self._put(index, position, key, name, index_key, entry)
                last = key
                read += 1
                if read >= count:
                    break
        finally:
            rows.close()  # type: ignore[attr-defined]  (its cursor, before the commit)
        if read < count:
            self._txn.delete(marker, db=self._meta)  # every item read: done
            self._txn.put(_META_BACKFILLED + name.encode(), _U64.pack(index), db=self._meta)
        else:
            self._txn.put(marker, last, db=self._meta)
        return position


def keep_outbox_range(txn: lmdb.Transaction, outbox: Any, low: bytes,
                      high: bytes | None) -> None:
    """A split child keeps the outbox records of its own hash range."""
    with txn.cursor(db=outbox) as cursor:
        positioned = cursor.first()
        while positioned and cursor.key():  # (unpositioned after deleting the last one)
            base_hash = msgpack.unpackb(cursor.value(), raw=False)[0]
            if base_hash < low or (high is not None and base_hash >= high):
                positioned = cursor.delete()
            else:
                positioned = cursor.next()
