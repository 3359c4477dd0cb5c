"""The durable Paxos log of one replica: accepted slots, hard state, snapshot.

It stores exactly what replication/log.py says a replica persists
(`PersistedState`): the hard state (promised ballot, commit index), log
entries keyed by index, where a later write for an index overwrites the
earlier one (an acceptor accepting a higher ballot's value for a slot), and
at most one snapshot, below which entries are discarded.

Format: a sequence of records in a `WriteAheadLog` (storage/wal.py), whose
record index is a sequence number (contiguous, one per record). So every
record has wal.py's CRC32C over header and payload, torn-tail truncation on
open, and WalCorruptionError on any other bad record: we fail loudly, never
skip a record we can't verify. A payload is a msgpack list:

    [ENTRY, index, round, node, kind, data]
    [HARD_STATE, round, node, commit_index, copy]    written twice (copy 0, 1)
    [SNAPSHOT, index, membership, data]
    [TRUNCATE, first_index]                          forget entries >= first
    [REPAIR, until]                                  this log was rebuilt empty: it may
                                                     have forgotten acceptances <= until

REPAIR marks a replica rebuilt after its files were quarantined
(engine/replica_repair.py): `state()` reports `until` as a lost index, so the core
keeps the replica out of every quorum (replica.py, "Repair") until its commit
index covers it; from then on (the commit index is persisted) or once a
snapshot covers it, the marker is moot. It is written in the same append as
the rebuilt log's first hard state, before the directory is put in place.

Replay applies records in sequence order, last writer wins, which gives the
overwrite semantics without rewriting anything. Why not truncate the suffix
on every overwrite: a new leader's Accept may replace slots 7..70 of an
acceptor that also holds 71..100 from the old ballot; cutting 71..100 would
forget acceptances that may be part of a chosen quorum, which Paxos forbids.
`truncate_from` exists for a caller that really wants to drop a suffix.

One `persist` call = one `WriteAheadLog.append` = one fsync under sync mode
"batch" (per record under "always", none under "none"): the driver calls it
once per Ready. The hard state goes in the same append as the entries,
after them, in two copies that must agree on load (DESIGN: the simulator
assumes it is stored redundantly).

Compaction: once a snapshot is durable, whole segments whose records are all
dead (entries at or below the snapshot or overwritten, hard state and
snapshot records superseded) are deleted.
"""
from __future__ import annotations

from collections.abc import Iterable

import msgpack

from triplica.replication.ballot import Ballot
from triplica.replication.membership import Membership
from triplica.replication.log import EntryKind, HardState, LogEntry, PersistedState, Snapshot
from triplica.storage.wal import SEGMENT_BYTES_MAX_DEFAULT, WriteAheadLog

ENTRY, HARD_STATE, SNAPSHOT, TRUNCATE, REPAIR = 0, 1, 2, 3, 4
HARD_STATE_COPIES = 2


class PaxosLogCorruptionError(Exception):
    """A record passed its checksum but does not make sense: a bug or tampering."""


class PaxosLog:
    """Durable log of one replica (not thread-safe: one writer at a time)."""

    def __init__(self, directory: str, sync_mode: str = "batch",
                 segment_bytes_max: int = SEGMENT_BYTES_MAX_DEFAULT) -> None:
        self._wal = WriteAheadLog(directory, sync_mode=sync_mode,
                                  segment_bytes_max=segment_bytes_max)
        self._hard_state = HardState()
        self._hard_state_seq = 0
        self._snapshot: Snapshot | None = None
        self._snapshot_seq = 0
        self._entries: dict[int, LogEntry] = {}
        self._entry_seq: dict[int, int] = {}
        self._repair_until = 0
        self._repair_seq = 0
        self._load()

    # -- public -------------------------------------------------------------

    def state(self) -> PersistedState:
        """What is durable now, as the replica core wants it on restart."""
        floor = self._snapshot.index if self._snapshot else 0
        entries = tuple(self._entries[i] for i in sorted(self._entries) if i > floor)
        return PersistedState(self._hard_state, self._snapshot, entries, self._lost_indexes())

    def _lost_indexes(self) -> tuple[int, ...]:
        # The core only uses the highest lost index (repair_until) and the
        # lowest (a cap on the commit index); one index says "up to here".
        floor = self._snapshot.index if self._snapshot else 0
        if self._repair_until > max(floor, self._hard_state.commit_index):
            return (self._repair_until,)
        return ()

    @property
    def repair_until(self) -> int:
        return self._repair_until

    def mark_repair(self, until: int, hard_state: HardState) -> None:
        """Start a rebuilt (empty) log: hard state plus REPAIR marker, one append."""
        assert until >= 0 and not self._entries and self._snapshot is None
        self.persist(hard_state, (), None)
        if until > 0:
            seq = self._wal.last_index() + 1
            self._wal.append([(seq, _pack([REPAIR, until]))])
            self._repair_until, self._repair_seq = until, seq

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def last_index(self) -> int:
        floor = self._snapshot.index if self._snapshot else 0
        return max(self._entries, default=floor)

    def persist(self, hard_state: HardState | None, entries: Iterable[LogEntry],
                snapshot: Snapshot | None) -> None:
        """Write one Ready's worth durably (one append, one fsync under "batch").

        Order inside the append: snapshot, entries, hard state; entries at or
        below the snapshot are dropped, as the core's Ready asks.
        """
        floor = snapshot.index if snapshot is not None else 0
        payloads: list[tuple[int, bytes, object]] = []
        if snapshot is not None:
            payloads.append((SNAPSHOT, _pack([SNAPSHOT, snapshot.index, snapshot.membership.encode(),
                                               snapshot.data]), snapshot))
        for entry in entries:
            assert entry.index >= 1, entry
            if entry.index > floor:
                payloads.append((ENTRY, _pack([ENTRY, entry.index, entry.ballot.round, entry.ballot.node,
                                                int(entry.kind), entry.data]), entry))
        if hard_state is not None:
            for copy in range(HARD_STATE_COPIES):
                payloads.append((HARD_STATE, _pack([HARD_STATE, hard_state.promised.round,
                                                     hard_state.promised.node,
                                                     hard_state.commit_index, copy]), hard_state))
        if not payloads:
            return
        first_seq = self._wal.last_index() + 1
        self._wal.append([(first_seq + i, payload) for i, (_, payload, _) in enumerate(payloads)])
        for offset, (kind, _, value) in enumerate(payloads):
            if kind == HARD_STATE and offset > 0 and payloads[offset - 1][0] == HARD_STATE:
                continue  # the second copy: the pair lives at the first one
            self._remember(kind, value, first_seq + offset)
        if snapshot is not None:
            self.compact()

    def truncate_from(self, first_index: int) -> None:
        """Durably forget every entry at or above `first_index`."""
        assert first_index >= 1
        seq = self._wal.last_index() + 1
        self._wal.append([(seq, _pack([TRUNCATE, first_index]))])
        self._forget_from(first_index)

    def compact(self) -> None:
        """Delete whole segments that hold only dead records."""
        live = list(self._entry_seq.values())
        live += [seq for seq in (self._snapshot_seq, self._hard_state_seq) if seq]
        if self._repair_seq and self._repair_until > (self._snapshot.index if self._snapshot else 0):
            live.append(self._repair_seq)
        if not live:
            return
        self._wal.truncate_prefix(min(live) - 1)

    def first_record_seq(self) -> int:
        """Sequence number of the oldest retained record (for tests and stats)."""
        return self._wal.first_index()

    def close(self) -> None:
        self._wal.close()

    def __enter__(self) -> "PaxosLog":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------

    def _remember(self, kind: int, value: object, seq: int) -> None:
        if kind == ENTRY:
            assert isinstance(value, LogEntry)
            self._entries[value.index] = value
            self._entry_seq[value.index] = seq
        elif kind == HARD_STATE:
            assert isinstance(value, HardState)
            self._hard_state_seq = seq
            self._hard_state = value
        elif kind == SNAPSHOT:
            assert isinstance(value, Snapshot)
            if self._snapshot is not None and value.index < self._snapshot.index:
                raise PaxosLogCorruptionError(
                    f"snapshot {value.index} below the previous {self._snapshot.index}")
            self._snapshot = value
            self._snapshot_seq = seq
            for index in [i for i in self._entries if i <= value.index]:
                del self._entries[index]
                del self._entry_seq[index]
        else:
            raise AssertionError(kind)

    def _forget_from(self, first_index: int) -> None:
        for index in [i for i in self._entries if i >= first_index]:
            del self._entries[index]
            del self._entry_seq[index]

    def _load(self) -> None:
        pair_open = False
        for seq, payload in self._wal.replay(self._wal.first_index() - 1):
            record = _unpack(seq, payload)
            kind = record[0]
            if pair_open and not (kind == HARD_STATE and record[4] == 1):
                raise PaxosLogCorruptionError(f"hard state at record {seq - 1} has no second copy")
            if kind == HARD_STATE:
                hard_state = HardState(Ballot(record[1], record[2]), record[3])
                copy = record[4]
                if copy == 0:
                    self._remember(HARD_STATE, hard_state, seq)
                    pair_open = True
                elif not pair_open or hard_state != self._hard_state:
                    raise PaxosLogCorruptionError(f"hard state copy {copy} at record {seq} has no twin")
                else:
                    pair_open = False
                continue
            if kind == ENTRY:
                entry = LogEntry(record[1], Ballot(record[2], record[3]), EntryKind(record[4]), record[5])
                floor = self._snapshot.index if self._snapshot else 0
                if entry.index > floor:
                    self._remember(ENTRY, entry, seq)
            elif kind == SNAPSHOT:
                self._remember(SNAPSHOT, Snapshot(record[1], Membership.decode(record[2]), record[3]), seq)
            elif kind == TRUNCATE:
                self._forget_from(record[1])
            elif kind == REPAIR:
                self._repair_until, self._repair_seq = record[1], seq
            else:
                raise PaxosLogCorruptionError(f"record {seq} has unknown kind {kind}")
        if pair_open:
            # The tail was torn between the two copies (a Ready never
            # acknowledged). Complete the pair so the stream stays pairs.
            hard_state = self._hard_state
            self._wal.append([(self._wal.last_index() + 1, _pack(
                [HARD_STATE, hard_state.promised.round, hard_state.promised.node,
                 hard_state.commit_index, 1]))])


def _pack(value: list) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _unpack(seq: int, payload: bytes) -> list:
    try:
        record = msgpack.unpackb(payload, raw=False)
    except Exception as error:  # msgpack raises several unrelated types
        raise PaxosLogCorruptionError(f"record {seq} does not decode: {error}") from None
    if not isinstance(record, list) or not record or not isinstance(record[0], int):
        raise PaxosLogCorruptionError(f"record {seq} is malformed")
    expected = {ENTRY: 6, HARD_STATE: 5, SNAPSHOT: 4, TRUNCATE: 2, REPAIR: 2}.get(record[0])
    if expected is not None and len(record) != expected:
        raise PaxosLogCorruptionError(f"record {seq} of kind {record[0]} has {len(record)} fields")
    return record
