"""Snapshot images in bounded chunks: wire formats and reassembly bookkeeping, no I/O.

A replica image (an LMDB data file, possibly many GB) cannot travel in one
transport frame, so the driver streams it (replication/image_transfer.py does
the file and network work, this module decides):

    sender                                     receiver
    SnapshotChunk(offset 0, total, crc) ---->  start a transfer (partial-<index>-<seq>)
                                       <----  ChunkAck(received bytes, status)
    SnapshotChunk(offset n, ...)        ---->  accept only at offset == received
    ...  (at most CHUNKS_UNACKED_MAX chunks unacknowledged)
    after the last ack: the core's InstallSnapshot / Promise,
    snapshot.data = StreamDescriptor    ---->  hand it to the core only if the
                                               transfer is complete

Both wire forms are driver-private: they ride in the same batches as the
core's messages (messages.py) under type names the core does not use, so the
Paxos core never sees them. Invariants of the receiver's bookkeeping
(`IncomingTransfers`): a transfer's bytes [0, received_bytes) were each
covered by a chunk whose checksum matched, in order, with no gap; it keeps
at most `transfers_max` incomplete transfers and at most one per sender (a
driver ships one image at a time); a new transfer discards those of the same
sender and those for the same or a lower snapshot index.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from triplica.common.checksum import crc32c
from triplica.storage.lmdb_store import MAP_SIZE_BYTES_DEFAULT
from triplica.transport.limits import FRAME_BYTES_MAX

# Bytes of image per chunk (the file is read, sent and written this much at a time).
CHUNK_BYTES = 1024 * 1024
# Largest chunk a receiver takes, whatever the sender's CHUNK_BYTES (well below a frame).
CHUNK_BYTES_MAX = 8 * 1024 * 1024
assert CHUNK_BYTES <= CHUNK_BYTES_MAX < FRAME_BYTES_MAX
# Chunks a sender may have sent but not seen acknowledged: bounds what waits
# in transport buffers and in the receiver's handlers for one transfer.
CHUNKS_UNACKED_MAX = 4
# Largest image a receiver takes: an LMDB environment never outgrows its map.
IMAGE_BYTES_MAX = MAP_SIZE_BYTES_DEFAULT
# Incomplete transfers a receiver keeps on disk (one per sender in practice).
INCOMPLETE_TRANSFERS_MAX = 2

CHUNK_KIND = "SnapshotChunk"
ACK_KIND = "SnapshotChunkAck"
DRIVER_KINDS = (CHUNK_KIND, ACK_KIND)

ACK_OK = "ok"  # written; send more
ACK_DECLINED = "declined"  # this replica is already at or past the snapshot: stop, send the message
ACK_REFUSED = "refused"  # bad checksum, gap, unknown transfer, write failure: the transfer is dead
_ACK_STATUSES = (ACK_OK, ACK_DECLINED, ACK_REFUSED)

_DESCRIPTOR_PREFIX = b"lmdb-stream:"
_DESCRIPTOR = struct.Struct("<QQ")  # transfer id, total bytes


class StreamFormatError(ValueError):
    """A chunk, an ack or a descriptor that does not parse (dropped, like a lost message)."""


def _int(value: object, low: int = 0, high: int = 2**63 - 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise StreamFormatError(f"bad integer field: {value!r:.40}")
    return value


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    sender: int
    to: int
    group: object  # whatever the core's messages carry as group
    index: int  # snapshot index the image belongs to
    transfer_id: int
    offset: int
    total_bytes: int
    checksum: int  # crc32c of data
    data: bytes

    def to_wire(self) -> tuple:
        return (CHUNK_KIND, self.sender, self.to, self.group, self.index, self.transfer_id,
                self.offset, self.total_bytes, self.checksum, self.data)

    @classmethod
    def from_wire(cls, value: "tuple | list") -> "SnapshotChunk":
        if len(value) != 10 or value[0] != CHUNK_KIND or not isinstance(value[9], bytes):
            raise StreamFormatError("malformed snapshot chunk")
        _, sender, to, group, index, transfer_id, offset, total, checksum, data = value
        chunk = cls(_int(sender), _int(to), group, _int(index), _int(transfer_id),
                    _int(offset), _int(total, 1, IMAGE_BYTES_MAX), _int(checksum, 0, 0xFFFFFFFF), data)
        if not 0 < len(data) <= CHUNK_BYTES_MAX or offset + len(data) > total:
            raise StreamFormatError(f"chunk [{offset}, +{len(data)}) outside an image of {total} bytes")
        return chunk

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


@dataclass(frozen=True, slots=True)
class ChunkAck:
    sender: int
    to: int
    group: object
    transfer_id: int
    received_bytes: int  # the receiver holds [0, received_bytes) of the image
    status: str

    def to_wire(self) -> tuple:
        return (ACK_KIND, self.sender, self.to, self.group, self.transfer_id,
                self.received_bytes, self.status)

    @classmethod
    def from_wire(cls, value: "tuple | list") -> "ChunkAck":
        if len(value) != 7 or value[0] != ACK_KIND or value[6] not in _ACK_STATUSES:
            raise StreamFormatError("malformed snapshot chunk ack")
        _, sender, to, group, transfer_id, received, status = value
        return cls(_int(sender), _int(to), group, _int(transfer_id), _int(received), status)


@dataclass(frozen=True, slots=True)
class StreamDescriptor:
    """What the final message's snapshot.data carries instead of the image."""
    transfer_id: int
    total_bytes: int

    def encode(self) -> bytes:
        return _DESCRIPTOR_PREFIX + _DESCRIPTOR.pack(self.transfer_id, self.total_bytes)

    @classmethod
    def decode(cls, data: bytes) -> "StreamDescriptor":
        if not data.startswith(_DESCRIPTOR_PREFIX) or len(data) != len(_DESCRIPTOR_PREFIX) + _DESCRIPTOR.size:
            raise StreamFormatError("snapshot data is not a stream descriptor")
        return cls(*_DESCRIPTOR.unpack_from(data, len(_DESCRIPTOR_PREFIX)))


def chunk_spans(total_bytes: int, chunk_bytes: int) -> list[tuple[int, int]]:
    """(offset, length) of every chunk of a `total_bytes` image, in order."""
    assert total_bytes > 0 and 0 < chunk_bytes <= CHUNK_BYTES_MAX
    return [(offset, min(chunk_bytes, total_bytes - offset))
            for offset in range(0, total_bytes, chunk_bytes)]


@dataclass
class IncomingTransfer:
    sender: int
    transfer_id: int
    index: int
    total_bytes: int
    name: str  # "<index>-<seq>": the receiver's partial-<name> / incoming-<name> directory
    received_bytes: int = 0

    @property
    def complete(self) -> bool:
        return self.received_bytes == self.total_bytes


@dataclass(frozen=True, slots=True)
class ChunkVerdict:
    transfer: IncomingTransfer | None  # write the chunk into it (None: refuse the chunk)
    discarded: tuple[IncomingTransfer, ...]  # delete their files
    reason: str = ""  # why the chunk was refused


class IncomingTransfers:
    """The receiver's incomplete transfers, keyed by (sender, transfer id)."""

    def __init__(self, transfers_max: int = INCOMPLETE_TRANSFERS_MAX, seq_start: int = 1) -> None:
        assert transfers_max >= 1 and seq_start >= 1
        self._transfers_max = transfers_max
        self._seq = seq_start
        self._transfers: dict[tuple[int, int], IncomingTransfer] = {}  # oldest first

    def __len__(self) -> int:
        return len(self._transfers)

    def offer(self, chunk: SnapshotChunk) -> ChunkVerdict:
        """Take `chunk` into its transfer (the caller writes it) or refuse it."""
        key = (chunk.sender, chunk.transfer_id)
        if crc32c(chunk.data) != chunk.checksum:
            return self._refuse(key, "checksum mismatch")
        if chunk.offset == 0:
            discarded = self._make_room(chunk)
            transfer = IncomingTransfer(chunk.sender, chunk.transfer_id, chunk.index, chunk.total_bytes,
                                        f"{chunk.index:020d}-{self._seq:06d}")
            self._seq += 1
            self._transfers[key] = transfer
        else:
            transfer = self._transfers.get(key)
            if transfer is None:
                return ChunkVerdict(None, (), "unknown transfer")
            if (transfer.index, transfer.total_bytes, transfer.received_bytes) != \
                    (chunk.index, chunk.total_bytes, chunk.offset):
                return self._refuse(key, f"chunk at {chunk.offset}, expected {transfer.received_bytes}")
            discarded = ()
        transfer.received_bytes = chunk.end
        assert transfer.received_bytes <= transfer.total_bytes
        return ChunkVerdict(transfer, discarded)

    def drop(self, sender: int, transfer_id: int) -> IncomingTransfer | None:
        """Forget a transfer (its chunk could not be written, or it is not needed)."""
        return self._transfers.pop((sender, transfer_id), None)

    def finish(self, sender: int, index: int,
               descriptor: StreamDescriptor) -> tuple[IncomingTransfer | None, bool]:
        """The final message arrived: forget the transfer it names; is it complete?

        Returns the transfer (None if unknown) and whether its file holds the
        whole image the message names (then seal it, else delete it).
        """
        transfer = self._transfers.pop((sender, descriptor.transfer_id), None)
        if transfer is None:
            return None, False
        whole = (transfer.complete and transfer.index == index
                 and transfer.total_bytes == descriptor.total_bytes)
        return transfer, whole

    def clear(self) -> list[IncomingTransfer]:
        transfers = list(self._transfers.values())
        self._transfers.clear()
        return transfers

    def _make_room(self, chunk: SnapshotChunk) -> tuple[IncomingTransfer, ...]:
        stale = [k for k, t in self._transfers.items()
                 if t.sender == chunk.sender or t.index <= chunk.index]
        discarded = [self._transfers.pop(k) for k in stale]
        while len(self._transfers) >= self._transfers_max:
            discarded.append(self._transfers.pop(next(iter(self._transfers))))
        return tuple(discarded)

    def _refuse(self, key: tuple[int, int], reason: str) -> ChunkVerdict:
        transfer = self._transfers.pop(key, None)
        return ChunkVerdict(None, (transfer,) if transfer is not None else (), reason)
