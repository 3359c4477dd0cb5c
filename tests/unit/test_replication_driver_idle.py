"""The driver's idle cost: an idle group wakes for its heartbeats only.

The driver sleeps until the core's next deadline (`Replica.next_tick_ms`)
instead of ticking every few ms, and peers in the same process exchange
messages without the transport. An idle group must still keep its lease
(strongly consistent reads never stop) and stay writable.
"""
from __future__ import annotations

import asyncio
import collections

from tests.unit.group_harness import SLOW, LocalGroup
from triplica.replication import driver as driver_module

IDLE_S = 1.0


def test_an_idle_group_wakes_for_heartbeats_only_and_keeps_its_lease(tmp_path, monkeypatch):
    wakeups: collections.Counter = collections.Counter()
    on_tick = driver_module.ReplicaDriver._on_tick
    step_inbox = driver_module.ReplicaDriver._step_inbox

    def counting_tick(self):
        wakeups[("tick", self.node_id)] += 1
        on_tick(self)

    def counting_step(self):
        wakeups[("step", self.node_id)] += 1
        step_inbox(self)

    monkeypatch.setattr(driver_module.ReplicaDriver, "_on_tick", counting_tick)
    monkeypatch.setattr(driver_module.ReplicaDriver, "_step_inbox", counting_step)

    async def scenario() -> None:
        group = await LocalGroup(str(tmp_path)).start()
        try:
            await group.propose([(b"k", b"\x00\x00\x00\x01v")])
            wakeups.clear()
            lapses = 0
            for _ in range(int(IDLE_S / 0.02)):
                await asyncio.sleep(0.02)
                lapses += group.usable_leader() is None
            assert lapses == 0  # heartbeats keep renewing the lease
            rounds_max = IDLE_S * 1000 / SLOW.heartbeat_interval_ms + 2
            # Per heartbeat: the leader's timer, one step per follower, one on the leader.
            assert sum(wakeups.values()) <= 4 * rounds_max + 6, dict(wakeups)
            assert await group.propose([(b"k", b"\x00\x00\x00\x01w")]) >= 1
        finally:
            await group.close()

    asyncio.run(scenario())
