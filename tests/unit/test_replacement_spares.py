"""The replacement plan with spares chosen by the cluster and members drained (replication/replacement.py)."""
from __future__ import annotations

import random

from triplica.replication.membership import Membership
from triplica.replication.replacement import ReplacementPlanner, Observation


def _observe(members: list[int], log_replicas: list[int] = (), leader: int = 1,
             caught_up: list[int] = ()) -> Observation:
    config = Membership.of(members, log_replicas)
    return Observation(now_ms=1000, leader=leader, commit_index=10, committed=config,
                       caught_up=frozenset(caught_up), unhealthy_ms={},
                       configs={m: config for m in members})


def test_a_drained_member_is_replaced_through_a_log_replica_on_chosen_nodes() -> None:
    asked: list[tuple[bool, int, frozenset[int]]] = []

    def choose(log_replica: bool, replaces: int, used: frozenset[int]) -> int:
        asked.append((log_replica, replaces, used))
        return 5 if log_replica else 4

    plane = ReplacementPlanner(random.Random(0), first_new_id=0, choose_spare=choose,
                         draining=frozenset({3}))
    spawn, propose = plane.decide(_observe([1, 2, 3]))
    assert (spawn.kind, spawn.node, spawn.log_replica, spawn.replaces) == ("spawn", 5, True, 3)
    assert propose.membership == Membership.of([1, 2, 3, 5], [5])
    assert asked == [(True, 3, frozenset({1, 2, 3}))]
    (remove,) = plane.decide(_observe([1, 2, 3, 5], [5]))
    assert remove.membership == Membership.of([1, 2, 5], [5])
    actions = plane.decide(_observe([1, 2, 5], [5]))
    assert [(a.kind, a.node) for a in actions if a.kind != "propose"] == \
        [("retire", 3), ("spawn", 4)]  # 3's removal is known to every member: it goes
    assert not actions[1].log_replica
    assert actions[2].membership == Membership.of([1, 2, 4, 5], [5])
    assert plane.decide(_observe([1, 2, 4, 5], [5], caught_up=[2])) == []  # 4 catching up
    (drop_log,) = plane.decide(_observe([1, 2, 4, 5], [5], caught_up=[2, 4, 5]))
    assert drop_log.membership == Membership.of([1, 2, 4])
    retired = plane.decide(_observe([1, 2, 4]))
    assert [a.node for a in retired if a.kind == "retire"] == [5]
    assert plane.settled(Membership.of([1, 2, 4]))


def test_no_spare_means_waiting_not_a_half_step() -> None:
    plane = ReplacementPlanner(random.Random(0), first_new_id=0,
                         choose_spare=lambda log_replica, replaces, used: None,
                         draining=frozenset({2}))
    assert plane.decide(_observe([1, 2, 3])) == []
    assert plane.decide(_observe([1, 2, 3])) == []


def test_a_draining_leader_is_moved_too() -> None:
    plane = ReplacementPlanner(random.Random(0), first_new_id=0,
                         choose_spare=lambda log_replica, replaces, used: 7,
                         draining=frozenset({1}))
    spawn, propose = plane.decide(_observe([1, 2, 3], leader=1))
    assert spawn.replaces == 1 and propose.membership == Membership.of([1, 2, 3, 7], [7])
