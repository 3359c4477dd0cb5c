"""The B-tree of one partition replica: one LMDB environment.

Owns the items of the partition (storage key -> encoded item), the applied
log index, and running stats (item count, value bytes) for DescribeTable.
Every apply updates items, stats and applied index in ONE write transaction,
so after any crash they agree with each other (DESIGN.md, "Storage").

Durability: the environment is opened with sync=False, metasync=False, so
a commit does not fsync. The WAL is the durability point: restart replays
the WAL after applied_index(), so LMDB may lose recent commits. Before the
WAL prefix is dropped, `checkpoint()` forces env.sync(True), so what the
dropped segments held is on disk. Caveat: with NOSYNC, LMDB only keeps its
ACI properties if the file system preserves write order; after a power cut
on one that does not, the environment may be damaged (a freed page reused by
an unsynced transaction that the on-disk meta page still references). The
answer then is healing: copy a peer's B-tree (`copy_to`) plus the WAL tail.
A process kill (no power loss) is always safe: the OS keeps the page cache.

Partition records: a write whose key is a `RecordKey` (a bytes subclass
the entry decoder produces for record entries, engine/partition.py) is not
an item but a record about the partition itself, kept in the meta database
with the index of the entry that wrote it: a cluster partition's split
marker (engine/group_split.py). A record is written once: a later entry
with the same record changes nothing, so every replica keeps the index of
the first one in the log. It travels with the environment (an
image a lagging replica installs holds it too) and never counts as an item.
A record ends the partition's item history: once a store holds one, later
entries' item writes change nothing (only the applied index moves). A split
needs it: a later leader may commit, after the split entry at A, writes an
earlier ballot's leader had accepted at higher indexes (Paxos lets it
re-propose them), and a replica that applied them before cutting its
children would start them from a different state than one that had not
(engine/split_protocol.py `applies_writes`).

Secondary indexes (local secondary indexes, engine/local_indexes.py): a
store opened with a `SecondaryIndexer` keeps, beside the items, one LMDB
database per index (`index:<name>`: index key -> index entry) and one of
item collection sizes (`collections`: collection key -> bytes), changed in
the same write transaction as the item, from the old image (read from the
store at apply time) and the new one: what entries an image has is a pure
function of it (`entries`), so every replica that applies the same entries
holds the same indexes, and no log entry needs to carry them. Index keys
and collection keys start with the item's 8-byte partition hash, so a split
child keeps its own share of every database (`keep_range`, which finds the
databases in the environment itself, no indexer needed), and the copies a
snapshot ships hold them too. Per-index entry counts and bytes live in the
meta database beside the item stats.

Long keys: LMDB keys are limited to 511 bytes; ours reach ~3.1 KB. Keys of
at most DIRECT_KEY_BYTES_MAX (480) bytes are stored as is. A longer key K is
stored in the "overflow bucket" under the 481-byte LMDB key
K[:480] + b"\\x00", whose value is a msgpack list of [full_key, value] pairs
sorted by full key, for all long keys sharing that 480-byte prefix.

Why LMDB order, with buckets expanded in place, equals full-key order:
Let D be a direct key (len <= 480) and P + s a long key in the bucket
B = P + b"\\x00" (len P = 480, s non-empty). Bytes compare lexicographically.
 1. D never equals B (lengths differ), and D cannot extend P (len D <= len P).
 2. If D is a prefix of P (including D == P), D is a proper prefix of both
    B and P + s, so D < B and D < P + s: same side.
 3. Otherwise D and P differ at a first position i < len D <= 480, which is
    also the first difference between D and B and between D and P + s (both
    start with P), so both comparisons are decided by the same bytes.
 4. Two buckets P1 + 0x00, P2 + 0x00 with P1 != P2 (both 480 bytes) differ
    first at some i < 480, and so do all their entries: same order.
 5. Inside a bucket entries are kept sorted by full key.
Also, every entry P + s >= B (s[0] >= 0x00, equal only when s == b"\\x00"),
so a bucket key is a lower bound of its entries; reverse scans rely on it.
Cost: a write to a long key rewrites its whole bucket, so a partition key
longer than ~470 encoded bytes with many sort keys makes writes O(bucket).
"""
from __future__ import annotations

import bisect
from typing import Any, Callable, Protocol
import os
import struct
from collections.abc import Iterator

import lmdb
import msgpack

from triplica.storage import index_outbox
from triplica.storage.index_outbox import DeltaSourceOf, IndexOps, OpKey, OutboxRecord

# Virtual address space reserved per partition replica, not disk. A partition
# splits long before this (DynamoDB keeps partitions near 10 GB), and 2,500
# tables x 16 GiB stays well inside x86-64's 128 TiB of user address space.
MAP_SIZE_BYTES_DEFAULT = 16 * 1024**3
READERS_MAX_DEFAULT = 512
DIRECT_KEY_BYTES_MAX = 480
BUCKET_KEY_SUFFIX = b"\x00"
BUCKET_KEY_BYTES = DIRECT_KEY_BYTES_MAX + len(BUCKET_KEY_SUFFIX)
# The longest encoded key values (model/keys.py): a tag, every byte escaped (a 0x00 byte
# becomes two), a 2-byte terminator; for DynamoDB's 2048-byte partition and 1024-byte
# sort keys. (4096 was too little: a 2048-byte binary key of zero bytes is 4107.)
PARTITION_KEY_ENCODED_BYTES_MAX = 1 + 2 * 2048 + 2
SORT_KEY_ENCODED_BYTES_MAX = 1 + 2 * 1024 + 2
# 8-byte hash + encoded partition key + encoded sort key.
STORAGE_KEY_BYTES_MAX = 8 + PARTITION_KEY_ENCODED_BYTES_MAX + SORT_KEY_ENCODED_BYTES_MAX
# A secondary index key adds the index's sort key.
INDEX_KEY_BYTES_MAX = STORAGE_KEY_BYTES_MAX + SORT_KEY_ENCODED_BYTES_MAX
COLLECTION_KEY_BYTES_MAX = 64
# items + meta + collections + the global index outbox + one per local index, with room to
# spare (LSIs are at most 5).
DATABASES_MAX = 16
# Encoded item; DynamoDB's 400 KB counts raw sizes, base64 and tags add more.
VALUE_BYTES_MAX = 2 * 1024 * 1024
APPLY_BATCH_ENTRIES_MAX = 100_000
WRITES_PER_ENTRY_MAX = 10_000

_META_APPLIED_INDEX = b"applied_index"
_META_ITEM_COUNT = b"item_count"
_META_VALUE_BYTES = b"value_bytes"
_META_STUB = b"log_replica_stub"
_META_RECORD_PREFIX = b"record:"
_META_INDEX_COUNT = b"index_count:"
_META_INDEX_BYTES = b"index_bytes:"
INDEX_DATABASE_PREFIX = b"index:"
COLLECTIONS_DATABASE = b"collections"
RECORD_KEY_BYTES_MAX = 64
_U64 = struct.Struct(">Q")

Write = tuple[bytes, bytes | None]


class RecordKey(bytes):
    """The key of a partition record, not of an item (see the module docstring)."""


class SecondaryIndexer(Protocol):
    """What a store needs to keep its items' secondary indexes (module docstring)."""

    names: tuple[str, ...]
    # Counted into an item collection's size once per index entry (DynamoDB's 100 bytes).
    entry_overhead_bytes: int

    def entries(self, key: bytes, value: bytes) -> list[tuple[str, bytes, bytes]]:
        """The (index name, index key, index entry) the item image `value` at `key` has."""

    def collection(self, key: bytes) -> bytes:
        """The key of the item collection the item at `key` belongs to (hash first)."""

    def base_key(self, name: str, index_key: bytes) -> bytes:
        """The storage key of the item an entry of index `name` stands for."""


class PartitionStore:
    """Items, applied index and stats of one partition replica."""

    def __init__(self, path: str, map_size_bytes: int = MAP_SIZE_BYTES_DEFAULT,
                 readers_max: int = READERS_MAX_DEFAULT,
                 value_size: Callable[[bytes], int] = len,
                 indexer: SecondaryIndexer | None = None,
                 global_of: DeltaSourceOf | None = None) -> None:
        """`value_size` measures a stored value for the size stats (default: its length);
        `indexer`: the items' local secondary indexes, if any (module docstring);
        `global_of`: what turns the global index definitions this store holds into
        index deltas (storage/index_outbox.py), if the partition may have any."""
        assert map_size_bytes >= 1024 * 1024
        assert 1 <= readers_max <= 65536
        assert indexer is None or len(indexer.names) <= DATABASES_MAX - 4
        self._path = path
        self._env = lmdb.open(path, subdir=True, map_size=map_size_bytes,
                              max_dbs=DATABASES_MAX, max_readers=readers_max,
                              sync=False, metasync=False)
        assert self._env.max_key_size() >= BUCKET_KEY_BYTES
        self._items = self._env.open_db(b"items")
        self._meta = self._env.open_db(b"meta")
        self._indexer = indexer
        self._indexes: dict[str, Any] = {}
        self._collections: Any = None
        if indexer is not None:
            for name in indexer.names:
                self._indexes[name] = self._env.open_db(_index_database(name))
            self._collections = self._env.open_db(COLLECTIONS_DATABASE)
        self._outbox = self._env.open_db(index_outbox.OUTBOX_DATABASE)
        self._global_of = global_of
        with self._env.begin(db=self._meta) as txn:
            definitions = index_outbox.definitions(txn, self._meta)
        self._deltas = None if global_of is None else global_of(definitions)
        self._closed = False
        self._value_size = value_size

    # -- reads --------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        _check_key(key)
        with self._env.begin(db=self._items) as txn:
            return self._get_in(txn, self._items, key)

    def applied_index(self) -> int:
        with self._env.begin(db=self._meta) as txn:
            return _meta_int(txn, self._meta, _META_APPLIED_INDEX)

    def is_stub(self) -> bool:
        """A log replica's placeholder store (see `make_stub`): no items, only an index."""
        with self._env.begin(db=self._meta) as txn:
            return txn.get(_META_STUB, db=self._meta) is not None

    def stats(self) -> tuple[int, int]:
        """(item count, total value bytes), as of the last apply."""
        with self._env.begin(db=self._meta) as txn:
            count = _meta_int(txn, self._meta, _META_ITEM_COUNT)
            value_bytes = _meta_int(txn, self._meta, _META_VALUE_BYTES)
        return count, value_bytes

    def index_stats(self, name: str) -> tuple[int, int]:
        """(entry count, total entry bytes) of one secondary index, as of the last apply."""
        encoded = name.encode()
        with self._env.begin(db=self._meta) as txn:
            return (_meta_int(txn, self._meta, _META_INDEX_COUNT + encoded),
                    _meta_int(txn, self._meta, _META_INDEX_BYTES + encoded))

    def collection_size(self, collection: bytes) -> int:
        """Bytes of one item collection (its items and their index entries), as of the
        last apply; 0 without an indexer."""
        if self._collections is None:
            return 0
        with self._env.begin(db=self._collections) as txn:
            raw = txn.get(collection, db=self._collections)
        return 0 if raw is None else _U64.unpack(raw)[0]

    def index_names(self) -> tuple[str, ...]:
        """The secondary indexes this store keeps (its indexer's)."""
        return tuple(self._indexes)

    def collection_sizes(self) -> dict[bytes, int]:
        """Every item collection's size (a checker's view: engine/local_index_check.py)."""
        if self._collections is None:
            return {}
        with self._env.begin(db=self._collections) as txn:
            return {bytes(key): _U64.unpack(value)[0]
                    for key, value in txn.cursor().iternext(keys=True, values=True)}

    # -- global secondary index state (storage/index_outbox.py) -------------

    def global_definitions(self) -> list[dict[str, Any]]:
        with self._env.begin(db=self._meta) as txn:
            return index_outbox.definitions(txn, self._meta)

    def backfilling(self) -> dict[str, bytes]:
        """The global indexes still backfilling here: name -> last item key read."""
        with self._env.begin(db=self._meta) as txn:
            return index_outbox.backfill_positions(txn, self._meta)

    def backfilled_at(self, name: str) -> int | None:
        """The log index at which a global index's backfill ended here (None: not yet)."""
        with self._env.begin(db=self._meta) as txn:
            return index_outbox.backfilled_at(txn, self._meta, name)

    def outbox(self, limit: int) -> list[OutboxRecord]:
        """The first `limit` undelivered global index deltas, in sequence order."""
        with self._env.begin(db=self._outbox) as txn:
            return index_outbox.outbox_records(txn, self._outbox, limit)

    def outbox_size(self) -> int:
        with self._env.begin(db=self._outbox) as txn:
            return int(txn.stat(self._outbox)["entries"])

    def cursor(self, source: str) -> bytes:
        """The highest sequence this (index) partition applied from `source`."""
        with self._env.begin(db=self._meta) as txn:
            return index_outbox.cursor_of(txn, self._meta, source)

    def scan(self, start: bytes, end: bytes | None, reverse: bool = False,
             start_inclusive: bool = True, end_inclusive: bool = False,
             ) -> Iterator[tuple[bytes, bytes]]:
        """Yield (key, value) for start <(=) key <(=) end, ascending or not.

        `start` is always the low bound (inclusive unless start_inclusive is
        False), `end` the high bound (exclusive unless end_inclusive; None
        means no bound); `reverse` only flips the order. The read
        transaction lives as long as the iterator: exhaust it or close() it
        (contextlib.closing), or it pins old pages and a reader slot.
        """
        assert len(start) <= 2 * STORAGE_KEY_BYTES_MAX
        assert end is None or len(end) <= 2 * STORAGE_KEY_BYTES_MAX
        below_low, above_high = _bounds(start, end, start_inclusive, end_inclusive)
        with self._env.begin(db=self._items) as txn:
            cursor = txn.cursor()
            if reverse:
                yield from self._scan_reverse(cursor, end, below_low, above_high)
            else:
                yield from self._scan_forward(cursor, start, below_low, above_high)

    def scan_index(self, name: str, start: bytes, end: bytes | None, reverse: bool = False,
                   start_inclusive: bool = True, fetch: bool = False,
                   ) -> Iterator[tuple[bytes, bytes, bytes | None]]:
        """`scan` of secondary index `name`: (index key, entry, item) where the item is
        the table's image the entry stands for, read in the same transaction, when
        `fetch` (else None). The same iterator rules as `scan`."""
        assert self._indexer is not None
        database = self._indexes[name]
        assert len(start) <= 2 * INDEX_KEY_BYTES_MAX
        assert end is None or len(end) <= 2 * INDEX_KEY_BYTES_MAX
        below_low, above_high = _bounds(start, end, start_inclusive, False)
        base_key = self._indexer.base_key
        with self._env.begin(db=database) as txn:
            cursor = txn.cursor()
            if reverse:
                rows = self._scan_reverse(cursor, end, below_low, above_high)
            else:
                rows = self._scan_forward(cursor, start, below_low, above_high)
            for key, entry in rows:
                item = self._get_in(txn, self._items, base_key(name, key)) if fetch else None
                yield key, entry, item

    # -- writes -------------------------------------------------------------

    def apply(self, index: int, writes: list[Write]) -> None:
        """Apply one log entry: puts (bytes) and deletes (None), atomically."""
        self.apply_batch([(index, writes)])

    def apply_batch(self, batch: list[tuple[int, list[Write]]]) -> None:
        """Apply log entries in one transaction; applied index = last index.

        Indexes must be strictly increasing and above applied_index() (the
        engine may skip entries that write nothing, so no contiguity check).
        """
        assert not self._closed
        assert 1 <= len(batch) <= APPLY_BATCH_ENTRIES_MAX, len(batch)
        with self._env.begin(write=True) as txn:
            applied = _meta_int(txn, self._meta, _META_APPLIED_INDEX)
            count = _meta_int(txn, self._meta, _META_ITEM_COUNT)
            value_bytes = _meta_int(txn, self._meta, _META_VALUE_BYTES)
            frozen = self._holds_record(txn)
            index_deltas = {name: [0, 0] for name in self._indexes}
            ops = IndexOps(txn, self._meta, self._outbox, self._global_of, self._deltas)
            for index, writes in batch:
                assert index > applied, (index, applied)
                assert len(writes) <= WRITES_PER_ENTRY_MAX, len(writes)
                applied = index
                position = 0  # of this entry's global index deltas in the outbox
                for key, value in writes:
                    if type(key) is OpKey:  # a global index operation (index_outbox.py)
                        if frozen:
                            break
                        assert value is not None
                        position, skip = ops.apply(index, position, key, value,
                                                   self._items_after)
                        if skip:
                            break
                        continue
                    if type(key) is RecordKey:  # a partition record (module docstring)
                        assert value is not None and 1 <= len(key) <= RECORD_KEY_BYTES_MAX
                        txn.put(_META_RECORD_PREFIX + key, _U64.pack(index) + value,
                                db=self._meta, overwrite=False)  # the first one stays
                        frozen = True
                        continue
                    if frozen:
                        continue  # after a record: the item history is over (module docstring)
                    _check_key(key)
                    old = self._write_in(txn, self._items, key, value)
                    count_delta, bytes_delta = _deltas(old, value, self._value_size)
                    count += count_delta
                    value_bytes += bytes_delta
                    if self._indexer is not None and (old is not None or value is not None):
                        self._reindex(txn, key, old, value, bytes_delta, index_deltas)
                    if ops.deltas is not None and old != value:
                        position = ops.item_changed(index, position, key, old, value)
            assert count >= 0 and value_bytes >= 0, (count, value_bytes)
            txn.put(_META_APPLIED_INDEX, _U64.pack(applied), db=self._meta)
            txn.put(_META_ITEM_COUNT, _U64.pack(count), db=self._meta)
            txn.put(_META_VALUE_BYTES, _U64.pack(value_bytes), db=self._meta)
            for name, (count_delta, bytes_delta) in index_deltas.items():
                if count_delta or bytes_delta:
                    self._add_index_stats(txn, name, count_delta, bytes_delta)
        if ops.changed:
            self._deltas = ops.deltas  # committed: the new definitions hold from now on

    def _items_after(self, txn: Any, after: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Items with keys above `after`, in key order, in a write transaction (backfill)."""
        below_low, above_high = _bounds(after, None, False, False)
        with txn.cursor(db=self._items) as cursor:
            yield from self._scan_forward(cursor, after, below_low, above_high)

    def _reindex(self, txn: Any, key: bytes, old: bytes | None, new: bytes | None,
                 item_bytes_delta: int, index_deltas: dict[str, list[int]]) -> None:
        """Change the secondary indexes and the item's collection size from an item's
        old and new images (module docstring)."""
        indexer = self._indexer
        assert indexer is not None
        before = indexer.entries(key, old) if old is not None else []
        after = indexer.entries(key, new) if new is not None else []
        kept = {(name, index_key) for name, index_key, _ in after}
        collection_delta = item_bytes_delta
        overhead = indexer.entry_overhead_bytes
        for name, index_key, _ in before:
            if (name, index_key) not in kept:
                _check_index_key(index_key)
                previous = self._write_in(txn, self._indexes[name], index_key, None)
                count_delta, bytes_delta = _deltas(previous, None, self._value_size)
                index_deltas[name][0] += count_delta
                index_deltas[name][1] += bytes_delta
                collection_delta += bytes_delta - overhead * (previous is not None)
        for name, index_key, entry in after:
            _check_index_key(index_key)
            previous = self._write_in(txn, self._indexes[name], index_key, entry)
            count_delta, bytes_delta = _deltas(previous, entry, self._value_size)
            index_deltas[name][0] += count_delta
            index_deltas[name][1] += bytes_delta
            collection_delta += bytes_delta + overhead * (previous is None)
        if collection_delta:
            collection = indexer.collection(key)
            assert 1 <= len(collection) <= COLLECTION_KEY_BYTES_MAX, len(collection)
            raw = txn.get(collection, db=self._collections)
            size = (0 if raw is None else _U64.unpack(raw)[0]) + collection_delta
            assert size >= 0, (collection, size)
            if size:
                txn.put(collection, _U64.pack(size), db=self._collections)
            elif raw is not None:
                txn.delete(collection, db=self._collections)

    def _add_index_stats(self, txn: Any, name: str, count_delta: int, bytes_delta: int) -> None:
        encoded = name.encode()
        count = _meta_int(txn, self._meta, _META_INDEX_COUNT + encoded) + count_delta
        entry_bytes = _meta_int(txn, self._meta, _META_INDEX_BYTES + encoded) + bytes_delta
        assert count >= 0 and entry_bytes >= 0, (name, count, entry_bytes)
        txn.put(_META_INDEX_COUNT + encoded, _U64.pack(count), db=self._meta)
        txn.put(_META_INDEX_BYTES + encoded, _U64.pack(entry_bytes), db=self._meta)

    def _holds_record(self, txn: Any) -> bool:
        with txn.cursor(db=self._meta) as cursor:
            return cursor.set_range(_META_RECORD_PREFIX) and \
                bytes(cursor.key()).startswith(_META_RECORD_PREFIX)

    def record(self, key: bytes) -> tuple[int, bytes] | None:
        """A partition record: (index of the entry that wrote it, value), or None."""
        assert 1 <= len(key) <= RECORD_KEY_BYTES_MAX, key
        with self._env.begin(db=self._meta) as txn:
            raw = txn.get(_META_RECORD_PREFIX + key, db=self._meta)
        return None if raw is None else (_U64.unpack_from(raw)[0], bytes(raw[_U64.size:]))

    def become_child(self, low: bytes, high: bytes | None, index: int) -> None:
        """Make a copy of a split parent's store the child's: items outside [low, high)
        dropped, partition records dropped, applied index set to the split's."""
        self.keep_range(low, high)
        with self._env.begin(write=True) as txn:
            cursor = txn.cursor(db=self._meta)
            if cursor.set_range(_META_RECORD_PREFIX):
                while cursor.key().startswith(_META_RECORD_PREFIX):
                    if not cursor.delete():
                        break
            txn.put(_META_APPLIED_INDEX, _U64.pack(index), db=self._meta)

    def make_stub(self, index: int) -> None:
        """Turn an empty store into a log replica's placeholder at `index`.

        A log replica never applies entries, but a snapshot it adopts must
        come with a store whose applied index covers it (the driver checks
        that on install and at open). The stub is that store, a few KB
        instead of a copy of the B-tree, marked so that it can never be
        mistaken for a full replica's state.
        """
        assert not self._closed and index >= 0
        with self._env.begin(write=True) as txn:
            assert _meta_int(txn, self._meta, _META_APPLIED_INDEX) == 0, "not an empty store"
            assert txn.stat(self._items)["entries"] == 0, "not an empty store"
            txn.put(_META_APPLIED_INDEX, _U64.pack(index), db=self._meta)
            txn.put(_META_STUB, b"1", db=self._meta)

    def keep_range(self, low: bytes, high: bytes | None) -> None:
        """Delete every item, index entry and collection size outside [low, high) and
        recount the stats (a split child).

        `low` and `high` are hash prefixes (8 bytes): an overflow bucket's key
        starts with its items' 480-byte prefix, so a bucket never straddles
        them and whole LMDB records can be dropped. Index keys and collection
        keys start with the item's hash too (module docstring).
        """
        assert not self._closed and len(low) == 8 and (high is None or len(high) == 8)
        with self._env.begin(write=True) as txn:
            count, value_bytes = self._keep_in(txn, self._items, low, high)
            txn.put(_META_ITEM_COUNT, _U64.pack(count), db=self._meta)
            txn.put(_META_VALUE_BYTES, _U64.pack(value_bytes), db=self._meta)
            for database_name in self._database_names(txn):
                database = self._env.open_db(database_name, txn=txn, create=False)
                if database_name == COLLECTIONS_DATABASE:
                    self._keep_in(txn, database, low, high, expand=False)
                elif database_name == index_outbox.OUTBOX_DATABASE:
                    index_outbox.keep_outbox_range(txn, database, low, high)
                elif database_name.startswith(INDEX_DATABASE_PREFIX):
                    entries, entry_bytes = self._keep_in(txn, database, low, high)
                    encoded = database_name[len(INDEX_DATABASE_PREFIX):]
                    txn.put(_META_INDEX_COUNT + encoded, _U64.pack(entries), db=self._meta)
                    txn.put(_META_INDEX_BYTES + encoded, _U64.pack(entry_bytes), db=self._meta)

    def _keep_in(self, txn: Any, database: Any, low: bytes, high: bytes | None,
                 expand: bool = True) -> tuple[int, int]:
        """Drop one database's records outside [low, high); (records kept, their bytes)."""
        cursor = txn.cursor(db=database)
        count = value_bytes = 0
        positioned = cursor.first()
        while positioned:
            key = cursor.key()
            if key < low or (high is not None and key >= high):
                positioned = cursor.delete()  # moves to the next record
                continue
            if expand:
                for _, value in self._expand(key, cursor.value(), False):
                    count += 1
                    value_bytes += self._value_size(value)
            positioned = cursor.next()
        return count, value_bytes

    @staticmethod
    def _database_names(txn: Any) -> list[bytes]:
        """The named databases of the environment (the main database's keys)."""
        with txn.cursor() as cursor:
            return [bytes(name) for name in cursor.iternext(keys=True, values=False)]

    # -- maintenance --------------------------------------------------------

    def checkpoint(self) -> None:
        """Force everything committed so far to disk (before WAL truncation)."""
        assert not self._closed
        self._env.sync(True)

    def copy_to(self, path: str) -> None:
        """Write a compacted, consistent copy into the empty directory path."""
        assert not self._closed
        os.makedirs(path, exist_ok=True)
        assert not os.listdir(path), f"{path} is not empty"
        self._env.copy(path, compact=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._env.sync(True)
        self._env.close()

    def __enter__(self) -> PartitionStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------

    def _get_in(self, txn: lmdb.Transaction, database: Any, key: bytes) -> bytes | None:
        if len(key) <= DIRECT_KEY_BYTES_MAX:
            return txn.get(key, db=database)
        bucket_key = _bucket_key(key)
        raw = txn.get(bucket_key, db=database)
        if raw is None:
            return None
        keys, values = _bucket_decode(bucket_key, raw)
        position = bisect.bisect_left(keys, key)
        if position < len(keys) and keys[position] == key:
            return values[position]
        return None

    def _write_in(self, txn: lmdb.Transaction, database: Any, key: bytes,
                  value: bytes | None) -> bytes | None:
        """Put or delete one key of `database`; returns the value it had."""
        assert value is None or len(value) <= VALUE_BYTES_MAX
        if len(key) <= DIRECT_KEY_BYTES_MAX:
            old = txn.get(key, db=database)
            if value is None:
                if old is not None:
                    txn.delete(key, db=database)
            else:
                txn.put(key, value, db=database)
            return old
        bucket_key = _bucket_key(key)
        raw = txn.get(bucket_key, db=database)
        keys, values = _bucket_decode(bucket_key, raw) if raw is not None else ([], [])
        position = bisect.bisect_left(keys, key)
        found = position < len(keys) and keys[position] == key
        old = values[position] if found else None
        if value is None and found:
            del keys[position], values[position]
        elif value is not None and found:
            values[position] = value
        elif value is not None:
            keys.insert(position, key)
            values.insert(position, value)
        if keys:
            txn.put(bucket_key, _bucket_encode(keys, values), db=database)
        elif raw is not None:
            txn.delete(bucket_key, db=database)
        return old

    def _expand(self, lmdb_key: bytes, raw: bytes,
                reverse: bool) -> list[tuple[bytes, bytes]]:
        """The (full key, value) pairs one LMDB record stands for."""
        if len(lmdb_key) <= DIRECT_KEY_BYTES_MAX:
            return [(lmdb_key, raw)]
        keys, values = _bucket_decode(lmdb_key, raw)
        pairs = list(zip(keys, values))
        if reverse:
            pairs.reverse()
        return pairs

    def _scan_forward(self, cursor: lmdb.Cursor, start: bytes, below_low,
                      above_high) -> Iterator[tuple[bytes, bytes]]:
        # A long start's candidates begin at its 480-byte prefix (proof 2, 3).
        seek = start[:DIRECT_KEY_BYTES_MAX]
        positioned = cursor.set_range(seek) if seek else cursor.first()
        while positioned:
            for key, value in self._expand(cursor.key(), cursor.value(), False):
                if below_low(key):
                    continue
                if above_high(key):
                    return
                yield key, value
            positioned = cursor.next()

    def _scan_reverse(self, cursor: lmdb.Cursor, end: bytes | None, below_low,
                      above_high) -> Iterator[tuple[bytes, bytes]]:
        # Every LMDB record after the first one >= end holds only keys > end
        # (a bucket key bounds its entries from below), so start there.
        if end:
            positioned = cursor.set_range(end) or cursor.last()
        else:
            positioned = cursor.last() if end is None else False
        while positioned:
            for key, value in self._expand(cursor.key(), cursor.value(), True):
                if above_high(key):
                    continue
                if below_low(key):
                    return
                yield key, value
            positioned = cursor.prev()


def _check_key(key: bytes) -> None:
    assert isinstance(key, bytes), type(key)
    assert 1 <= len(key) <= STORAGE_KEY_BYTES_MAX, len(key)


def _check_index_key(key: bytes) -> None:
    assert isinstance(key, bytes), type(key)
    assert 1 <= len(key) <= INDEX_KEY_BYTES_MAX, len(key)


def _index_database(name: str) -> bytes:
    return INDEX_DATABASE_PREFIX + name.encode()


def _bounds(start: bytes, end: bytes | None, start_inclusive: bool,
            end_inclusive: bool) -> tuple[Callable[[bytes], bool], Callable[[bytes], bool]]:
    """The (below the low bound, above the high bound) tests of a scan."""
    def below_low(key: bytes) -> bool:
        return key < start or (key == start and not start_inclusive)

    def above_high(key: bytes) -> bool:
        if end is None:
            return False
        return key > end or (key == end and not end_inclusive)

    return below_low, above_high


def _bucket_key(key: bytes) -> bytes:
    assert len(key) > DIRECT_KEY_BYTES_MAX
    return key[:DIRECT_KEY_BYTES_MAX] + BUCKET_KEY_SUFFIX


def _bucket_encode(keys: list[bytes], values: list[bytes]) -> bytes:
    assert len(keys) == len(values) >= 1
    return msgpack.packb([[k, v] for k, v in zip(keys, values)], use_bin_type=True)


def _bucket_decode(bucket_key: bytes, raw: bytes) -> tuple[list[bytes], list[bytes]]:
    assert len(bucket_key) == BUCKET_KEY_BYTES
    entries = msgpack.unpackb(raw, raw=True, max_bin_len=len(raw), max_array_len=len(raw))
    assert isinstance(entries, list) and entries, "empty or malformed bucket"
    keys = [entry[0] for entry in entries]
    values = [entry[1] for entry in entries]
    prefix = bucket_key[:DIRECT_KEY_BYTES_MAX]
    for position, key in enumerate(keys):
        assert len(key) > DIRECT_KEY_BYTES_MAX and key.startswith(prefix)
        assert position == 0 or keys[position - 1] < key, "bucket out of order"
    return keys, values


def _deltas(old: bytes | None, new: bytes | None,
            size: Callable[[bytes], int] = len) -> tuple[int, int]:
    count_delta = (new is not None) - (old is not None)
    bytes_delta = (size(new) if new is not None else 0) - (size(old) if old is not None else 0)
    return count_delta, bytes_delta


def _meta_int(txn: lmdb.Transaction, db: lmdb._Database, key: bytes) -> int:
    raw = txn.get(key, db=db)
    if raw is None:
        return 0
    assert len(raw) == _U64.size
    return _U64.unpack(raw)[0]
