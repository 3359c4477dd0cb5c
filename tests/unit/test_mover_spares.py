"""Where the metadata leader's mover puts new replicas (metadata/replica_mover.py
`_choose_spare`): replica ids, a node outside the group first, the replaced member's
own node in the next generation when there is no other node in its AZ."""
from __future__ import annotations

import types

from triplica.common.replica_ids import generation_of, node_of, replica_id
from triplica.metadata.metadata_replica import METADATA_GROUP
from triplica.metadata.replica_mover import ReplicaMover
from triplica.replication.membership import Membership
from triplica.replication.replacement import Observation


def _mover(zones: dict[int, str], members: list[int], group: str = "g",
           down: tuple[int, ...] = ()) -> ReplicaMover:
    db = types.SimpleNamespace(catalogue=types.SimpleNamespace(draining=[]), tables={})

    async def never(*_: object) -> None:
        raise AssertionError("no request expected")
    mover = ReplicaMover(db, zones, never, never, replace_after_s=1.0)  # type: ignore[arg-type]
    config = Membership.of(members)
    mover._observed = Observation(0, members[0], 1, config, frozenset(members), {}, {})
    mover._observed_group = group
    mover._down_since = {n: 0.0 for n in down}
    return mover


THREE = {1: "az-a", 2: "az-b", 3: "az-c"}
SIX = {1: "az-a", 2: "az-b", 3: "az-c", 4: "az-a", 5: "az-b", 6: "az-c"}


def test_three_nodes_replace_a_stopped_replica_on_its_own_node() -> None:
    mover = _mover(THREE, [1, 2, 3])
    log_replica = mover._choose_spare(True, 2, frozenset({1, 2, 3}))
    assert log_replica is not None and generation_of(log_replica) == 1
    full = mover._choose_spare(False, 2, frozenset({1, 2, 3, log_replica}))
    assert full == replica_id(2, 1)  # node 2 (the only node in az-b), generation 1


def test_generations_are_never_reused_on_a_node() -> None:
    mover = _mover(THREE, [1, replica_id(2, 1), 3])
    used = frozenset({1, 2, 3, replica_id(1, 1), replica_id(2, 1), replica_id(2, 3)})
    assert mover._choose_spare(False, replica_id(2, 1), used) == replica_id(2, 4)


def test_a_node_outside_the_group_comes_first() -> None:
    mover = _mover(SIX, [1, 2, 3], down=(2,))
    log_replica = mover._choose_spare(True, 2, frozenset({1, 2, 3}))
    full = mover._choose_spare(False, 2, frozenset({1, 2, 3, log_replica or 0}))
    assert full == 5  # az-b's other node, generation 0: its replica id is its node id
    assert log_replica in (4, 6)  # outside the group, not the only node for the full one


def test_never_a_second_full_replica_on_a_staying_members_node() -> None:
    mover = _mover(THREE, [1, 2, 3], down=(2,))  # node 2 itself is gone: az-b has none
    assert mover._choose_spare(False, 2, frozenset({1, 2, 3})) is None


def test_the_metadata_group_takes_only_nodes_outside_it() -> None:
    assert _mover(THREE, [1, 2, 3], group=METADATA_GROUP)._choose_spare(
        False, 2, frozenset({1, 2, 3})) is None
    spare = _mover(SIX, [1, 2, 3], group=METADATA_GROUP)._choose_spare(
        False, 2, frozenset({1, 2, 3}))
    assert spare == 5 and node_of(spare) == 5
