"""The chunk protocol's pure parts (replication/snapshot_stream.py): wire forms and reassembly."""
from __future__ import annotations

import msgpack
import pytest

from triplica.replication.snapshot_stream import (
    ACK_OK,
    ChunkAck,
    IncomingTransfers,
    SnapshotChunk,
    StreamDescriptor,
    StreamFormatError,
    chunk_spans,
)
from triplica.common.checksum import crc32c

IMAGE = bytes(range(256)) * 40  # 10240 bytes
CHUNK = 4096


def chunks(sender: int = 1, transfer_id: int = 7, index: int = 50, image: bytes = IMAGE) -> list[SnapshotChunk]:
    return [SnapshotChunk(sender, 2, 9, index, transfer_id, offset, len(image),
                          crc32c(image[offset:offset + length]), image[offset:offset + length])
            for offset, length in chunk_spans(len(image), CHUNK)]


def over_the_wire(value: tuple) -> list:
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False)


def test_spans_cover_the_image_once_in_order():
    assert chunk_spans(10240, 4096) == [(0, 4096), (4096, 4096), (8192, 2048)]
    assert chunk_spans(4096, 4096) == [(0, 4096)]
    assert chunk_spans(1, 4096) == [(0, 1)]


def test_wire_forms_round_trip_through_msgpack():
    chunk = chunks()[1]
    assert SnapshotChunk.from_wire(over_the_wire(chunk.to_wire())) == chunk
    ack = ChunkAck(2, 1, 9, 7, 8192, ACK_OK)
    assert ChunkAck.from_wire(over_the_wire(ack.to_wire())) == ack
    descriptor = StreamDescriptor(2**63 - 1, 16 * 1024**3)
    assert StreamDescriptor.decode(descriptor.encode()) == descriptor


@pytest.mark.parametrize("field, value", [
    (6, 10240),  # offset at the end: data past the image
    (7, 0),  # empty image
    (8, 2**32),  # not a crc32c
    (5, -1),  # negative transfer id
    (4, True),  # a bool is not an index
    (9, "text"),  # data must be bytes
])
def test_malformed_chunks_are_rejected(field, value):
    wire = list(chunks()[0].to_wire())
    wire[field] = value
    with pytest.raises(StreamFormatError):
        SnapshotChunk.from_wire(wire)
    with pytest.raises(StreamFormatError):
        StreamDescriptor.decode(b"lmdb-token:50")


def test_chunks_in_order_complete_a_transfer_and_finish_names_it():
    transfers = IncomingTransfers(seq_start=3)
    for chunk in chunks():
        verdict = transfers.offer(chunk)
        assert verdict.transfer is not None and not verdict.discarded
    transfer, whole = transfers.finish(1, 50, StreamDescriptor(7, len(IMAGE)))
    assert whole and transfer.complete and transfer.name == f"{50:020d}-000003"
    assert len(transfers) == 0


@pytest.mark.parametrize("damage", ["gap", "checksum", "unknown"])
def test_a_gap_or_a_bad_checksum_kills_the_transfer(damage):
    transfers = IncomingTransfers()
    first, second, third = chunks()
    assert transfers.offer(first).transfer is not None
    if damage == "gap":
        verdict = transfers.offer(third)
    elif damage == "checksum":
        verdict = transfers.offer(SnapshotChunk(*[getattr(second, f) for f in (
            "sender", "to", "group", "index", "transfer_id", "offset", "total_bytes")],
            second.checksum ^ 1, second.data))
    else:
        verdict = transfers.offer(chunks(transfer_id=8)[1])
    assert verdict.transfer is None and verdict.reason
    if damage != "unknown":
        assert [t.transfer_id for t in verdict.discarded] == [7]
        assert transfers.offer(second).transfer is None  # the transfer is gone for good
    transfer, whole = transfers.finish(1, 50, StreamDescriptor(7, len(IMAGE)))
    assert not whole


def test_an_incomplete_or_mismatched_transfer_is_not_whole():
    transfers = IncomingTransfers()
    transfers.offer(chunks()[0])
    transfer, whole = transfers.finish(1, 50, StreamDescriptor(7, len(IMAGE)))
    assert transfer is not None and not whole
    for chunk in chunks():
        transfers.offer(chunk)
    assert transfers.finish(1, 51, StreamDescriptor(7, len(IMAGE)))[1] is False  # another index


def test_a_new_transfer_discards_stale_ones_and_the_count_is_bounded():
    transfers = IncomingTransfers(transfers_max=2)
    transfers.offer(chunks(sender=1, transfer_id=1, index=60)[0])
    assert not transfers.offer(chunks(sender=3, transfer_id=2, index=50)[0]).discarded
    # Same sender: its previous transfer is dead (one image at a time per sender).
    assert [t.transfer_id for t in transfers.offer(chunks(sender=1, transfer_id=3, index=40)[0]).discarded] == [1]
    # Every transfer for the same or a lower index goes.
    verdict = transfers.offer(chunks(sender=4, transfer_id=4, index=50)[0])
    assert sorted(t.transfer_id for t in verdict.discarded) == [2, 3]
    assert not transfers.offer(chunks(sender=5, transfer_id=5, index=45)[0]).discarded
    verdict = transfers.offer(chunks(sender=6, transfer_id=6, index=30)[0])
    assert [t.transfer_id for t in verdict.discarded] == [4]  # the oldest, past the bound
    assert len(transfers) == 2
