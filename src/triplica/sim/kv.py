"""The simulator's state machine: a key/value map with put and compare-and-set.

Commands are msgpack lists [client, seq, op, key, value, expected]. Applying
is deterministic. Each client has at most one operation outstanding and
numbers them 1, 2, ...; the map remembers the last seq applied per client and
its result, so a retried command (same client and seq) takes effect once and
a command older than the client's latest is ignored: clients may retry to any
replica without double writes.

CAS is evaluated when the entry is applied (the log orders it), which is
deterministic on every replica.
"""
from __future__ import annotations

from dataclasses import dataclass

import msgpack

from triplica.common.checksum import crc32c


@dataclass(frozen=True)
class Command:
    client: int
    seq: int
    op: str  # 'put' | 'cas'
    key: str
    value: "str | None"
    expected: "str | None" = None

    def encode(self) -> bytes:
        return msgpack.packb([self.client, self.seq, self.op, self.key, self.value, self.expected])

    @classmethod
    def decode(cls, data: bytes) -> "Command":
        return cls(*msgpack.unpackb(data))


class KeyValueStateMachine:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.last: dict[int, tuple[int, list]] = {}  # client -> (seq, [ok, previous])

    def apply(self, command: Command) -> "tuple[bool, str | None] | None":
        """Apply once; returns (ok, previous value), or None for a stale retry."""
        seq_done, result = self.last.get(command.client, (0, [False, None]))
        if command.seq == seq_done:
            return (result[0], result[1])
        if command.seq < seq_done:
            return None
        previous = self.data.get(command.key)
        ok = command.op == "put" or previous == command.expected
        if ok:
            assert command.value is not None
            self.data[command.key] = command.value
        self.last[command.client] = (command.seq, [ok, previous])
        return (ok, previous)

    def get(self, key: str) -> "str | None":
        return self.data.get(key)

    def snapshot(self) -> bytes:
        return msgpack.packb([sorted(self.data.items()), sorted((c, [s, r]) for c, (s, r) in self.last.items())])

    @classmethod
    def restore(cls, data: bytes) -> "KeyValueStateMachine":
        machine = cls()
        items, last = msgpack.unpackb(data)
        machine.data = {k: v for k, v in items}
        machine.last = {c: (s, r) for c, (s, r) in last}
        return machine

    def checksum(self) -> int:
        return crc32c(self.snapshot())
