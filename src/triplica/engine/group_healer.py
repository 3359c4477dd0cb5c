"""Replaces an unhealthy replica of a `triplica serve` partition, live.

Paper: "When a storage replica is unhealthy, the leader adds a log replica
so the write quorum holds", then a full replica is rebuilt by copying the
B-tree and the log, and the log replica is removed. The decisions are the
pure `ControlPlane` of replication/healing.py (the same code the simulator
runs under crashes, partitions and churn); this module is its I/O: it
observes the group through the leader's core every HEAL_POLL_S and carries
the actions out on the partition:

    spawn    a new replica (new id, directory `<az>.r<id>`, in the replaced
             member's AZ), recorded in the roster before it exists; it starts
             with no configuration and learns it from the leader
    propose  the next one-member configuration on the leader (one change at
             a time; a lost proposal is simply proposed again next poll)
    retire   a removed member: stop it, drop it from the roster, move its
             directory aside to `<dir>.removed-<UTC stamp>` (kept for the
             operator, like a quarantined replica)

So a replacement of X in {A, B, X} goes {A, B, X, L} -> {A, B, L} ->
{A, B, L, F} -> {A, B, F}: the group has three voters again as soon as the
first two steps commit (two log appends, milliseconds), and F catches up by
the log or by an LMDB image before L leaves.

Health. In one process a replica is unhealthy when its driver is not
running: it failed (a disk error stops a replica, driver.py `_fail`) or was
stopped. After `heal_after_s` of that, it is replaced. A replica that comes
back before then just catches up. Removed members are retired only once
every remaining member has learned the removal committed (healing.py: a
candidate may still need a removed member's promise until then).

Crash safety. Every step is either a log entry (the group's configuration)
or a roster change written before the files it describes. After a restart
the healer starts from the committed configuration; a replacement in flight
resumes or unwinds (the core refuses anything but single steps from the
committed configuration). Roster replicas that never became members (a
crash between spawn and propose) are "orphans": once the leader has no
configuration change pending, every roster replica outside the committed
configuration is handed to the ControlPlane as a former member, so it is
retired like any removed one.
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

from triplica.replication.healing import Action, ControlPlane, Observation

if TYPE_CHECKING:
    from triplica.engine.replicated_partition import ReplicatedPartition
    from triplica.replication.driver import ReplicaDriver

log = logging.getLogger(__name__)

HEAL_POLL_S = 0.25  # while a replica is unhealthy or a replacement runs
HEAL_IDLE_POLL_S = 1.0  # a healthy, settled group: a quarter of the wake-ups (idle CPU)
REPLACEMENTS_MAX = 1_000_000  # per process lifetime: a guard, not a policy


class GroupHealer:
    """Observes one ReplicatedPartition's group and heals it (see the module docstring)."""

    def __init__(self, partition: "ReplicatedPartition", heal_after_s: float) -> None:
        assert heal_after_s > 0, heal_after_s
        self.partition = partition
        self.control = ControlPlane(
            random.Random(0), first_new_id=partition.roster.next_id,
            unhealthy_after_ms=int(heal_after_s * 1000), replacements_max=REPLACEMENTS_MAX)
        self._unhealthy_since: dict[int, int] = {}
        self._az_of = {n: e.az for n, e in partition.roster.entries.items()}
        self._orphans_checked = False
        self._active = True  # poll fast until the first observation says all is well
        self.replacements_started = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(HEAL_POLL_S if self._active else HEAL_IDLE_POLL_S)
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not take the partition down; try again
                log.exception("partition %s: healing step failed", self.partition.directory)

    async def step(self) -> None:
        partition = self.partition
        leader = self._leader()
        now_ms = int(asyncio.get_running_loop().time() * 1000)
        for node in partition.roster.entries:
            driver = partition.drivers.get(node)
            if driver is None or not driver.running:
                self._unhealthy_since.setdefault(node, now_ms)
            else:
                self._unhealthy_since.pop(node, None)
        self._active = True
        if leader is None:
            return
        core = leader.replica
        config = core.committed_config
        if config is None:
            return
        self._active = bool(self._unhealthy_since) or not self.control.settled(config)
        if not self._orphans_checked and core.pending_config is None:
            self.control.ever_members |= set(partition.roster.entries)
            self._orphans_checked = True
        caught_up = frozenset(n for n, p in core.progress.items() if p.match_index >= core.commit_index)
        observation = Observation(
            now_ms, leader.node_id, core.commit_index, config, caught_up,
            {n: now_ms - t for n, t in self._unhealthy_since.items()},
            {n: d.replica.committed_config for n, d in partition.drivers.items()
             if d is not None and d.running},
            core.pending_config)
        declared = self.control.replacements
        for action in self.control.decide(observation):
            await self._act(leader, action)
        if self.control.replacements > declared:
            self.replacements_started += 1
            log.warning("partition %s: replica %s has been unhealthy for %d ms; replacing it",
                        partition.directory, self.control.replacing,
                        observation.unhealthy_ms.get(self.control.replacing, 0))

    def _leader(self) -> "ReplicaDriver | None":
        """The leader that knows the most (a deposed one may still think it leads)."""
        leaders = [d for d in self.partition.drivers.values() if d is not None and d.is_leader]
        if not leaders:
            return None
        return max(leaders, key=lambda d: (d.replica.commit_index, d.node_id))

    async def _act(self, leader: "ReplicaDriver", action: Action) -> None:
        partition = self.partition
        if action.kind == "spawn":
            az = self._az_of[action.replaces]
            self._az_of[action.node] = az
            partition.spawn_replica(action.node, az, action.log_replica)
        elif action.kind == "propose":
            assert action.membership is not None
            index = leader.propose_membership(action.membership)
            log.info("partition %s: proposed members %s (log replicas %s) at index %s",
                     partition.directory, sorted(action.membership.members),
                     sorted(action.membership.log_replicas), index)
        elif action.kind == "retire":
            # Shielded: a close of the partition must not cut a retirement in half.
            await asyncio.shield(partition.retire_replica(action.node))
        else:
            raise AssertionError(action.kind)
