"""PaxosLog: overwrite semantics, hard state copies, snapshots and compaction,
torn tails and loud failure on corruption."""
from __future__ import annotations

import os

import pytest

from triplica.replication.ballot import Ballot
from triplica.replication.membership import Membership
from triplica.replication.log import EntryKind, HardState, LogEntry, Snapshot
from triplica.replication.paxos_log import PaxosLog, PaxosLogCorruptionError
from triplica.storage.wal import WalCorruptionError

MEMBERS = Membership.of([1, 2, 3])


def entry(index: int, round_: int = 1, data: bytes | None = None) -> LogEntry:
    return LogEntry(index, Ballot(round_, 1), EntryKind.COMMAND, data if data is not None else b"v%d" % index)


def segments(directory: str) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".wal"))


@pytest.mark.parametrize("sync_mode", ["always", "batch", "none"])
def test_round_trip(tmp_path, sync_mode):
    directory = str(tmp_path / "log")
    with PaxosLog(directory, sync_mode) as log:
        assert log.state().entries == () and log.state().hard_state == HardState()
        log.persist(HardState(Ballot(2, 1), 3), [entry(i) for i in range(1, 6)], None)
        log.persist(None, [LogEntry(6, Ballot(2, 1), EntryKind.NOOP)], None)
    with PaxosLog(directory, sync_mode) as log:
        state = log.state()
        assert state.hard_state == HardState(Ballot(2, 1), 3)
        assert [e.index for e in state.entries] == [1, 2, 3, 4, 5, 6]
        assert state.entries[0] == entry(1) and state.entries[5].kind == EntryKind.NOOP
        assert state.snapshot is None and state.lost_indexes == ()


def test_a_later_write_overwrites_one_slot_and_keeps_the_others(tmp_path):
    """A new leader's Accept may replace slots 2..3 of an acceptor that also
    holds 4..5 from the old ballot: 4..5 must survive (they may be chosen)."""
    directory = str(tmp_path / "log")
    with PaxosLog(directory) as log:
        log.persist(None, [entry(i, round_=1) for i in range(1, 6)], None)
        log.persist(None, [entry(2, round_=2, data=b"new2"), entry(3, round_=2, data=b"new3")], None)
        log.persist(None, [entry(8, round_=2)], None)  # a hole at 6..7 is allowed
    with PaxosLog(directory) as log:
        by_index = {e.index: e for e in log.state().entries}
        assert sorted(by_index) == [1, 2, 3, 4, 5, 8]
        assert by_index[2].data == b"new2" and by_index[2].ballot == Ballot(2, 1)
        assert by_index[4] == entry(4, round_=1)
        assert log.last_index() == 8


def test_truncate_from_forgets_the_suffix_durably(tmp_path):
    directory = str(tmp_path / "log")
    with PaxosLog(directory) as log:
        log.persist(None, [entry(i) for i in range(1, 11)], None)
        log.truncate_from(6)
        log.persist(None, [entry(6, round_=3)], None)
    with PaxosLog(directory) as log:
        assert [(e.index, e.ballot.round) for e in log.state().entries] == \
            [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 3)]


def test_hard_state_is_written_in_two_copies_and_the_latest_wins(tmp_path):
    directory = str(tmp_path / "log")
    with PaxosLog(directory) as log:
        log.persist(HardState(Ballot(1, 2), 0), [], None)
        log.persist(HardState(Ballot(3, 1), 7), [entry(1)], None)
    import msgpack

    from triplica.storage.wal import WriteAheadLog
    with WriteAheadLog(directory) as wal:
        kinds = [msgpack.unpackb(payload)[0] for _, payload in wal.replay(0)]
    assert kinds == [1, 1, 0, 1, 1]  # hard state x2; entry, hard state x2
    with PaxosLog(directory) as log:
        assert log.hard_state == HardState(Ballot(3, 1), 7)


def test_a_hard_state_alone_is_remembered_without_reopening(tmp_path):
    with PaxosLog(str(tmp_path / "log")) as log:
        log.persist(HardState(Ballot(1, 2), 0), [], None)
        assert log.hard_state == HardState(Ballot(1, 2), 0)
        log.persist(None, [entry(1)], None)
        log.persist(HardState(Ballot(1, 2), 1), [], None)
        assert log.hard_state == HardState(Ballot(1, 2), 1)


def test_snapshot_drops_entries_below_it_and_compacts_segments(tmp_path):
    directory = str(tmp_path / "log")
    with PaxosLog(directory, segment_bytes_max=512) as log:
        for first in range(1, 200, 10):
            log.persist(HardState(Ballot(1, 1), first + 9), [entry(i) for i in range(first, first + 10)], None)
        before = len(segments(directory))
        assert before > 5
        log.persist(HardState(Ballot(1, 1), 195), [], Snapshot(190, MEMBERS, b"image-token"))
        assert len(segments(directory)) < before
        assert log.first_record_seq() > 1
    with PaxosLog(directory, segment_bytes_max=512) as log:
        state = log.state()
        assert state.snapshot == Snapshot(190, MEMBERS, b"image-token")
        assert [e.index for e in state.entries] == list(range(191, 201))
        assert state.hard_state.commit_index == 195
        # Writing on after a restart keeps working, and a later snapshot supersedes.
        log.persist(None, [entry(201)], Snapshot(200, MEMBERS, b"later"))
    with PaxosLog(directory, segment_bytes_max=512) as log:
        assert log.snapshot is not None and log.snapshot.index == 200
        assert [e.index for e in log.state().entries] == [201]


def test_torn_tail_is_cut_and_earlier_records_survive(tmp_path):
    directory = str(tmp_path / "log")
    with PaxosLog(directory) as log:
        log.persist(HardState(Ballot(1, 1), 2), [entry(1), entry(2)], None)
        log.persist(HardState(Ballot(1, 1), 3), [entry(3, data=b"x" * 200)], None)
    path = os.path.join(directory, segments(directory)[-1])
    size = os.path.getsize(path)
    with open(path, "r+b") as file:
        file.truncate(size - 10)  # the last Ready was never acknowledged: its tail is torn
    with PaxosLog(directory) as log:
        state = log.state()
        assert [e.index for e in state.entries] == [1, 2, 3]
        assert state.hard_state == HardState(Ballot(1, 1), 3)  # first copy survived the tear
        log.persist(None, [entry(4)], None)
    with PaxosLog(directory) as log:
        assert [e.index for e in log.state().entries] == [1, 2, 3, 4]


def test_a_flipped_bit_fails_loudly(tmp_path):
    directory = str(tmp_path / "log")
    with PaxosLog(directory) as log:
        for i in range(1, 40):
            log.persist(HardState(Ballot(1, 1), i), [entry(i, data=b"payload" * 5)], None)
    path = os.path.join(directory, segments(directory)[-1])
    with open(path, "r+b") as file:
        data = bytearray(file.read())
        data[len(data) // 2] ^= 0x08
        file.seek(0)
        file.write(data)
    with pytest.raises(WalCorruptionError):
        PaxosLog(directory)


def test_a_record_that_does_not_decode_is_corruption(tmp_path):
    from triplica.storage.wal import WriteAheadLog
    directory = str(tmp_path / "log")
    with WriteAheadLog(directory) as wal:
        wal.append([(1, b"\xc1not msgpack")])
    with pytest.raises(PaxosLogCorruptionError):
        PaxosLog(directory)


def test_a_lone_hard_state_copy_before_other_records_is_corruption(tmp_path):
    import msgpack

    from triplica.storage.wal import WriteAheadLog
    directory = str(tmp_path / "log")
    with WriteAheadLog(directory) as wal:
        wal.append([(1, msgpack.packb([1, 1, 1, 5, 0])),
                    (2, msgpack.packb([0, 1, 1, 1, 1, b"x"]))])
    with pytest.raises(PaxosLogCorruptionError):
        PaxosLog(directory)
