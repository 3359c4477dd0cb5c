"""Segmented write-ahead log of one partition replica.

The WAL is the durability point of a replica: a log entry is acknowledged
only after `append` returned (and, with sync_mode "always" or "batch",
after fsync). LMDB is rebuilt from it on restart (`replay(applied_index)`).

On-disk format (all integers little-endian):

    segment file  <first index, 20 digits zero-padded>.wal, so names sort
    record        header = u32 payload_length | u32 crc | u64 index
                           | u32 header_crc                      (20 bytes)
                  followed by payload_length opaque payload bytes
    crc           crc32c(index as u64 LE || payload)
    header_crc    crc32c(the first 16 header bytes: length, crc, index)

The header CRC lets recovery trust payload_length (and index) before it
reads the payload, so a corrupted length can't pass for a torn write.

Invariants:
- Indexes are >= 1, strictly increasing and contiguous across the whole log
  (segment N+1 starts at last index of segment N, plus one).
- Every segment's first record carries the index in its file name; only the
  last segment may be empty (created, then a crash before its first record).
- Only the tail of the LAST segment can be torn (a write never acknowledged).
  Recovery truncates a torn tail; any other bad record is corruption and
  raises WalCorruptionError: we never skip or apply a record we can't verify.

Torn tail, precisely (last segment only, at a record boundary):
- fewer than 20 header bytes before end of file;
- a header with a valid header CRC whose payload runs past end of file (the
  length is trusted, so this is necessarily the final record: nothing valid
  could follow it);
- a header with a valid header CRC whose payload CRC fails and which ends
  exactly at end of file;
- only zero bytes from the record boundary to end of file (a file system that
  grew the file but never wrote the data, e.g. XFS after a power cut).
A header whose header CRC fails, with at least 20 bytes left that are not all
zero, is corruption (e.g. a flipped bit in a length field), never torn.

Threading: one writer thread (the engine's fsync worker) calls append and
truncate_prefix, one call at a time; replay is for startup. A lock guards the
segment list so a truncate_prefix from another thread can't race a roll.
"""
from __future__ import annotations

import os
import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from triplica.common.checksum import crc32c
from triplica.storage.files import fsync_directory

SYNC_MODES = ("always", "batch", "none")
SEGMENT_BYTES_MAX_DEFAULT = 64 * 1024 * 1024
# Largest single record payload: a TransactWriteItems of 100 items of 400 KB
# is 40 MB, plus encoding overhead.
RECORD_PAYLOAD_BYTES_MAX = 64 * 1024 * 1024
APPEND_RECORDS_MAX = 100_000
INDEX_MAX = 2**64 - 1
SEGMENT_SUFFIX = ".wal"
SEGMENT_NAME_DIGITS = 20
READ_BUFFER_BYTES = 1024 * 1024
ZERO_CHECK_CHUNK_BYTES = 1024 * 1024

_HEADER_FIELDS = struct.Struct("<IIQ")       # length, crc, index
_HEADER_CRC = struct.Struct("<I")
HEADER_BYTES = _HEADER_FIELDS.size + _HEADER_CRC.size
_INDEX = struct.Struct("<Q")
_SEGMENT_NAME = re.compile(r"^(\d{%d})%s$" % (SEGMENT_NAME_DIGITS, re.escape(SEGMENT_SUFFIX)))

assert HEADER_BYTES == 20


class WalCorruptionError(Exception):
    """A record that should be intact is not: disk corruption or a bug."""

    def __init__(self, segment: str, offset: int, index: int, reason: str = "") -> None:
        super().__init__(f"WAL corruption in {segment} at offset {offset}"
                         f" (expected index {index}): {reason}")
        self.segment = segment
        self.offset = offset
        self.index = index
        self.reason = reason


def segment_name(first_index: int) -> str:
    assert 1 <= first_index <= INDEX_MAX
    return f"{first_index:0{SEGMENT_NAME_DIGITS}d}{SEGMENT_SUFFIX}"


def encode_record(index: int, payload: bytes) -> bytes:
    """Header + payload bytes of one record."""
    assert 1 <= index <= INDEX_MAX
    assert len(payload) <= RECORD_PAYLOAD_BYTES_MAX
    index_bytes = _INDEX.pack(index)
    checksum = crc32c(payload, crc32c(index_bytes))
    fields = _HEADER_FIELDS.pack(len(payload), checksum, index)
    return fields + _HEADER_CRC.pack(crc32c(fields)) + payload


@dataclass(frozen=True)
class _ReadOk:
    index: int
    payload: bytes
    offset_next: int


@dataclass(frozen=True)
class _ReadBad:
    torn: bool          # True: a torn tail candidate, False: corruption
    reason: str


def _read_record(file, offset: int, size_bytes: int, index_expected: int) -> _ReadOk | _ReadBad:
    """Read and verify the record at `offset`; `size_bytes` is end of data.

    Classifies a bad record as torn (could be an unacknowledged write if it is
    at the end of the last segment) or corrupt (never a torn write).
    """
    assert 0 <= offset < size_bytes
    remaining = size_bytes - offset
    if remaining < HEADER_BYTES:
        return _ReadBad(True, f"header cut short ({remaining} bytes)")
    file.seek(offset)
    header = file.read(HEADER_BYTES)
    assert len(header) == HEADER_BYTES
    fields = header[:_HEADER_FIELDS.size]
    (header_checksum,) = _HEADER_CRC.unpack_from(header, _HEADER_FIELDS.size)
    if crc32c(fields) != header_checksum:
        # Length can't be trusted. Torn only if all zeros to end of file,
        # which the caller checks; otherwise corruption.
        return _ReadBad(False, "header crc mismatch")
    length, checksum, index = _HEADER_FIELDS.unpack(fields)
    if index != index_expected:
        return _ReadBad(False, f"header index {index}")
    if length > RECORD_PAYLOAD_BYTES_MAX:
        return _ReadBad(False, f"payload length {length} over the maximum")
    if HEADER_BYTES + length > remaining:
        # The header is verified, so the length is real: this record is the
        # last thing in the file and its write was cut short.
        return _ReadBad(True, "payload cut short")
    payload = file.read(length)
    assert len(payload) == length
    if crc32c(payload, crc32c(_INDEX.pack(index))) != checksum:
        reaches_end = HEADER_BYTES + length == remaining
        return _ReadBad(reaches_end, "crc mismatch")
    return _ReadOk(index, payload, offset + HEADER_BYTES + length)


def _zeros_to_end(file, offset: int, size_bytes: int) -> bool:
    file.seek(offset)
    position = offset
    while position < size_bytes:
        chunk = file.read(min(ZERO_CHECK_CHUNK_BYTES, size_bytes - position))
        assert chunk, "file shrank while reading"
        if chunk.count(0) != len(chunk):
            return False
        position += len(chunk)
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        assert written > 0
        view = view[written:]


class WriteAheadLog:
    """Append-only, segmented, checksummed log of (index, payload) records."""

    def __init__(self, directory: str, sync_mode: str = "batch",
                 segment_bytes_max: int = SEGMENT_BYTES_MAX_DEFAULT) -> None:
        assert sync_mode in SYNC_MODES, sync_mode
        assert HEADER_BYTES < segment_bytes_max <= 2**40
        self._directory = directory
        self._sync_mode = sync_mode
        self._segment_bytes_max = segment_bytes_max
        self._lock = threading.Lock()
        self._failed = False
        self._closed = False
        # First index of every segment, ascending; the last one is active.
        self._segments: list[int] = []
        self._last_index = 0
        self._fd: int | None = None          # active segment, O_APPEND
        self._segment_size_bytes = 0         # bytes of verified records in it
        os.makedirs(directory, exist_ok=True)
        self._recover()

    # -- public -------------------------------------------------------------

    def last_index(self) -> int:
        """Index of the last record; 0 when the log was never written."""
        return self._last_index

    def first_index(self) -> int:
        """Index of the first retained record; last_index() + 1 if none."""
        if not self._segments:
            return self._last_index + 1
        return self._segments[0]

    def append(self, records: list[tuple[int, bytes]]) -> None:
        """Write records; returns once they are durable per sync_mode.

        "always" fsyncs after each record, "batch" once per call (group
        commit: the engine passes a whole group in one call), "none" never
        (survives a process kill, not a power cut). Any failure poisons the
        log: reopen it, recovery truncates whatever was half written.
        """
        assert not self._closed and not self._failed, "WAL closed or failed"
        assert 1 <= len(records) <= APPEND_RECORDS_MAX, len(records)
        try:
            self._append(records)
        except BaseException:
            self._failed = True
            raise

    def replay(self, after_index: int) -> Iterator[tuple[int, bytes]]:
        """Yield (index, payload) for index > after_index, in order, verified.

        Reads what was appended before the call; not for use concurrently
        with append (startup only).
        """
        assert not self._closed
        assert after_index >= 0
        assert after_index >= self.first_index() - 1, (
            f"replay after {after_index} but the log starts at {self.first_index()}")
        last_index = self._last_index
        segments = list(self._segments)
        active_size_bytes = self._segment_size_bytes
        for position, first_index in enumerate(segments):
            is_last = position == len(segments) - 1
            if not is_last and segments[position + 1] - 1 <= after_index:
                continue
            path = os.path.join(self._directory, segment_name(first_index))
            size_bytes = active_size_bytes if is_last else os.path.getsize(path)
            yield from self._replay_segment(path, first_index, size_bytes, after_index)
        assert last_index == self._last_index, "append during replay"

    def truncate_prefix(self, through_index: int) -> None:
        """Delete whole segments whose records are all <= through_index.

        The active (last) segment is always kept, so last_index survives.
        Call only after LMDB holds through_index durably (checkpoint()).
        """
        assert not self._closed
        assert through_index >= 0
        with self._lock:
            doomed: list[int] = []
            while (len(self._segments) >= 2
                   and self._segments[1] - 1 <= through_index):
                doomed.append(self._segments.pop(0))
        for first_index in doomed:
            os.unlink(os.path.join(self._directory, segment_name(first_index)))
        if doomed and self._sync_mode != "none":
            fsync_directory(self._directory)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._fd is not None:
            if self._sync_mode != "none" and not self._failed:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- append -------------------------------------------------------------

    def _append(self, records: list[tuple[int, bytes]]) -> None:
        pending: list[bytes] = []       # encoded, not yet written to the fd
        index_previous = self._last_index
        fresh = not self._segments
        for index, payload in records:
            if fresh:
                assert index >= 1, index
                fresh = False
            else:
                assert index == index_previous + 1, (index, index_previous)
            encoded = encode_record(index, payload)
            if self._fd is None or self._should_roll(len(encoded)):
                self._flush(pending, sync=True)
                pending = []
                self._roll(index)
            pending.append(encoded)
            self._segment_size_bytes += len(encoded)
            index_previous = index
            if self._sync_mode == "always":
                self._flush(pending, sync=True)
                pending = []
        self._flush(pending, sync=self._sync_mode == "batch")
        self._last_index = index_previous

    def _should_roll(self, record_bytes: int) -> bool:
        if self._segment_size_bytes == 0:
            return False            # a record bigger than a segment gets its own
        return self._segment_size_bytes + record_bytes > self._segment_bytes_max

    def _flush(self, pending: list[bytes], sync: bool) -> None:
        if pending:
            assert self._fd is not None
            _write_all(self._fd, b"".join(pending))
        if sync and self._fd is not None and self._sync_mode != "none":
            os.fsync(self._fd)

    def _roll(self, first_index: int) -> None:
        """Close the active segment (already fsynced) and start a new one."""
        path = os.path.join(self._directory, segment_name(first_index))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        if self._sync_mode != "none":
            fsync_directory(self._directory)
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
            self._fd = fd
            self._segments.append(first_index)
            self._segment_size_bytes = 0

    # -- recovery -----------------------------------------------------------

    def _recover(self) -> None:
        names = sorted(n for n in os.listdir(self._directory) if _SEGMENT_NAME.match(n))
        firsts = [int(_SEGMENT_NAME.match(n).group(1)) for n in names]
        index_expected = firsts[0] if firsts else 1
        for position, first_index in enumerate(firsts):
            path = os.path.join(self._directory, segment_name(first_index))
            is_last = position == len(firsts) - 1
            if first_index != index_expected:
                raise WalCorruptionError(path, 0, index_expected,
                                         f"segment starts at {first_index}")
            index_expected, size_bytes = self._recover_segment(path, first_index, is_last)
        self._segments = firsts
        if firsts:
            self._last_index = index_expected - 1
            path = os.path.join(self._directory, segment_name(firsts[-1]))
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            self._segment_size_bytes = size_bytes
            assert os.fstat(self._fd).st_size == size_bytes

    def _recover_segment(self, path: str, first_index: int, is_last: bool) -> tuple[int, int]:
        """Verify one segment; truncate a torn tail if it is the last one.

        Returns (next expected index, verified size in bytes).
        """
        size_bytes = os.path.getsize(path)
        index_expected = first_index
        offset = 0
        with open(path, "rb", buffering=READ_BUFFER_BYTES) as file:
            while offset < size_bytes:
                result = _read_record(file, offset, size_bytes, index_expected)
                if isinstance(result, _ReadOk):
                    index_expected = result.index + 1
                    offset = result.offset_next
                    continue
                torn = result.torn or _zeros_to_end(file, offset, size_bytes)
                if not (is_last and torn):
                    raise WalCorruptionError(path, offset, index_expected, result.reason)
                break
        if offset == 0 and not is_last:
            raise WalCorruptionError(path, 0, index_expected, "empty segment")
        if offset < size_bytes:
            self._truncate_tail(path, offset)
        return index_expected, offset

    @staticmethod
    def _truncate_tail(path: str, size_bytes: int) -> None:
        """Cut a torn tail: those bytes were never acknowledged."""
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, size_bytes)
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- replay -------------------------------------------------------------

    @staticmethod
    def _replay_segment(path: str, first_index: int, size_bytes: int,
                        after_index: int) -> Iterator[tuple[int, bytes]]:
        index_expected = first_index
        offset = 0
        with open(path, "rb", buffering=READ_BUFFER_BYTES) as file:
            while offset < size_bytes:
                result = _read_record(file, offset, size_bytes, index_expected)
                if not isinstance(result, _ReadOk):
                    raise WalCorruptionError(path, offset, index_expected, result.reason)
                if result.index > after_index:
                    yield result.index, result.payload
                index_expected = result.index + 1
                offset = result.offset_next
