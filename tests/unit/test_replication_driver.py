"""ReplicatedPartition over the asyncio driver: failover, catch-up, restart.

Three real replicas (PaxosLog + LMDB each) in one event loop over the
in-process transport; stopping a driver is a replica power-off as far as
its peers can tell. pytest-asyncio is not installed: each test runs its own
loop with asyncio.run.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

import pytest

import triplica.engine.replicated_partition as replicated
from triplica.engine.replicated_partition import ReplicatedPartition
from triplica.errors import InternalServerError

FAILOVER_S_MAX = 5.0


def image(text: str) -> bytes:
    body = text.encode()
    return len(body).to_bytes(4, "big") + body  # u32 size prefix, as stored items have


async def until(predicate: Callable[[], bool], timeout_s: float = FAILOVER_S_MAX) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def write(partition: ReplicatedPartition, key: bytes, text: str) -> int:
    return await partition.propose([(key, image(text))])


def contents(partition: ReplicatedPartition, node: int) -> tuple[int, list]:
    driver = partition.drivers[node]
    assert driver is not None
    return driver.store.applied_index(), list(driver.store.scan(b"", None))


async def converged(partition: ReplicatedPartition) -> None:
    nodes = [n for n, d in partition.drivers.items() if d is not None]
    await until(lambda: len({repr(contents(partition, n)) for n in nodes}) == 1)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_writes_commit_on_all_three_and_reads_see_them(tmp_path):
    async def scenario() -> None:
        partition = ReplicatedPartition(str(tmp_path))
        try:
            assert partition.leader() is not None  # a new group elects synchronously
            for i in range(50):
                await write(partition, b"k%03d" % i, f"v{i}")
            assert partition.read_applied(b"k007", consistent=True) == image("v7")
            assert partition.read_applied(b"k007") == image("v7")
            assert partition.read_latest(b"k049") == image("v49")
            assert [k for k, _ in partition.scan(b"k010", b"k013", consistent=True)] == \
                [b"k010", b"k011", b"k012"]
            assert partition.stats()[0] == 50
            await converged(partition)
        finally:
            await partition.drain()
            await partition.aclose()
    run(scenario)


def test_leader_power_off_fails_over_and_the_old_leader_catches_up(tmp_path):
    async def scenario() -> None:
        partition = ReplicatedPartition(str(tmp_path))
        try:
            await write(partition, b"before", "acknowledged before the failover")
            old = partition.leader()
            assert old is not None
            pending = [partition.propose([(b"inflight%d" % i, image("x"))]) for i in range(20)]
            await partition.stop_replica(old.node_id)
            # In-flight writes either committed or failed with a 500, never hang.
            results = await asyncio.gather(*pending, return_exceptions=True)
            assert all(isinstance(r, (int, InternalServerError)) for r in results)
            elapsed = await until(lambda: partition._usable_leader() is not None)
            assert elapsed < FAILOVER_S_MAX
            new = partition.leader()
            assert new is not None and new.node_id != old.node_id
            assert partition.read_applied(b"before", consistent=True) == image("acknowledged before the failover")
            for i in range(30):  # two of three keep accepting writes
                await write(partition, b"after%02d" % i, f"a{i}")
            partition.start_replica(old.node_id)
            await write(partition, b"last", "after the restart")
            await converged(partition)
            applied, items = contents(partition, old.node_id)
            assert (b"before", image("acknowledged before the failover")) in items
            assert (b"last", image("after the restart")) in items
        finally:
            await partition.drain()
            await partition.aclose()
    run(scenario)


def test_a_replica_behind_the_compacted_log_gets_a_btree_snapshot(tmp_path):
    async def scenario() -> None:
        partition = ReplicatedPartition(str(tmp_path), compact_entries=40)
        try:
            leader = partition.leader()
            assert leader is not None
            follower = next(n for n in partition.drivers if n != leader.node_id)
            await partition.stop_replica(follower)
            for i in range(200):
                await write(partition, b"k%03d" % i, f"v{i}")
            await partition.propose([(b"k000", None)])  # a delete, to check stats too
            assert leader.replica.log.snapshot_index > 0  # the prefix is gone from the log
            partition.start_replica(follower)
            await converged(partition)
            applied, items = contents(partition, follower)
            assert len(items) == 199 and applied >= 201
            assert partition.drivers[follower].store.stats() == leader.store.stats()
        finally:
            await partition.drain()
            await partition.aclose()
    run(scenario)


def test_state_survives_a_restart_of_every_replica(tmp_path):
    async def first_life() -> None:
        partition = ReplicatedPartition(str(tmp_path), compact_entries=25)
        for i in range(60):
            await write(partition, b"k%02d" % i, f"v{i}")
        await partition.drain()
        await partition.aclose()

    async def second_life() -> None:
        partition = ReplicatedPartition(str(tmp_path), compact_entries=25)
        try:
            await until(lambda: partition._usable_leader() is not None)
            assert partition.read_applied(b"k59", consistent=True) == image("v59")
            assert partition.stats()[0] == 60
            await write(partition, b"k60", "v60")
            await converged(partition)
        finally:
            await partition.drain()
            await partition.aclose()
    run(first_life)
    run(second_life)


def test_without_a_quorum_reads_and_writes_fail_with_500(tmp_path, monkeypatch):
    monkeypatch.setattr(replicated, "LEADER_WAIT_S", 0.5)

    async def scenario() -> None:
        partition = ReplicatedPartition(str(tmp_path))
        try:
            await write(partition, b"k", "v")
            leader = partition.leader()
            assert leader is not None
            for node in [n for n in partition.drivers if n != leader.node_id]:
                await partition.stop_replica(node)
            # The leader loses its lease within an election timeout, then steps down.
            await until(lambda: partition._usable_leader() is None)
            with pytest.raises(InternalServerError):
                partition.read_applied(b"k", consistent=True)
            with pytest.raises(InternalServerError):
                partition.read_latest(b"k")
            assert partition.read_applied(b"k") == image("v")  # eventually consistent: any live replica
            with pytest.raises(InternalServerError):
                await write(partition, b"k2", "never")
        finally:
            await partition.drain()
            await partition.aclose()
    run(scenario)
