"""Log entries, the persisted-state model, and the in-memory log view.

What a replica persists (the driver writes it, durably, before sending the
messages of the same Ready):
- HardState: the promised ballot (Paxos acceptor promise) and the commit
  index (an optimisation for restart: entries up to it are known chosen);
- log entries, keyed by index; a later write for the same index overwrites
  (an acceptor accepting a higher ballot's value for a slot);
- at most one Snapshot: the state machine image up to `index` plus the
  membership in force there; entries at or below it may be discarded.

Invariants of ReplicaLog:
- no entry at or below `snapshot_index` is kept;
- `last_index` is the largest index held (or snapshot_index when empty);
- the log may have holes above the commit index (pipelined or lost accepts),
  never at or below it;
- `_config_indexes` is the sorted list of indexes whose entry held is a
  CONFIG entry, so `last_config_entry` (asked on every lease check through
  the pending configuration) is a bisection, not a scan of the tail.
"""
from __future__ import annotations

from bisect import bisect_right, insort
from dataclasses import dataclass, field
from enum import IntEnum

from triplica.replication.ballot import ZERO_BALLOT, Ballot
from triplica.replication.membership import Membership


class EntryKind(IntEnum):
    NOOP = 0
    COMMAND = 1
    CONFIG = 2


@dataclass(frozen=True, slots=True)
class LogEntry:
    index: int
    ballot: Ballot
    kind: EntryKind
    data: bytes = b""

    def with_ballot(self, ballot: Ballot) -> "LogEntry":
        return LogEntry(self.index, ballot, self.kind, self.data)

    def same_value(self, other: "LogEntry") -> bool:
        return self.kind == other.kind and self.data == other.data

    def to_wire(self) -> tuple:
        return (self.index, self.ballot.round, self.ballot.node, int(self.kind), self.data)

    @classmethod
    def from_wire(cls, value: "tuple | list") -> "LogEntry":
        index, round_, node, kind, data = value
        return cls(int(index), Ballot(int(round_), int(node)), EntryKind(kind), bytes(data))


@dataclass(frozen=True, slots=True)
class HardState:
    promised: Ballot = ZERO_BALLOT
    commit_index: int = 0

    def to_wire(self) -> tuple:
        return (self.promised.round, self.promised.node, self.commit_index)

    @classmethod
    def from_wire(cls, value: "tuple | list") -> "HardState":
        return cls(Ballot(int(value[0]), int(value[1])), int(value[2]))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State machine image after applying every entry up to `index`.

    `data` is opaque to the core (the driver's state machine produced it);
    log replicas store it without interpreting it.
    """
    index: int
    membership: Membership
    data: bytes

    def to_wire(self) -> tuple:
        return (self.index, self.membership.encode(), self.data)

    @classmethod
    def from_wire(cls, value: "tuple | list") -> "Snapshot":
        return cls(int(value[0]), Membership.decode(bytes(value[1])), bytes(value[2]))


@dataclass(frozen=True, slots=True)
class PersistedState:
    """What a driver read back from stable storage on restart.

    `lost_indexes` are the indexes whose records failed their checksum (they
    are not in `entries`). A replica restored with losses takes no part in any
    quorum until it has learned the chosen values up to the highest lost
    index (see Replica, "Repair").
    """
    hard_state: HardState = field(default_factory=HardState)
    snapshot: "Snapshot | None" = None
    entries: tuple[LogEntry, ...] = ()
    lost_indexes: tuple[int, ...] = ()


class ReplicaLog:
    """The in-memory view of one replica's log (a mirror of what is persisted)."""

    def __init__(self, snapshot: "Snapshot | None") -> None:
        self.snapshot = snapshot
        self._slots: dict[int, LogEntry] = {}
        self._config_indexes: list[int] = []
        self._last_index = self.snapshot_index

    @property
    def snapshot_index(self) -> int:
        return self.snapshot.index if self.snapshot else 0

    @property
    def last_index(self) -> int:
        return self._last_index

    def get(self, index: int) -> "LogEntry | None":
        return self._slots.get(index)

    def put(self, entry: LogEntry) -> None:
        assert entry.index > self.snapshot_index, (entry.index, self.snapshot_index)
        previous = self._slots.get(entry.index)
        was_config = previous is not None and previous.kind == EntryKind.CONFIG
        is_config = entry.kind == EntryKind.CONFIG
        if was_config and not is_config:
            self._config_indexes.remove(entry.index)
        elif is_config and not was_config:
            insort(self._config_indexes, entry.index)
        self._slots[entry.index] = entry
        if entry.index > self._last_index:
            self._last_index = entry.index

    def entries(self, first: int, last: int) -> list[LogEntry]:
        """Entries in [first, last] that are present (holes skipped)."""
        first = max(first, self.snapshot_index + 1)
        return [e for i in range(first, last + 1) if (e := self._slots.get(i)) is not None]

    def install_snapshot(self, snapshot: Snapshot) -> None:
        """Adopt `snapshot` as the new base: drop every entry at or below it."""
        assert snapshot.index >= self.snapshot_index
        for index in [i for i in self._slots if i <= snapshot.index]:
            del self._slots[index]
        self._config_indexes = [i for i in self._config_indexes if i > snapshot.index]
        self.snapshot = snapshot
        self._last_index = max(self._slots, default=snapshot.index)

    def truncate_from(self, index: int) -> None:
        """Forget entries >= index (used only when restoring a damaged log)."""
        for i in [i for i in self._slots if i >= index]:
            del self._slots[i]
        self._config_indexes = [i for i in self._config_indexes if i < index]
        self._last_index = max(self._slots, default=self.snapshot_index)

    def last_config_entry(self, first: int, last: int) -> "LogEntry | None":
        """The CONFIG entry with the highest index in [first, last], if any."""
        first = max(first, self.snapshot_index + 1)
        position = bisect_right(self._config_indexes, min(last, self._last_index))
        if position == 0 or self._config_indexes[position - 1] < first:
            return None
        entry = self._slots[self._config_indexes[position - 1]]
        assert entry.kind == EntryKind.CONFIG, entry
        return entry
