"""Scripted scenarios: the real Replica driven by the simulator, no random faults.

Each test builds a SimCluster (lossless network, 1 ms disks), steps virtual
time and asserts on replica state. Failures replay exactly (fixed seeds).
"""
import random

import pytest

from triplica.replication.membership import Membership
from triplica.replication.options import ReplicaOptions
from triplica.sim.cluster import SimCluster
from triplica.sim.kv import Command

OPTIONS = ReplicaOptions()


def make_cluster(seed: int = 1, nodes=(1, 2, 3), **kwargs) -> SimCluster:
    cluster = SimCluster(random.Random(seed), list(nodes), OPTIONS, **kwargs)
    assert cluster.run_until(lambda: cluster.leader() is not None, 3000), "no leader elected"
    return cluster


class Writer:
    """Writes through the client path (propose on the leader, ack on apply)."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        self.seq = 0
        self.acks: list = []

    def put(self, key: str, value: str, node: "int | None" = None) -> list:
        self.seq += 1
        replies: list = []
        target = node if node is not None else self.cluster.leader()
        self.cluster.handle_client(target, ("write", Command(1, self.seq, "put", key, value)), replies.append)
        return replies

    def put_and_wait(self, key: str, value: str, limit_ms: int = 2000) -> None:
        replies = self.put(key, value)
        assert self.cluster.run_until(lambda: bool(replies), limit_ms), f"write {key}={value} not acknowledged"
        assert replies[0][0] == "ok", replies


def kv_of(cluster: SimCluster, node: int) -> dict:
    return dict(cluster.nodes[node].kv.data)


def settle(cluster: SimCluster, ms: int = 500) -> None:
    cluster.run_for(ms)
    assert cluster.violations == []


def test_elects_one_leader_and_replicates():
    cluster = make_cluster()
    writer = Writer(cluster)
    for i in range(10):
        writer.put_and_wait("k", f"v{i}")
    settle(cluster)
    assert [kv_of(cluster, n) for n in (1, 2, 3)] == [{"k": "v9"}] * 3
    leader = cluster.nodes[cluster.leader()].replica
    assert leader.read_allowed(cluster.nodes[leader.node_id].local_ms(cluster.now_ms))
    followers = [n for n in (1, 2, 3) if n != leader.node_id]
    assert not any(cluster.nodes[n].replica.read_allowed(cluster.nodes[n].local_ms(cluster.now_ms)) for n in followers)


def test_not_leader_refuses_proposals():
    cluster = make_cluster()
    settle(cluster, 200)
    follower = next(n for n in (1, 2, 3) if n != cluster.leader())
    replies = Writer(cluster).put("k", "v", node=follower)
    assert replies == [("not_leader", cluster.leader())]


def test_leader_crash_elects_a_new_leader_that_keeps_acked_writes():
    cluster = make_cluster()
    writer = Writer(cluster)
    for i in range(5):
        writer.put_and_wait("k", f"v{i}")
    old = cluster.leader()
    cluster.crash(old)
    crash_ms = cluster.now_ms
    assert cluster.run_until(lambda: cluster.leader() not in (None, old), 3000)
    assert cluster.now_ms - crash_ms < 2000
    writer.put_and_wait("k", "after")
    cluster.start(old)
    settle(cluster, 1000)
    assert [kv_of(cluster, n) for n in (1, 2, 3)] == [{"k": "after"}] * 3


def test_partitioned_leader_loses_its_lease_before_a_new_leader_is_elected():
    cluster = make_cluster()
    Writer(cluster).put_and_wait("k", "v")
    old = cluster.leader()
    old_node = cluster.nodes[old]
    cluster.network.isolate(old, [1, 2, 3])
    cut_ms = cluster.now_ms
    assert cluster.run_until(lambda: not old_node.replica.lease_valid(old_node.local_ms(cluster.now_ms)), 2000)
    lease_end_ms = cluster.now_ms
    assert lease_end_ms - cut_ms <= OPTIONS.lease_ms / (1 - OPTIONS.clock_drift_rate_max) + 1
    assert not old_node.replica.read_allowed(old_node.local_ms(cluster.now_ms))
    others = [n for n in (1, 2, 3) if n != old]
    assert cluster.run_until(lambda: any(cluster.nodes[n].replica.is_leader for n in others), 3000)
    new_leader = next(n for n in others if cluster.nodes[n].replica.is_leader)
    assert cluster.now_ms >= lease_end_ms
    assert cluster.lease_holders_max <= 1 and cluster.violations == []
    # The old leader, still cut off, steps down (no quorum for an election timeout).
    assert cluster.run_until(lambda: not old_node.replica.is_leader, 2000)
    cluster.network.heal()
    settle(cluster)
    assert cluster.leader() == new_leader


def test_lagging_follower_catches_up_from_the_log():
    cluster = make_cluster()
    writer = Writer(cluster)
    lagging = next(n for n in (1, 2, 3) if n != cluster.leader())
    cluster.crash(lagging)
    for i in range(40):
        writer.put_and_wait(f"k{i % 4}", f"v{i}")
    cluster.start(lagging)
    leader_state = kv_of(cluster, cluster.leader())
    assert cluster.run_until(lambda: cluster.nodes[lagging].kv.data == leader_state, 3000)
    assert cluster.nodes[lagging].replica.log.snapshot_index == 0
    settle(cluster)


def test_follower_behind_compacted_log_gets_a_snapshot_plus_tail():
    cluster = make_cluster(compact_every_entries=8)
    writer = Writer(cluster)
    lagging = next(n for n in (1, 2, 3) if n != cluster.leader())
    cluster.crash(lagging)
    for i in range(40):
        writer.put_and_wait(f"k{i % 4}", f"v{i}")
    assert cluster.nodes[cluster.leader()].replica.log.snapshot_index > 8
    cluster.start(lagging)
    leader_state = kv_of(cluster, cluster.leader())
    assert cluster.run_until(lambda: cluster.nodes[lagging].kv.data == leader_state, 3000)
    assert cluster.nodes[lagging].replica.log.snapshot_index > 0
    writer.put_and_wait("k0", "tail")
    settle(cluster)
    assert kv_of(cluster, lagging)["k0"] == "tail"


def test_corrupted_record_is_detected_and_repaired_never_used():
    cluster = make_cluster()
    writer = Writer(cluster)
    for i in range(10):
        writer.put_and_wait("k", f"v{i}")
    victim = next(n for n in (1, 2, 3) if n != cluster.leader())
    cluster.crash(victim)
    flipped = cluster.nodes[victim].disk.flip_bit(random.Random(5))
    cluster.start(victim)
    replica = cluster.nodes[victim].replica
    assert replica.repairing and replica.commit_index < flipped
    assert cluster.run_until(lambda: not cluster.nodes[victim].replica.repairing, 3000)
    writer.put_and_wait("k", "later")
    settle(cluster)
    assert kv_of(cluster, victim) == {"k": "later"}


def test_membership_change_adds_a_log_replica_then_removes_a_full_replica():
    cluster = make_cluster()
    writer = Writer(cluster)
    writer.put_and_wait("k", "v0")
    cluster.add_node(4, bootstrap=None)
    cluster.start(4)
    with_log_replica = Membership.of([1, 2, 3, 4], log_replicas=[4])
    index = cluster.change_membership(with_log_replica)
    assert index is not None
    # A second change is refused while the first is pending.
    assert cluster.change_membership(Membership.of([1, 2, 3, 4])) is None
    assert cluster.run_until(lambda: cluster.nodes[4].replica.committed_config == with_log_replica, 2000)
    leader = cluster.leader()
    removed = next(n for n in (1, 2, 3) if n != leader)
    final = Membership.of(sorted({1, 2, 3, 4} - {removed}), log_replicas=[4])
    assert cluster.run_until(lambda: cluster.change_membership(final) is not None, 2000)
    assert cluster.run_until(lambda: all(cluster.nodes[n].replica.committed_config == final for n in final.members), 2000)
    cluster.crash(removed)
    writer.put_and_wait("k", "v1")
    settle(cluster)
    # The log replica stores the log but applies nothing and never leads.
    log_replica = cluster.nodes[4].replica
    assert log_replica.commit_index >= cluster.nodes[cluster.leader()].replica.commit_index - 1
    assert kv_of(cluster, 4) == {} and not log_replica.is_leader


def test_log_replica_vote_keeps_the_group_writable_and_it_never_leads():
    cluster = make_cluster()
    writer = Writer(cluster)
    cluster.add_node(4, bootstrap=None)
    cluster.start(4)
    assert cluster.run_until(lambda: cluster.change_membership(Membership.of([1, 2, 3, 4], [4])) is not None, 2000)
    leader = cluster.leader()
    drop = next(n for n in (1, 2, 3) if n != leader)
    target = Membership.of(sorted({1, 2, 3, 4} - {drop}), [4])
    assert cluster.run_until(lambda: cluster.nodes[leader].replica.committed_config == Membership.of([1, 2, 3, 4], [4]), 2000)
    assert cluster.run_until(lambda: cluster.change_membership(target) is not None, 2000)
    assert cluster.run_until(lambda: cluster.nodes[leader].replica.committed_config == target, 2000)
    cluster.crash(drop)
    full = [n for n in target.members if n not in target.log_replicas]
    other_full = next(n for n in full if n != leader)
    # The other full replica is down: the leader commits with the log replica's vote.
    cluster.crash(other_full)
    writer.put_and_wait("k", "with-log-replica-vote")
    # The leader dies, the other full replica returns: it is elected with the
    # log replica's vote; the log replica itself never campaigns.
    cluster.start(other_full)
    cluster.crash(leader)
    assert cluster.run_until(lambda: cluster.leader() == other_full, 4000)
    writer.put_and_wait("k", "after-failover")
    settle(cluster)
    assert kv_of(cluster, other_full) == {"k": "after-failover"}
    assert not cluster.nodes[4].replica.is_leader


@pytest.mark.parametrize("seed", range(5))
def test_determinism_of_a_scripted_run(seed):
    def run() -> int:
        cluster = make_cluster(seed)
        writer = Writer(cluster)
        for i in range(5):
            writer.put_and_wait("k", f"v{i}")
        return cluster.trace_hash
    assert run() == run()


def _replace_member_with_log_replica(cluster: SimCluster, victim: int, log_replica: int) -> None:
    cluster.add_node(log_replica, bootstrap=None)
    cluster.log_replica_ids.add(log_replica)
    cluster.start(log_replica)
    members = set(cluster.membership.members)
    with_log = Membership.of(sorted(members | {log_replica}), [log_replica])
    assert cluster.run_until(lambda: cluster.change_membership(with_log) is not None, 3000)
    without = Membership.of(sorted((members | {log_replica}) - {victim}), [log_replica])
    assert cluster.run_until(lambda: cluster.change_membership(without) is not None, 3000)
    assert cluster.run_until(lambda: all(cluster.nodes[n].replica.committed_config == without for n in without.members), 3000)


def test_joining_log_replica_never_applies_even_after_learning_older_configurations():
    """Regression (sim churn sweep): a joining node used to apply entries (and
    load a snapshot) as soon as it learned ANY committed configuration, e.g.
    the one in a snapshot or an earlier CONFIG entry, before reaching the one
    that makes it a log replica. It must wait for a configuration naming it."""
    cluster = make_cluster(seed=3, compact_every_entries=8)
    writer = Writer(cluster)
    for i in range(20):
        writer.put_and_wait("k", f"v{i}")
    leader = cluster.leader()
    victim = next(n for n in (1, 2, 3) if n != leader)
    _replace_member_with_log_replica(cluster, victim, 4)  # CONFIG entries now in the log
    cluster.retire(victim)
    for i in range(20):
        writer.put_and_wait("k", f"w{i}")
    # A new full member joins (via the leader's snapshot, whose membership does not name it)...
    cluster.add_node(5, bootstrap=None)
    cluster.start(5)
    grown = Membership.of(sorted(set(cluster.nodes)), [4])
    assert cluster.run_until(lambda: cluster.change_membership(grown) is not None, 3000)
    assert cluster.run_until(lambda: cluster.nodes[5].replica.applied_index >= cluster.nodes[cluster.leader()].replica.commit_index, 3000)
    # ... and a second log replica joins a log that already holds older CONFIG entries.
    full = Membership.of(sorted(grown.members - {4}))
    assert cluster.run_until(lambda: cluster.change_membership(full) is not None, 3000)
    assert cluster.run_until(lambda: all(cluster.nodes[n].replica.committed_config == full for n in full.members), 3000)
    cluster.retire(4)
    for i in range(20):
        writer.put_and_wait("k", f"x{i}")
    cluster.add_node(6, bootstrap=None)
    cluster.log_replica_ids.add(6)
    cluster.start(6)
    with_log = Membership.of(sorted(full.members | {6}), [6])
    assert cluster.run_until(lambda: cluster.change_membership(with_log) is not None, 3000)
    writer.put_and_wait("k", "last")
    settle(cluster, 1000)  # the cluster flags any apply/install on a log replica
    assert kv_of(cluster, 5) == {"k": "last"} and kv_of(cluster, 6) == {}
    assert cluster.nodes[6].replica.commit_index >= cluster.nodes[cluster.leader()].replica.commit_index - 1


def test_candidate_asks_members_of_configurations_revealed_by_promises():
    """Regression (sim churn sweep): a candidate sent Prepare only to the
    members it knew when it started campaigning. If a promise revealed a
    pending change adding a node (an entry the candidate's log lacked), the
    candidate needed that node's promise but never asked it: the group
    stayed leaderless forever."""
    cluster = make_cluster(seed=5)
    writer = Writer(cluster)
    writer.put_and_wait("k", "v0")
    leader = cluster.leader()
    a, b = [n for n in (1, 2, 3) if n != leader]
    cluster.add_node(4, bootstrap=None)
    cluster.start(4)
    # Only b sees the change adding node 4, then the leader dies with it uncommitted.
    cluster.network.isolate(a, [leader, 4], inbound=True, outbound=False)
    assert cluster.change_membership(Membership.of([1, 2, 3, 4])) is not None
    assert cluster.run_until(lambda: cluster.nodes[b].replica._pending_config() is not None, 1000)
    cluster.crash(leader)
    cluster.network.heal()
    # b cannot reach node 4, so only a can win, and a's log lacks the change:
    # it learns of it from b's promise and must then ask node 4 as well.
    cluster.network.blocked.update({(b, 4), (4, b)})
    assert cluster.run_until(lambda: cluster.leader() is not None, 6000), "no leader: node 4 was never asked"
    assert cluster.leader() == a
    writer.put_and_wait("k", "v1")
    settle(cluster)


@pytest.mark.parametrize("broken", [False, True])
def test_the_checker_sees_a_stale_strong_read_from_a_deposed_leader_that_skips_its_lease(broken):
    """A scripted version of the sweep's broken-core test, which catches this
    in only ~1.5% of random seeds: cut the leader off, let the others elect a
    new leader and acknowledge a write, then ask the old leader for a strong
    read. A correct core refuses (its lease expired before the new leader
    could win); a core that skips the lease check answers the old value, and
    the history checker must call that a violation."""
    from triplica.sim.history import HistoryEvent
    from triplica.sim.linearizability import check_history

    options = ReplicaOptions(fault_skip_lease_check=broken)
    cluster = SimCluster(random.Random(5), [1, 2, 3], options)
    assert cluster.run_until(lambda: cluster.leader() is not None, 3000)
    writer = Writer(cluster)
    events = []
    start = cluster.now_ms
    writer.put_and_wait("k", "v1")
    events.append(HistoryEvent(1, "put", "k", "v1", None, start, cluster.now_ms, True, None))
    old = cluster.leader()
    cluster.network.isolate(old, [1, 2, 3])
    others = [n for n in (1, 2, 3) if n != old]
    assert cluster.run_until(lambda: any(cluster.nodes[n].replica.is_leader
                                         and cluster.nodes[n].replica.read_allowed(
                                             cluster.nodes[n].local_ms(cluster.now_ms))
                                         for n in others), 5000)
    new = next(n for n in others if cluster.nodes[n].replica.is_leader)
    start = cluster.now_ms
    replies: list = []
    cluster.handle_client(new, ("write", Command(2, 1, "put", "k", "v2")), replies.append)
    assert cluster.run_until(lambda: bool(replies), 2000) and replies[0][0] == "ok"
    events.append(HistoryEvent(2, "put", "k", "v2", None, start, cluster.now_ms, True, None))
    cluster.run_for(1)  # the read starts strictly after the write's acknowledgement
    start = cluster.now_ms
    reads: list = []
    cluster.handle_client(old, ("strong_get", "k"), reads.append)
    assert reads, "the client link to the old leader is not cut: it answers at once"
    if reads[0][0] == "ok":
        events.append(HistoryEvent(3, "get", "k", None, None, start, cluster.now_ms, True, reads[0][1]))
    verdict = check_history(events).verdict
    if broken:
        assert reads == [("ok", "v1")] and verdict == "violation"
    else:
        assert reads[0][0] == "not_leader" and verdict == "ok"
