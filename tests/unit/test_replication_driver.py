"""Three replicas of one group over the asyncio driver: failover, catch-up, restart.

Three real replicas (PaxosLog + LMDB each), NodePartitions on three
in-process nodes as `triplica serve` runs them (tests/unit/group_harness.py);
stopping a replica is a power-off as far as its peers can tell.
"""
from __future__ import annotations

import asyncio

import pytest

from tests.unit.group_harness import LocalGroup, image, run, until
from triplica.common.redirects import NotLeaderError
from triplica.errors import InternalServerError

FAILOVER_S_MAX = 5.0


async def write(group: LocalGroup, key: bytes, text: str) -> int:
    return await group.propose([(key, image(text))])


def test_writes_commit_on_all_three_and_reads_see_them(tmp_path):
    async def scenario() -> None:
        group = await LocalGroup(str(tmp_path)).start()
        try:
            leader = group.leading()  # a new group elects at once
            for i in range(50):
                await write(group, b"k%03d" % i, f"v{i}")
            assert leader.read_applied(b"k007", consistent=True) == image("v7")
            assert leader.read_applied(b"k007") == image("v7")
            assert leader.read_latest(b"k049") == image("v49")
            assert [k for k, _ in leader.scan(b"k010", b"k013", consistent=True)] == \
                [b"k010", b"k011", b"k012"]
            assert leader.stats()[0] == 50
            await group.converged()
            for node, replica in group.replicas.items():  # followers serve eventual reads
                assert replica is not None and replica.read_applied(b"k049") == image("v49")
        finally:
            await group.close()
    run(scenario)


def test_leader_power_off_fails_over_and_the_old_leader_catches_up(tmp_path):
    async def scenario() -> None:
        group = await LocalGroup(str(tmp_path)).start()
        try:
            await write(group, b"before", "acknowledged before the failover")
            old = group.leader()
            assert old is not None
            pending = [group.propose([(b"inflight%d" % i, image("x"))]) for i in range(20)]
            await group.stop_replica(old.node_id)
            # In-flight writes either committed or failed with a 500, never hang.
            results = await asyncio.gather(*pending, return_exceptions=True)
            assert all(isinstance(r, (int, InternalServerError)) for r in results)
            elapsed = await until(lambda: group.usable_leader() is not None, FAILOVER_S_MAX)
            assert elapsed < FAILOVER_S_MAX
            new = group.leader()
            assert new is not None and new.node_id != old.node_id
            assert group.leading().read_applied(b"before", consistent=True) == \
                image("acknowledged before the failover")
            for i in range(30):  # two of three keep accepting writes
                await write(group, b"after%02d" % i, f"a{i}")
            group.start_replica(old.node_id)
            await write(group, b"last", "after the restart")
            await group.converged()
            applied, items = group.contents(old.node_id)
            assert (b"before", image("acknowledged before the failover")) in items
            assert (b"last", image("after the restart")) in items
        finally:
            await group.close()
    run(scenario)


def test_a_replica_behind_the_compacted_log_gets_a_btree_snapshot(tmp_path):
    async def scenario() -> None:
        group = await LocalGroup(str(tmp_path), compact_entries=40).start()
        try:
            leader = group.leader()
            assert leader is not None
            follower = next(n for n in group.drivers if n != leader.node_id)
            await group.stop_replica(follower)
            for i in range(200):
                await write(group, b"k%03d" % i, f"v{i}")
            await group.propose([(b"k000", None)])  # a delete, to check stats too
            assert leader.replica.log.snapshot_index > 0  # the prefix is gone from the log
            group.start_replica(follower)
            await group.converged()
            applied, items = group.contents(follower)
            assert len(items) == 199 and applied >= 201
            assert group.drivers[follower].store.stats() == leader.store.stats()
        finally:
            await group.close()
    run(scenario)


def test_state_survives_a_restart_of_every_replica(tmp_path):
    async def first_life() -> None:
        group = await LocalGroup(str(tmp_path), compact_entries=25).start()
        for i in range(60):
            await write(group, b"k%02d" % i, f"v{i}")
        await group.close()

    async def second_life() -> None:
        group = await LocalGroup(str(tmp_path), compact_entries=25).start()
        try:
            assert group.leading().read_applied(b"k59", consistent=True) == image("v59")
            assert group.leading().stats()[0] == 60
            await write(group, b"k60", "v60")
            await group.converged()
        finally:
            await group.close()
    run(first_life)
    run(second_life)


def test_without_a_quorum_only_eventually_consistent_reads_are_served(tmp_path):
    async def scenario() -> None:
        group = await LocalGroup(str(tmp_path)).start()
        try:
            await write(group, b"k", "v")
            leader = group.leading()
            for node in [n for n in group.drivers if n != leader.replica_id]:
                await group.stop_replica(node)
            # The leader loses its lease within an election timeout, then steps down.
            await until(lambda: group.usable_leader() is None)
            with pytest.raises(NotLeaderError):
                leader.read_applied(b"k", consistent=True)
            with pytest.raises(NotLeaderError):
                leader.read_latest(b"k")
            with pytest.raises(NotLeaderError):
                leader.propose([(b"k2", image("never"))])
            assert leader.read_applied(b"k") == image("v")  # eventually consistent: any replica
        finally:
            await group.close()
    run(scenario)
