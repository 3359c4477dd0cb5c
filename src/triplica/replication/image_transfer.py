"""Shipping LMDB images between replicas in chunks: the file and network side.

The protocol and its bookkeeping are in snapshot_stream.py; this module does
the I/O for the driver (driver.py, "Snapshots"):

- `ImageSender.ship` copies the store once per transfer (`copy_to`, in a
  temporary `outgoing-*` directory that the copying thread deletes as soon
  as the file is open, so it is gone whatever happens next), then reads the
  copy one chunk at a time and sends it, keeping at most CHUNKS_UNACKED_MAX
  chunks unacknowledged and one chunk in memory. While it waits (for the
  copy or for acks) it keeps forwarding the peer's other messages, so
  heartbeats to the lagging peer do not stall behind the image. No ack
  progress for ACK_DEADLINE_S, a failed send or a refused chunk abort the
  transfer: the core's message is then dropped, and the leader resends its
  snapshot later (Paxos tolerates the loss).
- `ImageReceiver` writes chunks into `partial-<index>-<seq>/data.mdb` at
  their offsets and, when the final message names a complete transfer,
  fsyncs it and renames it to `incoming-<index>-<seq>`, the name
  `ReplicaDriver._install_image` looks for. Only complete, durable images
  ever carry that name. Chunk work runs under one FIFO lock taken before any
  await, so chunks are handled in the order the transport delivered them
  (both transports start handlers in arrival order).

Leftover `outgoing-*` and `partial-*` directories (a crash mid-transfer) are
removed when the driver opens the replica.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace

from triplica.replication import snapshot_stream as stream
from triplica.replication.log import Snapshot
from triplica.replication.messages import Message
from triplica.replication.snapshot_stream import (
    ACK_DECLINED,
    ACK_OK,
    ACK_REFUSED,
    ChunkAck,
    IncomingTransfer,
    IncomingTransfers,
    SnapshotChunk,
    StreamDescriptor,
    StreamFormatError,
    chunk_spans,
)
from triplica.common.checksum import crc32c
from triplica.storage.files import fsync_directory

log = logging.getLogger(__name__)

LMDB_DATA_FILE = "data.mdb"
OUTGOING_PREFIX = "outgoing-"
PARTIAL_PREFIX = "partial-"
INCOMING_PREFIX = "incoming-"
# Transfers one driver sends at once: each holds a copy of the store on disk
# and a worker thread while copying (the other worker keeps fsyncing the log).
SENDS_MAX = 1
# Log replicas get a stub store (a few KB, driver.py `_image_for`), not a copy:
# those transfers do not wait for a full one (a log replica joining for a dead
# member must be caught up in milliseconds while the leader may be busy
# shipping a B-tree elsewhere), within this many at once.
STUB_SENDS_MAX = 4
# A peer that did not take a full image (send failed, no ack) gets no new copy
# of the store for this long: the leader resends its snapshot every election
# timeout, and copying a large B-tree for a dead node each time is waste.
UNREACHABLE_BACKOFF_S = 5.0
# A transfer whose receiver acknowledges nothing for this long is abandoned.
ACK_DEADLINE_S = 5.0
# While an image streams, the peer's other messages wait at most this long.
FORWARD_INTERVAL_S = 0.01
# A peer that just took (or declined) an image for index i gets no new copy for
# an index <= i during this long: the leader resends its snapshot every
# election timeout until it hears that the peer installed it, and that answer
# may still be on its way. The message goes without an image meanwhile.
RESHIP_AFTER_S = 3.0

COPY_FAILED = "could not copy the store"

SendWires = Callable[[list], Awaitable[bool]]  # True once handed to the transport
Forward = Callable[[], Awaitable[None]]  # send the peer's queued plain messages


def remove_interrupted(directory: str) -> None:
    """Delete the working directories of transfers a crash interrupted."""
    for name in os.listdir(directory):
        if name.startswith((OUTGOING_PREFIX, PARTIAL_PREFIX)):
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


@dataclass
class _Outgoing:
    peer: int
    stub: bool
    acked_bytes: int = 0
    status: str = ACK_OK
    acked_s: float = 0.0  # loop time of the latest ack (or of the start)
    progress: asyncio.Future | None = None  # resolved by the next ack


class ImageSender:
    """Streams copies of one replica's store to its peers (see the module docstring)."""

    def __init__(self, directory: str, executor: Executor,
                 image_for: Callable[[Message, Snapshot], tuple[Callable[[str], None], bool]]) -> None:
        """`image_for(message, snapshot)`, called on the event loop, returns the
        function (run in the executor) that writes the image for that peer into
        an empty directory, and whether that image is a log replica's stub
        (else a consistent copy of the store)."""
        self._directory = directory
        self._executor = executor
        self._image_for = image_for
        self._active: dict[int, _Outgoing] = {}  # by transfer id
        self._shipped: dict[int, tuple[int, float]] = {}  # peer -> (index, loop time) of its last image
        self._unreachable_until: dict[int, float] = {}  # peer -> loop time (see UNREACHABLE_BACKOFF_S)
        self.transfers_started = 0
        self.transfers_completed = 0
        self.transfers_aborted = 0
        self.transfers_declined = 0  # the peer was already past the snapshot
        self.transfers_skipped = 0  # another transfer was under way
        self.transfers_redundant = 0  # the peer took this image moments ago
        self.chunks_sent = 0
        self.bytes_sent = 0
        self.chunks_held = 0  # chunk buffers alive in this sender right now
        self.chunks_held_peak = 0
        self.chunks_unacked_peak = 0

    def on_ack(self, ack: ChunkAck) -> None:
        transfer = self._active.get(ack.transfer_id)
        if transfer is None or transfer.peer != ack.sender:
            return  # a transfer that ended already
        transfer.acked_bytes = max(transfer.acked_bytes, ack.received_bytes)
        if ack.status != ACK_OK:
            transfer.status = ack.status
        transfer.acked_s = asyncio.get_running_loop().time()
        if transfer.progress is not None and not transfer.progress.done():
            transfer.progress.set_result(None)

    async def ship(self, message: Message, snapshot: Snapshot, send: SendWires,
                   forward: Forward) -> Message | None:
        """Stream this replica's image to `message.to`; the message to send after it.

        That is `message` with a StreamDescriptor as snapshot data once every
        chunk is acknowledged; `message` itself (no image: the receiver steps
        it only if it needs none) when the peer declined the image or took
        it moments ago; None when the transfer failed or another one is
        under way (drop the message).
        """
        loop = asyncio.get_running_loop()
        shipped_index, shipped_s = self._shipped.get(message.to, (0, 0.0))
        if snapshot.index <= shipped_index and loop.time() - shipped_s < RESHIP_AFTER_S:
            self.transfers_redundant += 1
            return message
        copy, stub = self._image_for(message, snapshot)
        same_kind = sum(t.stub == stub for t in self._active.values())
        if same_kind >= (STUB_SENDS_MAX if stub else SENDS_MAX) or (
                not stub and loop.time() < self._unreachable_until.get(message.to, 0.0)):
            self.transfers_skipped += 1
            return None
        transfer_id = random.getrandbits(63)
        self._active[transfer_id] = _Outgoing(message.to, stub)
        self.transfers_started += 1
        try:
            status, total_bytes = await self._transfer(message, snapshot, transfer_id, copy, send, forward)
        finally:
            del self._active[transfer_id]
        if status in (ACK_OK, ACK_DECLINED):
            self._shipped[message.to] = (snapshot.index, loop.time())
            self._unreachable_until.pop(message.to, None)
        elif status != COPY_FAILED:
            self._unreachable_until[message.to] = loop.time() + UNREACHABLE_BACKOFF_S
        if status == ACK_DECLINED:
            self.transfers_declined += 1
            return message
        if status != ACK_OK:
            self.transfers_aborted += 1
            log.info("replica %s: image transfer to %s abandoned (%s)", message.sender, message.to, status)
            return None
        self.transfers_completed += 1
        descriptor = StreamDescriptor(transfer_id, total_bytes)
        return replace(message, snapshot=replace(snapshot, data=descriptor.encode()))  # type: ignore[arg-type]

    async def _transfer(self, message: Message, snapshot: Snapshot, transfer_id: int,
                        copy: Callable[[str], None], send: SendWires,
                        forward: Forward) -> tuple[str, int]:
        """Copy the store and stream the copy; (final status, image bytes)."""
        image = await self._copy_image(copy, forward)
        if image is None:
            return COPY_FAILED, 0
        fd, total_bytes = image
        template = SnapshotChunk(message.sender, message.to, message.group, snapshot.index,
                                 transfer_id, 0, total_bytes, 0, b"")
        try:
            status = await self._stream(template, fd, send, forward)
        finally:
            os.close(fd)
        return status, total_bytes

    async def _copy_image(self, copy: Callable[[str], None], forward: Forward) -> tuple[int, int] | None:
        """(open file descriptor, size) of a fresh copy of the store, or None."""
        future = asyncio.wrap_future(self._executor.submit(_copy_out, self._directory, copy))
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=FORWARD_INTERVAL_S)
                await forward()
        except BaseException:  # cancelled (close): the thread still opens the file
            future.add_done_callback(_close_copied)
            raise
        try:
            return future.result()
        except Exception:  # the store was swapped or closed under us: skip this one
            log.warning("could not copy a store for a snapshot", exc_info=True)
            return None

    async def _stream(self, template: SnapshotChunk, fd: int, send: SendWires, forward: Forward) -> str:
        """Send every chunk of the open image; the final status (ACK_OK: all acknowledged)."""
        transfer = self._active[template.transfer_id]
        transfer.acked_s = asyncio.get_running_loop().time()  # the copy took its own time
        unacked: deque[int] = deque()  # end offsets of chunks sent, not yet acknowledged
        for offset, length in chunk_spans(template.total_bytes, stream.CHUNK_BYTES):
            status = await self._await_acks(transfer, unacked, stream.CHUNKS_UNACKED_MAX - 1, forward)
            if status != ACK_OK:
                return status
            status = await self._send_chunk(template, offset, length, fd, send)
            if status != ACK_OK:
                return status
            unacked.append(offset + length)
            self.chunks_sent += 1
            self.bytes_sent += length
            self.chunks_unacked_peak = max(self.chunks_unacked_peak, len(unacked))
            await forward()
        return await self._await_acks(transfer, unacked, 0, forward)

    async def _send_chunk(self, template: SnapshotChunk, offset: int, length: int, fd: int,
                          send: SendWires) -> str:
        """Read one chunk of the copy and send it; the only place a chunk is in memory."""
        self._hold(1)
        try:
            data, checksum = await asyncio.get_running_loop().run_in_executor(
                self._executor, _read_chunk, fd, offset, length)
            chunk = replace(template, offset=offset, checksum=checksum, data=data)
            return ACK_OK if await send([chunk.to_wire()]) else "send failed"
        except OSError as error:
            return f"could not read the copy: {error}"
        finally:
            self._hold(-1)

    async def _await_acks(self, transfer: _Outgoing, unacked: deque[int], unacked_max: int,
                          forward: Forward) -> str:
        """Wait until at most `unacked_max` chunks are unacknowledged, forwarding meanwhile."""
        loop = asyncio.get_running_loop()
        while True:
            while unacked and unacked[0] <= transfer.acked_bytes:
                unacked.popleft()
            if transfer.status != ACK_OK or len(unacked) <= unacked_max:
                return transfer.status
            if loop.time() - transfer.acked_s > ACK_DEADLINE_S:
                return "no acknowledgement in time"
            transfer.progress = loop.create_future()
            await asyncio.wait({transfer.progress}, timeout=FORWARD_INTERVAL_S)
            await forward()

    def _hold(self, chunks: int) -> None:
        self.chunks_held += chunks
        self.chunks_held_peak = max(self.chunks_held_peak, self.chunks_held)
        assert 0 <= self.chunks_held <= SENDS_MAX + STUB_SENDS_MAX, self.chunks_held


class ImageReceiver:
    """Assembles incoming images in a replica directory (see the module docstring)."""

    def __init__(self, directory: str, executor: Executor) -> None:
        self._directory = directory
        self._executor = executor
        self._lock = asyncio.Lock()  # FIFO: chunks are handled in arrival order
        self._transfers = IncomingTransfers(seq_start=_next_seq(directory))
        self.chunks_written = 0
        self.chunks_waiting = 0  # chunks held in memory, waiting for (or in) their write
        self.chunks_waiting_peak = 0
        self.transfers_discarded = 0
        self.images_sealed = 0

    @property
    def incomplete_transfers(self) -> int:
        return len(self._transfers)

    async def on_chunk(self, chunk: SnapshotChunk, needed: bool) -> tuple[str, int]:
        """Write `chunk` where it belongs; (ack status, bytes of its transfer received).

        `needed`: the replica is behind the chunk's snapshot (else declined).
        """
        self.chunks_waiting += 1
        self.chunks_waiting_peak = max(self.chunks_waiting_peak, self.chunks_waiting)
        try:
            async with self._lock:
                if not needed:
                    await self._discard(self._transfers.drop(chunk.sender, chunk.transfer_id))
                    return ACK_DECLINED, 0
                verdict = self._transfers.offer(chunk)
                await self._discard(*verdict.discarded)
                transfer = verdict.transfer
                if transfer is None:
                    log.info("snapshot chunk from %s refused: %s", chunk.sender, verdict.reason)
                    return ACK_REFUSED, 0
                try:
                    await self._run(_write_chunk, self._path(PARTIAL_PREFIX, transfer),
                                    chunk.offset, chunk.data)
                except OSError:
                    log.warning("could not write a snapshot chunk", exc_info=True)
                    await self._discard(self._transfers.drop(chunk.sender, chunk.transfer_id))
                    return ACK_REFUSED, 0
                self.chunks_written += 1
                return ACK_OK, transfer.received_bytes
        finally:
            self.chunks_waiting -= 1

    async def finish(self, sender: int, snapshot: Snapshot, needed: bool) -> bool:
        """The final message of a transfer arrived: is its image now an `incoming-` one?"""
        try:
            descriptor = StreamDescriptor.decode(snapshot.data)
        except StreamFormatError:
            if needed:  # (a declined or redundant image leaves the core's token in place)
                log.info("snapshot %s from %s came without an image", snapshot.index, sender)
            return False
        async with self._lock:
            transfer, whole = self._transfers.finish(sender, snapshot.index, descriptor)
            if transfer is None:
                return False
            if not (whole and needed):
                await self._discard(transfer)
                return False
            try:
                await self._run(_seal, self._directory, self._path(PARTIAL_PREFIX, transfer),
                                self._path(INCOMING_PREFIX, transfer))
            except OSError:
                log.warning("could not seal a snapshot image", exc_info=True)
                await self._discard(transfer)
                return False
            self.images_sealed += 1
            return True

    async def _discard(self, *transfers: IncomingTransfer | None) -> None:
        for transfer in transfers:
            if transfer is not None:
                self.transfers_discarded += 1
                await self._run(shutil.rmtree, self._path(PARTIAL_PREFIX, transfer), True)

    async def _run(self, function: Callable, *args: object) -> object:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _path(self, prefix: str, transfer: IncomingTransfer) -> str:
        return os.path.join(self._directory, prefix + transfer.name)


# ------------------------------------------------------ worker-thread helpers


def _copy_out(directory: str, copy: Callable[[str], None]) -> tuple[int, int]:
    """Copy the store into a temporary directory, open the file, delete the directory."""
    path = tempfile.mkdtemp(dir=directory, prefix=OUTGOING_PREFIX)
    try:
        copy(path)
        fd = os.open(os.path.join(path, LMDB_DATA_FILE), os.O_RDONLY)
    finally:
        shutil.rmtree(path, ignore_errors=True)  # an open file outlives its name
    size = os.fstat(fd).st_size
    assert size > 0, "an LMDB copy is never empty"
    return fd, size


def _close_copied(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is None:
        os.close(future.result()[0])


def _read_chunk(fd: int, offset: int, length: int) -> tuple[bytes, int]:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise OSError(f"short read of a store copy at {offset}: {len(data)} of {length} bytes")
    return data, crc32c(data)


def _write_chunk(path: str, offset: int, data: bytes) -> None:
    if offset == 0:
        os.makedirs(path)
    fd = os.open(os.path.join(path, LMDB_DATA_FILE), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
    finally:
        os.close(fd)


def _seal(directory: str, partial: str, incoming: str) -> None:
    """Make a complete image durable, then give it the name installs look for."""
    fd = os.open(os.path.join(partial, LMDB_DATA_FILE), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(partial)
    os.rename(partial, incoming)
    fsync_directory(directory)


def _next_seq(directory: str) -> int:
    """A sequence number above every image directory already there (names stay unique)."""
    seqs = [int(name.rsplit("-", 1)[1]) for name in os.listdir(directory)
            if name.startswith((INCOMING_PREFIX, PARTIAL_PREFIX)) and name.rsplit("-", 1)[1].isdigit()]
    return max(seqs, default=0) + 1
