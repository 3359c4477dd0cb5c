"""Splitting a replicated partition live (engine/partition_split.py), real drivers.

A writer keeps writing (new keys and overwrites) while the partition is
split at a hash boundary; afterwards every acknowledged write is in exactly
the child owning its hash, with its latest value, nothing is in both, the
children's counts add up, both children take writes and strong reads, and
none of the writer's requests failed (held writes wait, they never fail).
"""
from __future__ import annotations

import asyncio
import os
import random

from triplica.engine.partition_split import ChildSpec, split
from triplica.engine.replicated_partition import ReplicatedPartition
from triplica.replication.options import ReplicaOptions

from tests.unit.test_replication_driver import image, run

FAST = ReplicaOptions(heartbeat_interval_ms=50, election_timeout_base_ms=300,
                      election_timeout_jitter_ms=100)
BOUNDARY = 1 << 63
KEYS = 400


def make_key(rng: random.Random) -> bytes:
    return rng.getrandbits(64).to_bytes(8, "big") + b"item"


async def writer(partition_of, keys: list[bytes], acked: dict[bytes, bytes], errors: list,
                 stop: asyncio.Event, rng: random.Random) -> None:
    for i in range(20_000):
        if stop.is_set():
            return
        key = rng.choice(keys)
        value = image(f"w{i}")
        try:
            await partition_of(key).propose([(key, value)])
            acked[key] = value
        except Exception as error:
            errors.append(repr(error))


def test_split_under_writes_keeps_every_acknowledged_write_exactly_once(tmp_path):
    async def scenario() -> None:
        rng = random.Random(11)
        keys = [make_key(rng) for _ in range(KEYS)]
        parent = ReplicatedPartition(str(tmp_path / "parent"), options=FAST, compact_entries=100)
        left = right = None
        acked: dict[bytes, bytes] = {}
        try:
            for key in keys[:200]:
                await parent.propose([(key, image("initial"))])
                acked[key] = image("initial")
            current = {"parts": None}

            def partition_of(key: bytes) -> ReplicatedPartition:
                parts = current["parts"]
                if parts is None:
                    return parent
                return parts[0] if key[:8] < BOUNDARY.to_bytes(8, "big") else parts[1]

            errors: list = []
            stop = asyncio.Event()
            # Four writers on disjoint keys (so "latest acknowledged" is well defined per key).
            tasks = [asyncio.create_task(writer(partition_of, keys[w::4], acked, errors, stop,
                                                random.Random(w))) for w in range(4)]
            await asyncio.sleep(0.2)
            left, right = await split(
                parent, ChildSpec(str(tmp_path / "left"), 0, BOUNDARY),
                ChildSpec(str(tmp_path / "right"), BOUNDARY, 1 << 64), options=FAST)
            current["parts"] = (left, right)
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*tasks)
            assert not errors, errors[:3]
            assert parent.writes_held_total >= 1  # the writers really wrote during the split
            low = {k: v for k, v in acked.items() if k[:8] < BOUNDARY.to_bytes(8, "big")}
            high = {k: v for k, v in acked.items() if k not in low}
            assert low and high
            left_items = dict(left.scan(b"", None, consistent=True))
            right_items = dict(right.scan(b"", None, consistent=True))
            assert left_items == low and right_items == high
            assert left.stats()[0] + right.stats()[0] == len(acked)
            for child, key in ((left, next(iter(low))), (right, next(iter(high)))):
                await child.propose([(key, image("after"))])
                assert child.read_applied(key, consistent=True) == image("after")
        finally:
            for partition in (parent, left, right):
                if partition is not None:
                    await partition.drain()
                    await partition.aclose()
        # The children reopen as ordinary groups.
        for directory in ("left", "right"):
            reopened = ReplicatedPartition(str(tmp_path / directory), options=FAST)
            try:
                assert reopened.stats()[0] > 0
            finally:
                await reopened.aclose()
    run(scenario)


def test_held_writes_are_seen_by_later_writes_and_go_back_to_the_parent_if_the_split_fails(tmp_path):
    async def scenario() -> None:
        parent = ReplicatedPartition(str(tmp_path / "parent"), options=FAST)
        try:
            key = b"\x10" * 8 + b"k"
            await parent.propose([(key, image("v0"))])
            assert await parent.hold_writes()
            held = parent.propose([(key, image("v1"))])
            assert parent.read_latest(key) == image("v1") and parent.pending_write(key) is held
            await asyncio.sleep(0.05)
            assert not held.done()  # held, not proposed
            parent.release_held(lambda k: parent.propose)
            await held
            assert parent.read_applied(key, consistent=True) == image("v1")
            # A split that cannot build its children leaves the parent as it was.
            os.makedirs(tmp_path / "taken")
            try:
                await split(parent, ChildSpec(str(tmp_path / "taken"), 0, BOUNDARY),
                            ChildSpec(str(tmp_path / "right"), BOUNDARY, 1 << 64), options=FAST)
            except FileExistsError:
                pass
            else:
                raise AssertionError("split into an existing directory went ahead")
            await parent.propose([(key, image("v2"))])
            assert parent.read_applied(key, consistent=True) == image("v2")
            assert os.path.isdir(tmp_path / "taken") and not os.path.exists(tmp_path / "right")
        finally:
            await parent.drain()
            await parent.aclose()
    run(scenario)
