"""One partition replica acting as its group's leader: log first, then apply.

A write arrives as the result of the leader's evaluation: a list of
(storage key, new stored value or None for delete). The partition gives it the
next log index, records it in an in-memory overlay of not-yet-applied writes
(so the next write to the same key is evaluated against the latest state, as
DESIGN.md requires), and queues it for group commit. The flusher appends the
whole queue to the write-ahead log in one call (one fsync under
`--sync batch`), applies the same entries to LMDB in one transaction with the
applied index, and only then resolves the writers' futures: a write is
acknowledged only once it is durable in the WAL.

Applying an entry never re-evaluates a user expression: entries carry the
resulting item images, so replay after a crash is deterministic.

Invariants:
- log indexes are contiguous and strictly increasing;
- an overlay entry is removed only by the flush that applied its own index;
- after a WAL failure the partition is fenced: every queued and later write
  fails with a 500 and nothing half-applied is ever acknowledged.
"""
from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import msgpack

import struct

from triplica.errors import InternalServerError
from triplica.storage.lmdb_store import PartitionStore, RecordKey
from triplica.storage.wal import WriteAheadLog

log = logging.getLogger(__name__)

Write = tuple[bytes, "bytes | None"]

REPLAY_BATCH_ENTRIES_MAX = 1024
CHECKPOINT_ENTRIES_INTERVAL = 200_000
FLUSH_BATCH_ENTRIES_MAX = 4096


_SIZE_PREFIX = struct.Struct(">I")


def stored_item_size(stored: bytes) -> int:
    """DynamoDB size of a stored item image (`u32 size || JSON`, see api/item_access.py)."""
    return _SIZE_PREFIX.unpack_from(stored)[0]


def encode_entry(writes: list[Write]) -> bytes:
    """Items' writes are a msgpack array; a partition record (RecordKey, see
    storage/lmdb_store.py) is an entry of its own, a msgpack map."""
    if len(writes) == 1 and type(writes[0][0]) is RecordKey:
        key, value = writes[0]
        return msgpack.packb({"record": [bytes(key), value]}, use_bin_type=True)
    assert not any(type(key) is RecordKey for key, _ in writes), "a record travels alone"
    return msgpack.packb(writes, use_bin_type=True)


def decode_entry(payload: bytes) -> list[Write]:
    decoded = msgpack.unpackb(payload, raw=False)
    if type(decoded) is dict:
        key, value = decoded["record"]
        return [(RecordKey(key), value)]
    return [(key, value) for key, value in decoded]


class Partition:
    """A partition replica with its WAL, its LMDB store and group commit."""

    def __init__(self, directory: str, sync_mode: str = "batch") -> None:
        assert sync_mode in ("always", "batch", "none"), sync_mode
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.sync_mode = sync_mode
        self.store = PartitionStore(os.path.join(directory, "items"), value_size=stored_item_size)
        self.wal = WriteAheadLog(os.path.join(directory, "wal"), sync_mode=sync_mode)
        self._recover()
        self._next_index = max(self.wal.last_index(), self.store.applied_index()) + 1
        # key -> (log index, queued value, that entry's future): the latest queued write.
        self._overlay: dict[bytes, tuple[int, bytes | None, asyncio.Future]] = {}
        self._queue: list[tuple[int, list[Write], asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None
        self._failure: BaseException | None = None
        self._entries_since_checkpoint = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal")
        self._closed = False

    # ----- recovery -------------------------------------------------------

    def _recover(self) -> None:
        """Replay WAL entries past the applied index into LMDB."""
        applied = self.store.applied_index()
        batch: list[tuple[int, list[Write]]] = []
        for index, payload in self.wal.replay(applied):
            batch.append((index, decode_entry(payload)))
            if len(batch) >= REPLAY_BATCH_ENTRIES_MAX:
                self.store.apply_batch(batch)
                batch = []
        if batch:
            self.store.apply_batch(batch)
        assert self.store.applied_index() >= self.wal.last_index() or self.wal.last_index() == 0

    # ----- reads ----------------------------------------------------------

    def read_applied(self, key: bytes, consistent: bool = False) -> bytes | None:
        """The committed, applied value: what a reader may be shown.

        `consistent` (a strongly consistent read) changes nothing here: the
        single replica is its own leader. ReplicatedPartition honours it.
        """
        return self.store.get(key)

    def read_latest(self, key: bytes) -> bytes | None:
        """The value a new write must be evaluated against (includes queued writes)."""
        pending = self._overlay.get(key)
        if pending is not None:
            return pending[1]
        return self.store.get(key)

    def pending_write(self, key: bytes) -> asyncio.Future | None:
        """The future of the latest queued (not yet durable) write to `key`, if any.

        An answer computed from queued state (a failed condition) must not be
        sent before that state is durable: see api/ops_items.py.
        """
        pending = self._overlay.get(key)
        return pending[2] if pending is not None else None

    def scan(self, start: bytes, end: bytes | None, reverse: bool = False,
             start_inclusive: bool = True, consistent: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return self.store.scan(start, end, reverse=reverse, start_inclusive=start_inclusive)

    def stats(self) -> tuple[int, int]:
        return self.store.stats()

    # ----- writes ---------------------------------------------------------

    def propose(self, writes: list[Write]) -> asyncio.Future:
        """Queue writes as one log entry; the future resolves once durable and applied."""
        if self._failure is not None or self._closed:
            raise InternalServerError("Internal server error")
        assert writes, "empty log entry"
        index = self._next_index
        self._next_index = index + 1
        future = asyncio.get_running_loop().create_future()
        for key, value in writes:
            self._overlay[key] = (index, value, future)
        self._queue.append((index, writes, future))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        return future

    async def _flush_loop(self) -> None:
        try:
            while self._queue and self._failure is None:
                if self.sync_mode == "none":
                    await asyncio.sleep(0)  # let writers of this loop turn join the batch
                batch = self._queue[:FLUSH_BATCH_ENTRIES_MAX]
                del self._queue[:FLUSH_BATCH_ENTRIES_MAX]
                await self._flush(batch)
        finally:
            self._flusher = None

    async def _flush(self, batch: list[tuple[int, list[Write], asyncio.Future]]) -> None:
        entries = [(index, writes) for index, writes, _ in batch]
        records = [(index, encode_entry(writes)) for index, writes in entries]
        try:
            if self.sync_mode == "none":
                self._persist(records, entries)
            else:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, self._persist, records, entries)
        except BaseException as exc:  # fence: nothing after this may be acknowledged
            log.exception("partition %s: WAL or apply failed; fencing writes", self.directory)
            self._fence(exc, batch)
            return
        for index, writes, future in batch:
            for key, _ in writes:
                pending = self._overlay.get(key)
                if pending is not None and pending[0] == index:
                    del self._overlay[key]
            if not future.done():
                future.set_result(index)
        self._entries_since_checkpoint += len(batch)
        if self._entries_since_checkpoint >= CHECKPOINT_ENTRIES_INTERVAL:
            self._entries_since_checkpoint = 0
            await asyncio.get_running_loop().run_in_executor(self._executor, self._checkpoint)

    def _persist(self, records: list[tuple[int, bytes]],
                 entries: list[tuple[int, list[Write]]]) -> None:
        self.wal.append(records)
        self.store.apply_batch(entries)

    def _checkpoint(self) -> None:
        """Make LMDB durable, then drop WAL segments it no longer needs."""
        applied = self.store.applied_index()
        self.store.checkpoint()
        self.wal.truncate_prefix(applied)

    def _fence(self, exc: BaseException, batch: list) -> None:
        self._failure = exc
        failed = batch + self._queue
        self._queue = []
        self._overlay.clear()
        for _, _, future in failed:
            if not future.done():
                future.set_exception(InternalServerError("Internal server error"))

    # ----- lifecycle ------------------------------------------------------

    async def drain(self) -> None:
        """Wait until every queued write has been flushed."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        assert not self._queue, "close() with writes still queued: call drain() first"
        self._executor.shutdown(wait=True)
        if self._failure is None:
            self._checkpoint()
        self.wal.close()
        self.store.close()
