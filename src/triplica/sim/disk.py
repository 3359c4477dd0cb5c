"""A simulated disk for one replica: checksummed records, fsync latency, bit flips.

Records are stored encoded (msgpack) behind a CRC32C, like the real WAL. The
hard state is kept in two copies (written together), so one flipped bit never
loses the promised ballot; the simulator only ever flips bits in log entry
records. `load()` verifies every record: a record that fails its checksum is
never used; the replica is told where its log was damaged and repairs itself
(see Replica, "Repair").

A write happens only when the simulator's fsync completes; a crash before
that loses it (that is how "crash loses un-fsynced data" is modelled: the
whole in-flight Ready is dropped, and nothing it asked to send was sent).
"""
from __future__ import annotations

import random
import struct

import msgpack

from triplica.replication.log import HardState, LogEntry, PersistedState, Snapshot
from triplica.common.checksum import crc32c

_CRC = struct.Struct(">I")


def _seal(payload: bytes) -> bytes:
    return _CRC.pack(crc32c(payload)) + payload


def _open(record: bytes) -> "bytes | None":
    payload = record[4:]
    return payload if _CRC.unpack_from(record)[0] == crc32c(payload) else None


class SimDisk:
    def __init__(self) -> None:
        self.hard_state_copies: list["bytes | None"] = [None, None]
        self.entries: dict[int, bytes] = {}
        self.snapshot: "bytes | None" = None
        self.hard_state = HardState()  # what the copies hold (never flipped), for ReadyLoop
        self.bit_flips = 0

    def write(self, hard_state: "HardState | None", entries: "tuple[LogEntry, ...]",
              snapshot: "Snapshot | None") -> None:
        """One fsync of what ReadyLoop.to_persist says (PaxosLog.persist's arguments)."""
        if hard_state is not None:
            record = _seal(msgpack.packb(hard_state.to_wire()))
            self.hard_state_copies = [record, record]
            self.hard_state = hard_state
        if snapshot is not None:
            self.snapshot = _seal(msgpack.packb(snapshot.to_wire()))
            for index in [i for i in self.entries if i <= snapshot.index]:
                del self.entries[index]
        for entry in entries:
            self.entries[entry.index] = _seal(msgpack.packb(entry.to_wire()))

    def flip_bit(self, rng: random.Random) -> "int | None":
        """Flip one bit of a random log record; returns its index."""
        if not self.entries:
            return None
        index = rng.choice(sorted(self.entries))
        record = bytearray(self.entries[index])
        position = rng.randrange(len(record) * 8)
        record[position // 8] ^= 1 << (position % 8)
        self.entries[index] = bytes(record)
        self.bit_flips += 1
        return index

    def load(self) -> PersistedState:
        hard_state = HardState()
        for copy in self.hard_state_copies:
            payload = _open(copy) if copy is not None else None
            if payload is not None:
                hard_state = HardState.from_wire(msgpack.unpackb(payload))
                break
        else:
            assert self.hard_state_copies == [None, None], "both hard state copies corrupt"
        snapshot = None
        if self.snapshot is not None:
            payload = _open(self.snapshot)
            assert payload is not None, "the simulator never corrupts snapshots"
            snapshot = Snapshot.from_wire(msgpack.unpackb(payload))
        entries: list[LogEntry] = []
        lost: list[int] = []
        for index in sorted(self.entries):
            payload = _open(self.entries[index])
            if payload is None:
                lost.append(index)
                continue
            entry = LogEntry.from_wire(msgpack.unpackb(payload))
            assert entry.index == index
            entries.append(entry)
        return PersistedState(hard_state, snapshot, tuple(entries), tuple(lost))
