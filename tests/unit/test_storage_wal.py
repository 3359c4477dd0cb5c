"""Segmented WAL: round trips, segment rolls, torn tails, corruption, kill -9."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from triplica.common.checksum import crc32c
from triplica.storage.wal import (
    HEADER_BYTES,
    WalCorruptionError,
    WriteAheadLog,
    encode_record,
    segment_name,
)


def payload_for(index: int) -> bytes:
    return (f"record-{index}-".encode() * (1 + index % 7))


def records(first: int, last: int) -> list[tuple[int, bytes]]:
    return [(i, payload_for(i)) for i in range(first, last + 1)]


def segments(directory: str) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".wal"))


def flip_bit(path: str, offset: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ 0x10]))


def test_crc32c_known_value():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"6789", crc32c(b"12345")) == crc32c(b"123456789")


@pytest.mark.parametrize("sync_mode", ["always", "batch", "none"])
def test_round_trip_across_segment_rolls(tmp_path, sync_mode):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory, sync_mode, segment_bytes_max=512) as wal:
        assert (wal.first_index(), wal.last_index()) == (1, 0)
        assert list(wal.replay(0)) == []
        for first in range(1, 200, 10):
            wal.append(records(first, first + 9))
        assert wal.last_index() == 200
        assert wal.first_index() == 1
        assert list(wal.replay(0)) == records(1, 200)
    names = segments(directory)
    assert len(names) > 5
    assert names[0] == segment_name(1)
    for name in names:     # no segment over the bound except a single big record
        assert os.path.getsize(os.path.join(directory, name)) <= 512
    with WriteAheadLog(directory, sync_mode, segment_bytes_max=512) as wal:
        assert wal.last_index() == 200
        assert list(wal.replay(0)) == records(1, 200)
        assert list(wal.replay(150)) == records(151, 200)
        assert list(wal.replay(200)) == []
        wal.append(records(201, 205))
        assert list(wal.replay(198)) == records(199, 205)


def test_record_bigger_than_segment_gets_its_own(tmp_path):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory, segment_bytes_max=100) as wal:
        wal.append([(1, b"a"), (2, b"x" * 1000), (3, b"b")])
        assert list(wal.replay(0)) == [(1, b"a"), (2, b"x" * 1000), (3, b"b")]
    assert segments(directory) == [segment_name(1), segment_name(2), segment_name(3)]


def test_first_append_may_start_anywhere_then_must_be_contiguous(tmp_path):
    with WriteAheadLog(str(tmp_path / "wal")) as wal:
        wal.append([(50, b"a"), (51, b"b")])
        assert (wal.first_index(), wal.last_index()) == (50, 51)
    with WriteAheadLog(str(tmp_path / "wal")) as wal:
        with pytest.raises(AssertionError):
            wal.append([(53, b"c")])
    with WriteAheadLog(str(tmp_path / "wal")) as wal:
        with pytest.raises(AssertionError):
            wal.append([(52, b"c"), (52, b"d")])
    with WriteAheadLog(str(tmp_path / "wal")) as wal:
        wal.append([(52, b"c")])
        assert list(wal.replay(49)) == [(50, b"a"), (51, b"b"), (52, b"c")]


def test_torn_tail_at_every_offset_of_the_last_record(tmp_path):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory) as wal:
        wal.append(records(1, 20))
    path = os.path.join(directory, segment_name(1))
    size = os.path.getsize(path)
    last_record = len(encode_record(20, payload_for(20)))
    with open(path, "rb") as file:
        original = file.read()
    for cut in range(size - last_record, size):
        with open(path, "wb") as file:
            file.write(original[:cut])
        with WriteAheadLog(directory) as wal:
            assert wal.last_index() == 19
            assert list(wal.replay(0)) == records(1, 19)
        assert os.path.getsize(path) == size - last_record
        # Writing resumes cleanly after the truncated tail.
        with WriteAheadLog(directory) as wal:
            wal.append([(20, payload_for(20))])
        with WriteAheadLog(directory) as wal:
            assert list(wal.replay(0)) == records(1, 20)


def test_torn_tail_in_last_segment_after_rolls(tmp_path):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory, segment_bytes_max=300) as wal:
        wal.append(records(1, 40))
    last = os.path.join(directory, segments(directory)[-1])
    os.truncate(last, os.path.getsize(last) - 3)
    with WriteAheadLog(directory, segment_bytes_max=300) as wal:
        assert wal.last_index() == 39
        assert list(wal.replay(0)) == records(1, 39)


def test_torn_first_record_of_new_segment_leaves_it_empty(tmp_path):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory, segment_bytes_max=300) as wal:
        wal.append(records(1, 40))
    last_name = segments(directory)[-1]
    last_first = int(last_name.split(".")[0])
    os.truncate(os.path.join(directory, last_name), HEADER_BYTES - 1)
    with WriteAheadLog(directory, segment_bytes_max=300) as wal:
        assert wal.last_index() == last_first - 1
        assert list(wal.replay(0)) == records(1, last_first - 1)
        wal.append(records(last_first, 45))
        assert list(wal.replay(0)) == records(1, 45)


def test_torn_tail_crc_failure_reaching_end_of_file(tmp_path):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory) as wal:
        wal.append(records(1, 10))
    path = os.path.join(directory, segment_name(1))
    flip_bit(path, os.path.getsize(path) - 1)
    with WriteAheadLog(directory) as wal:
        assert list(wal.replay(0)) == records(1, 9)


def test_zero_filled_tail_is_torn(tmp_path):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory) as wal:
        wal.append(records(1, 10))
    path = os.path.join(directory, segment_name(1))
    with open(path, "ab") as file:
        file.write(b"\x00" * 4096)
    with WriteAheadLog(directory) as wal:
        assert list(wal.replay(0)) == records(1, 10)


def record_offset(index: int) -> int:
    return sum(len(encode_record(i, payload_for(i))) for i in range(1, index))


@pytest.mark.parametrize("field_offset", [0, 4, 8, HEADER_BYTES + 2])
def test_flipped_bit_in_middle_record_raises(tmp_path, field_offset):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory) as wal:
        wal.append(records(1, 10))
    path = os.path.join(directory, segment_name(1))
    size_before = os.path.getsize(path)
    offset = record_offset(5)
    flip_bit(path, offset + field_offset)
    with pytest.raises(WalCorruptionError) as caught:
        WriteAheadLog(directory)
    assert caught.value.segment == path
    assert caught.value.offset == offset
    assert caught.value.index == 5
    assert os.path.getsize(path) == size_before       # nothing truncated


def flip_bit_mask(path: str, offset: int, mask: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ mask]))


def test_header_layout_and_header_crc():
    encoded = encode_record(7, b"payload")
    assert HEADER_BYTES == 20
    assert len(encoded) == HEADER_BYTES + len(b"payload")
    assert int.from_bytes(encoded[0:4], "little") == len(b"payload")
    assert int.from_bytes(encoded[8:16], "little") == 7
    assert int.from_bytes(encoded[16:20], "little") == crc32c(encoded[:16])
    assert int.from_bytes(encoded[4:8], "little") == crc32c(
        b"payload", crc32c((7).to_bytes(8, "little")))


@pytest.mark.parametrize("bit", range(32))
def test_flipped_length_bit_in_middle_record_of_last_segment_raises(tmp_path, bit):
    """A corrupt length must never pass for a torn tail (silent data loss)."""
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory, segment_bytes_max=600) as wal:
        wal.append(records(1, 20))
        while True:     # until the last segment holds at least 5 records
            last_first = int(segments(directory)[-1].split(".")[0])
            if wal.last_index() - last_first + 1 >= 5:
                break
            wal.append(records(wal.last_index() + 1, wal.last_index() + 1))
    names = segments(directory)
    assert len(names) >= 2
    path = os.path.join(directory, names[-1])
    offsets = [0]
    index = last_first
    while offsets[-1] < os.path.getsize(path):
        offsets.append(offsets[-1] + len(encode_record(index, payload_for(index))))
        index += 1
    assert offsets[-1] == os.path.getsize(path) and len(offsets) >= 4
    middle = (len(offsets) - 1) // 2
    offset = offsets[middle]
    assert 0 < middle < len(offsets) - 2
    size_before = os.path.getsize(path)
    flip_bit_mask(path, offset + bit // 8, 1 << (bit % 8))
    with pytest.raises(WalCorruptionError) as caught:
        WriteAheadLog(directory, segment_bytes_max=600)
    assert caught.value.segment == path
    assert caught.value.offset == offset
    assert caught.value.index == last_first + middle
    assert os.path.getsize(path) == size_before       # nothing truncated


@pytest.mark.parametrize("bit", range(32))
def test_flipped_length_bit_in_final_record_raises(tmp_path, bit):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory) as wal:
        wal.append(records(1, 10))
    path = os.path.join(directory, segment_name(1))
    size_before = os.path.getsize(path)
    flip_bit_mask(path, record_offset(10) + bit // 8, 1 << (bit % 8))
    with pytest.raises(WalCorruptionError):
        WriteAheadLog(directory)
    assert os.path.getsize(path) == size_before


@pytest.mark.parametrize("field_offset", [16, 19])
def test_flipped_header_crc_in_middle_record_raises(tmp_path, field_offset):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory) as wal:
        wal.append(records(1, 10))
    path = os.path.join(directory, segment_name(1))
    size_before = os.path.getsize(path)
    flip_bit(path, record_offset(5) + field_offset)
    with pytest.raises(WalCorruptionError) as caught:
        WriteAheadLog(directory)
    assert caught.value.offset == record_offset(5)
    assert os.path.getsize(path) == size_before


def test_zeroed_final_record_is_torn(tmp_path):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory) as wal:
        wal.append(records(1, 10))
    path = os.path.join(directory, segment_name(1))
    size = os.path.getsize(path)
    with open(path, "r+b") as file:
        file.seek(record_offset(10))
        file.write(b"\x00" * (size - record_offset(10)))
    with WriteAheadLog(directory) as wal:
        assert list(wal.replay(0)) == records(1, 9)
        wal.append([(10, payload_for(10))])
    with WriteAheadLog(directory) as wal:
        assert list(wal.replay(0)) == records(1, 10)


def test_partial_header_then_garbage_is_corruption(tmp_path):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory) as wal:
        wal.append(records(1, 10))
    path = os.path.join(directory, segment_name(1))
    with open(path, "ab") as file:
        file.write(b"\x00" * 30 + b"\x01")
    with pytest.raises(WalCorruptionError):
        WriteAheadLog(directory)


def test_flipped_bit_in_older_segment_raises(tmp_path):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory, segment_bytes_max=300) as wal:
        wal.append(records(1, 40))
    first = os.path.join(directory, segments(directory)[0])
    flip_bit(first, os.path.getsize(first) - 1)       # last record of old segment
    with pytest.raises(WalCorruptionError):
        WriteAheadLog(directory, segment_bytes_max=300)
    os.truncate(first, os.path.getsize(first) - 5)     # torn, but not the last segment
    with pytest.raises(WalCorruptionError):
        WriteAheadLog(directory, segment_bytes_max=300)


def test_corruption_after_open_is_caught_by_replay(tmp_path):
    directory = str(tmp_path / "wal")
    wal = WriteAheadLog(directory)
    wal.append(records(1, 10))
    flip_bit(os.path.join(directory, segment_name(1)), record_offset(3) + HEADER_BYTES)
    replayed = []
    with pytest.raises(WalCorruptionError):
        for entry in wal.replay(0):
            replayed.append(entry)
    assert replayed == records(1, 2)
    wal.close()


def test_missing_middle_segment_raises(tmp_path):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory, segment_bytes_max=300) as wal:
        wal.append(records(1, 40))
    names = segments(directory)
    assert len(names) >= 3
    os.unlink(os.path.join(directory, names[1]))
    with pytest.raises(WalCorruptionError):
        WriteAheadLog(directory, segment_bytes_max=300)


def test_truncate_prefix(tmp_path):
    directory = str(tmp_path / "wal")
    with WriteAheadLog(directory, segment_bytes_max=300) as wal:
        wal.append(records(1, 60))
        firsts = [int(n.split(".")[0]) for n in segments(directory)]
        assert len(firsts) >= 4
        wal.truncate_prefix(firsts[2] - 2)            # segment 1 not wholly covered
        assert wal.first_index() == firsts[1]
        assert [int(n.split(".")[0]) for n in segments(directory)] == firsts[1:]
        wal.truncate_prefix(firsts[2] - 1)
        assert wal.first_index() == firsts[2]
        assert list(wal.replay(firsts[2] - 1)) == records(firsts[2], 60)
        with pytest.raises(AssertionError):
            list(wal.replay(0))                      # those records are gone
        wal.truncate_prefix(10_000)                  # keeps the active segment
        assert segments(directory) == [segment_name(firsts[-1])]
        assert (wal.first_index(), wal.last_index()) == (firsts[-1], 60)
        wal.append(records(61, 62))
    with WriteAheadLog(directory, segment_bytes_max=300) as wal:
        assert wal.first_index() == firsts[-1]
        assert list(wal.replay(60)) == records(61, 62)


WRITER = textwrap.dedent("""
    import sys
    from triplica.storage.wal import WriteAheadLog
    wal = WriteAheadLog(sys.argv[1], "batch", segment_bytes_max=64 * 1024)
    index = 0
    for _ in range(100_000):
        batch = []
        for _ in range(5):
            index += 1
            batch.append((index, (b"%d-" % index) * (1 + index % 50)))
        wal.append(batch)
        print(index, flush=True)
""")


def test_kill_9_keeps_every_acknowledged_record(tmp_path):
    directory = str(tmp_path / "wal")
    process = subprocess.Popen([sys.executable, "-c", WRITER, directory],
                               stdout=subprocess.PIPE, text=True)
    acknowledged = 0
    deadline = time.monotonic() + 30
    try:
        while acknowledged < 2000 and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "writer exited early"
            acknowledged = int(line)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        process.stdout.close()
    assert acknowledged >= 2000
    with WriteAheadLog(directory) as wal:
        assert wal.last_index() >= acknowledged
        replayed = list(wal.replay(0))
    assert [index for index, _ in replayed] == list(range(1, wal.last_index() + 1))
    for index, payload in replayed:
        assert payload == (b"%d-" % index) * (1 + index % 50)
