"""Healing a replica that stays down, with real drivers (engine/group_healer.py).

Three real replicas (PaxosLog + LMDB each) in one event loop over the
in-process transport, as in test_replication_driver.py. A replica is
stopped for longer than `heal_after_s`; the group must replace it (log
replica in, member out, fresh full replica in and caught up by an LMDB
image, log replica out) while writes keep being acknowledged, and end with
three full members that hold every acknowledged write, that form a write
quorum without the original survivors, and that survive a restart.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from triplica.engine.replicated_partition import REMOVED_SUFFIX, ReplicatedPartition
from triplica.replication.options import ReplicaOptions

from tests.unit.test_replication_driver import contents, image, run, until, write

FAST = ReplicaOptions(heartbeat_interval_ms=50, election_timeout_base_ms=300,
                      election_timeout_jitter_ms=100)
HEAL_S_MAX = 30.0


@contextlib.asynccontextmanager
async def opened(directory, **options) -> AsyncIterator[ReplicatedPartition]:
    """A partition with FAST timing, drained and closed cleanly at the end."""
    partition = ReplicatedPartition(str(directory), options=FAST, **options)
    try:
        yield partition
    finally:
        await partition.drain()
        await partition.aclose()


def committed(partition: ReplicatedPartition):
    leader = partition.leader()
    return None if leader is None else leader.replica.committed_config


def healed_without(partition: ReplicatedPartition, gone: int) -> bool:
    config = committed(partition)
    return (config is not None and gone not in config.members and not config.log_replicas
            and len(config.members) == 3 and set(partition.roster.entries) == set(config.members)
            and all(partition.drivers.get(n) is not None for n in config.members))


async def write_stream(partition: ReplicatedPartition, acked: dict[bytes, str],
                       stop: asyncio.Event) -> list[str]:
    """Writes one key after another until stopped; records what was acknowledged and what failed."""
    errors: list[str] = []
    i = 0
    while not stop.is_set() and i < 5_000:
        key, value = b"during%05d" % i, f"d{i}"
        try:
            await write(partition, key, value)
            acked[key] = value
        except Exception as error:
            errors.append(repr(error))
            await asyncio.sleep(0.01)
        i += 1
    return errors


def test_a_replica_down_for_long_is_replaced_by_log_then_full_replica(tmp_path):
    async def scenario() -> None:
        partition = ReplicatedPartition(str(tmp_path), options=FAST, compact_entries=40,
                                        heal_after_s=1.0)
        acked: dict[bytes, str] = {}
        try:
            for i in range(200):
                await write(partition, b"before%04d" % i, f"b{i}")
                acked[b"before%04d" % i] = f"b{i}"
            leader = partition.leader()
            assert leader is not None
            victim = next(n for n in (1, 2, 3) if n != leader.node_id)
            victim_dir = partition.replica_directory(victim)
            await partition.stop_replica(victim)
            stop = asyncio.Event()
            writer = asyncio.create_task(write_stream(partition, acked, stop))
            seen_log_replica = False

            def progressed() -> bool:
                nonlocal seen_log_replica
                config = committed(partition)
                seen_log_replica |= bool(config is not None and config.log_replicas)
                return healed_without(partition, victim)

            await until(progressed, HEAL_S_MAX)
            stop.set()
            errors = await writer
            assert seen_log_replica, "the group never had a log replica during the replacement"
            assert not errors, f"writes failed while the replica was replaced: {errors[:3]}"
            config = committed(partition)
            new = sorted(config.members - {1, 2, 3})
            assert len(new) == 1 and new[0] > 4, config  # 4 was the log replica; ids never reused
            assert partition.roster.retired >= {victim, 4}
            assert not os.path.exists(victim_dir)
            assert any(name.startswith(os.path.basename(victim_dir) + REMOVED_SUFFIX)
                       for name in os.listdir(tmp_path))
            # The new full replica holds exactly what the leader holds.
            leader = partition.leader()
            await until(lambda: contents(partition, new[0]) == contents(partition, leader.node_id))
            stored = dict(contents(partition, new[0])[1])
            for key, value in acked.items():
                assert stored[key] == image(value), key
            # It votes: with the other original survivor down, writes still commit.
            other = next(n for n in config.members if n not in (leader.node_id, new[0]))
            await partition.stop_replica(other)
            await write(partition, b"after", "quorum of the leader and the new replica")
            acked[b"after"] = "quorum of the leader and the new replica"
            partition.start_replica(other)
        finally:
            await partition.drain()
            await partition.aclose()
        # A restart opens exactly the healed group, with every acknowledged write.
        async with opened(tmp_path, compact_entries=40, heal_after_s=1.0) as reopened:
            assert set(reopened.drivers) == set(config.members)
            await until(lambda: reopened.leader() is not None and reopened.leader().read_allowed())
            for key, value in acked.items():
                assert reopened.read_applied(key, consistent=True) == image(value), key
            await write(reopened, b"after-restart", "x")
    run(scenario)


def test_a_replica_back_before_the_deadline_is_kept(tmp_path):
    async def scenario() -> None:
        async with opened(tmp_path, heal_after_s=5.0) as partition:
            await write(partition, b"k", "v")
            leader = partition.leader()
            follower = next(n for n in (1, 2, 3) if n != leader.node_id)
            await partition.stop_replica(follower)
            await asyncio.sleep(1.0)
            partition.start_replica(follower)
            await asyncio.sleep(5.0)
            assert set(committed(partition).members) == {1, 2, 3}
            assert partition.roster.next_id == 4 and not partition.roster.retired
    run(scenario)


def test_a_restart_in_the_middle_of_a_replacement_unwinds_it(tmp_path):
    async def scenario() -> None:
        partition = ReplicatedPartition(str(tmp_path), options=FAST, heal_after_s=0.5)
        try:
            for i in range(50):
                await write(partition, b"k%03d" % i, f"v{i}")
            leader = partition.leader()
            victim = next(n for n in (1, 2, 3) if n != leader.node_id)
            await partition.stop_replica(victim)
            await until(lambda: bool(committed(partition) and committed(partition).log_replicas),
                        HEAL_S_MAX)
        finally:
            partition.close()  # abrupt: tasks cancelled, nothing drained
        # The victim is back (its files are intact): the healer finds a log
        # replica in the committed configuration and three full members, so it
        # removes the log replica and retires it; nothing is lost.
        async with opened(tmp_path, heal_after_s=0.5) as reopened:
            def unwound() -> bool:
                config = committed(reopened)
                return (config is not None and set(config.members) == {1, 2, 3}
                        and not config.log_replicas and set(reopened.roster.entries) == {1, 2, 3})
            await until(unwound, HEAL_S_MAX)
            assert 4 in reopened.roster.retired
            for i in range(50):
                assert reopened.read_applied(b"k%03d" % i, consistent=True) == image(f"v{i}")
            await write(reopened, b"after", "x")
    run(scenario)
