"""Ballots, quorum arithmetic, membership steps, message wire format."""
import msgpack

from triplica.replication.ballot import Ballot
from triplica.replication.membership import Membership
from triplica.replication.log import EntryKind, LogEntry, Snapshot
from triplica.replication.messages import Accept, Promise, message_from_wire, message_to_wire
from triplica.replication.options import ReplicaOptions
from triplica.replication.quorum import has_quorum, majority, quorum_value


def test_ballots_are_totally_ordered_by_round_then_node():
    assert Ballot(1, 3) < Ballot(2, 1) < Ballot(2, 2)
    assert Ballot(2, 1).next_for(3) == Ballot(3, 3)


def test_quorum_math_and_joint_configs():
    old, new = Membership.of([1, 2, 3]), Membership.of([1, 2, 3, 4])
    assert majority(3) == 2 and majority(4) == 3
    assert has_quorum({1, 2}, [old]) and not has_quorum({1, 2}, [old, new])
    assert quorum_value({1: 10, 2: 7, 3: 3}, [old]) == 7
    assert quorum_value({1: 10, 2: 7, 3: 3, 4: 1}, [old, new]) == 3


def test_membership_changes_one_member_at_a_time():
    base = Membership.of([1, 2, 3])
    assert Membership.of([1, 2, 3, 4], [4]).is_single_step_from(base)
    assert Membership.of([1, 2]).is_single_step_from(base)
    assert Membership.of([1, 2, 3], [3]).is_single_step_from(base)
    assert not Membership.of([1, 2, 4]).is_single_step_from(base)
    assert Membership.decode(Membership.of([1, 2, 4], [4]).encode()) == Membership.of([1, 2, 4], [4])


def test_messages_round_trip_through_msgpack():
    entry = LogEntry(5, Ballot(2, 1), EntryKind.COMMAND, b"x")
    snapshot = Snapshot(4, Membership.of([1, 2, 3]), b"state")
    for message in [
        Accept(1, 2, 7, Ballot(2, 1), (entry,), 4, 9),
        Promise(2, 1, 7, Ballot(2, 1), 3, (entry,), snapshot),
        Promise(2, 1, 7, Ballot(2, 1), 3, (), None),
    ]:
        wire = msgpack.unpackb(msgpack.packb(message_to_wire(message)), use_list=False)
        assert message_from_wire(wire) == message


def test_lease_is_shorter_than_the_drift_adjusted_election_timeout():
    options = ReplicaOptions(election_timeout_base_ms=300, clock_drift_rate_max=0.02, lease_margin_ms=10)
    assert options.lease_ms == int(300 * 0.98 / 1.02) - 10
    assert options.lease_ms / (1 - 0.02) < 300 / (1 + 0.02)
