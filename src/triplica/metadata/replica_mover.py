"""Moving replicas off dead and drained nodes: the control plane's replica replacement.

Paper: "When a storage replica is unhealthy, the leader adds a log replica
so the write quorum holds", then a full replica is rebuilt and the log
replica removed. The plan is replication/replacement.py's `ReplacementPlanner` (the
same decisions the simulator checks under crashes, partitions and churn),
run here by the metadata leader for one group at a time. Members are
replica ids (common/replica_ids.py): a node id and a generation, so a node
may host a new replica of a group it already belongs to:

    {A, B, X} -> {A, B, X, L} -> {A, B, L} -> {A, B, L, F} -> {A, B, F}

X is a member on a node that has not answered the control plane's ping for
`replace_after_s` (dead), a replica its node reports down for as long
(stopped by a disk failure, or damaged and not rebuilt: the ping's answer
lists them), or a member on a node being drained (`triplica node drain`: a
`set_draining` record in the metadata log). L, a log replica, goes on a
live node outside the group that is not needed for F, else on any live
node; F, the full replica, on a live node in X's availability zone (or in a
zone no other member uses), so the group keeps one replica per AZ: a node
outside the group first, else X's own node, in the next generation (how a
three-node `triplica serve` replaces a stopped replica: it has no other
node in that AZ). Each step is one
request: the group's leader reports its configuration (`group_status`), a
node opens an empty joining replica (`host_replica`), the leader proposes
the next configuration (`propose_members`), a removed replica is closed
(`drop_replica`; a dead node drops its own when it sees the catalogue).
When the group is settled (three full members, none leaving) the new
members are recorded in the table's catalogue entry, which routers, MemDS
and every node follow (a node no longer a member closes and deletes its
replica; the new one takes over serving).

A dead node's replicas need a live node in its AZ; a drain needs two nodes
outside the group; a stopped replica only its own node. Without them the
move waits, logged. The metadata group's replicas are one per node and
generation 0 (its role addresses nodes), so only nodes outside it take
its spares. A metadata leader
change forgets the plan in flight; the next leader starts again from the
group's committed configuration (every step is a configuration change
committed in the group's own log). The metadata group is moved the same
way, first: its members start as the placement rule's and, once moved, are
a `set_metadata_members` record that every node follows (metadata/
role.py: a node added opens a joining metadata replica, a node
removed closes its own once the record reaches it).
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Awaitable, Callable

from triplica.common.replica_ids import generation_of, node_of, replica_id
from triplica.engine.database import Database
from triplica.metadata.metadata_replica import METADATA_GROUP
from triplica.replication.membership import Membership
from triplica.replication.replacement import Action, Observation, ReplacementPlanner

log = logging.getLogger(__name__)

METADATA_TABLE = ""  # the metadata group's "table" in requests and records
PING_S = 0.5  # a node that cannot answer a ping in this long is not answering (now)
PING_EVERY_S = 0.5
REPLACEMENTS_MAX = 1_000_000  # per metadata leadership: a guard, not a policy
NEVER_HEARD_MS = 1 << 40

# (node, request, deadline_s) -> the answer, or None when the node did not answer in time
Ask = Callable[[int, dict, float], Awaitable[Any]]
ASK_S = 1.0
# (table, group, new members) -> recorded in the metadata log
RecordMembers = Callable[[str, str, list[int]], Awaitable[None]]


class ReplicaMover:
    def __init__(self, db: Database, zones: dict[int, str], ask: Ask, record: RecordMembers,
                 replace_after_s: float,
                 metadata_members: Callable[[], list[int]] | None = None) -> None:
        """`metadata_members`: the metadata group's members, moved like a table's group
        (under the table name METADATA_TABLE)."""
        assert replace_after_s > 0 and zones
        self.db = db
        self.metadata_members = metadata_members
        self.zones = zones  # node id -> AZ
        self.ask = ask
        self.record = record
        self.replace_after_s = replace_after_s
        self._down_since: dict[int, float] = {}  # node -> when it stopped answering pings
        # (group key, replica id) -> since its node reported it down
        self._replica_down_since: dict[tuple[str, int], float] = {}
        self._pinger: asyncio.Task | None = None
        self._pinged = False
        self._planes: dict[str, ReplacementPlanner] = {}  # group key -> its plan in flight
        self._observed: Observation | None = None
        self._observed_group = ""
        self.moves_done = 0

    # ------------------------------------------------------------ health

    async def _ping_all(self) -> None:
        """Ping every node every PING_EVERY_S, off the move steps (a dead node costs a
        ping's whole deadline)."""
        while True:
            now = asyncio.get_running_loop().time()
            answers = await asyncio.gather(*(self.ask(n, {"ping": 1}, PING_S)
                                             for n in self.zones))
            down: set[tuple[str, int]] = set()
            for node, answer in zip(self.zones, answers):
                if answer is None:
                    self._down_since.setdefault(node, now)
                else:
                    self._down_since.pop(node, None)
                    if isinstance(answer, dict):
                        down |= {(str(g), int(r)) for g, r in answer.get("down", ())}
            self._replica_down_since = {r: self._replica_down_since.get(r, now) for r in down}
            self._pinged = True
            await asyncio.sleep(PING_EVERY_S)

    async def _check_nodes(self) -> tuple[set[int], set[tuple[str, int]]]:
        """Nodes silent for replace_after_s, and replicas their live nodes reported down
        for as long."""
        if self._pinger is None:
            self._pinger = asyncio.get_running_loop().create_task(self._ping_all())
        while not self._pinged:
            await asyncio.sleep(PING_S / 10)
        now = asyncio.get_running_loop().time()
        dead = {n for n, since in self._down_since.items() if now - since >= self.replace_after_s}
        stopped = {r for r, since in self._replica_down_since.items()
                   if now - since >= self.replace_after_s and node_of(r[1]) not in dead}
        return dead, stopped

    def down_nodes(self) -> set[int]:
        """Nodes not answering pings right now (new tables are not placed there)."""
        return set(self._down_since)

    async def close(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            await asyncio.gather(self._pinger, return_exceptions=True)

    # -------------------------------------------------------------- step

    async def step(self) -> bool:
        """One step of at most one group's move; True if something was done."""
        dead, stopped = await self._check_nodes()
        draining = set(self.db.catalogue.draining)

        def leaving(group: str, members: list[int]) -> set[int]:
            return {m for m in members
                    if node_of(m) in dead or node_of(m) in draining or (group, m) in stopped}
        target = self._target(leaving)
        if target is None:
            return False
        table, group, members = target
        observation = await self._observe(group, members, dead, stopped)
        if observation is None:
            return False  # no leader answers: try again next step
        plane = self._planes.get(group)
        if plane is None:
            plane = ReplacementPlanner(random.Random(0), first_new_id=0,
                                 unhealthy_after_ms=int(self.replace_after_s * 1000),
                                 replacements_max=REPLACEMENTS_MAX,
                                 choose_spare=self._choose_spare)
            self._planes[group] = plane
        config = observation.committed
        everyone = config.members | (observation.pending.members if observation.pending else
                                     frozenset())
        plane.draining = frozenset(m for m in everyone
                                   if node_of(m) in draining and node_of(m) not in dead)
        self._observed = observation
        self._observed_group = group
        for action in plane.decide(observation):
            if not await self._act(table, group, observation, action):
                del self._planes[group]  # start over from the committed configuration
                return True
        if plane.settled(config) and not leaving(group, sorted(config.members)):
            if sorted(config.members) != sorted(members):
                await self.record(table, group, sorted(config.members))
                self.moves_done += 1
                log.warning("table %s: group %s moved from %s to %s", table, group,
                            sorted(members), sorted(config.members))
            del self._planes[group]
        return True

    def _target(self, leaving: Callable[[str, list[int]], set[int]]
                ) -> tuple[str, str, list[int]] | None:
        """The group being moved, else the first one with a member leaving (the metadata
        group's first: the catalogue must outlive its nodes)."""
        found = None
        if self.metadata_members is not None:
            members = self.metadata_members()
            if METADATA_GROUP in self._planes or leaving(METADATA_GROUP, members):
                return METADATA_TABLE, METADATA_GROUP, members
        for name, table in sorted(self.db.tables.items()):
            if table.info.split_intent:
                continue  # a split first (control_plane.py): its children are moved after
            for partition in table.info.partitions:
                if partition.group is None:
                    continue
                members = list(partition.members or ())
                if partition.group in self._planes:
                    return name, partition.group, members
                if found is None and leaving(partition.group, members):
                    found = (name, partition.group, members)
        return found

    def moving(self, group: str) -> bool:
        """Is a move of this group under way (a split of it waits)?"""
        return group in self._planes

    async def _observe(self, group: str, members: list[int], dead: set[int],
                       stopped: set[tuple[str, int]]) -> Observation | None:
        status = None
        asked = [node_of(m) for m in members if node_of(m) not in dead]
        for node in asked + [n for n in sorted(self.zones) if n not in dead and n not in asked]:
            answer = await self.ask(node, {"group_status": group}, ASK_S)
            if isinstance(answer, dict) and "committed" in answer:
                status = answer
                break
        if status is None:
            return None
        committed = _membership(status["committed"])
        pending = None if status["pending"] is None else _membership(status["pending"])
        configs: dict[int, Membership | None] = {}
        unhealthy: dict[int, int] = {}
        for member in sorted(committed.members | (pending.members if pending else frozenset())):
            if node_of(member) in dead or (group, member) in stopped:
                unhealthy[member] = NEVER_HEARD_MS
                continue
            answer = await self.ask(node_of(member), {"replica_config": group, "replica": member},
                                    ASK_S)
            if isinstance(answer, dict) and answer.get("config") is not None:
                configs[member] = _membership(answer["config"])
        now_ms = int(asyncio.get_running_loop().time() * 1000)
        return Observation(now_ms, int(status["leader"]), int(status["commit_index"]), committed,
                           frozenset(int(n) for n in status["caught_up"]), unhealthy, configs,
                           pending)

    def _choose_spare(self, log_replica: bool, replaces: int,
                      used: frozenset[int]) -> int | None:
        """A new replica's id (module docstring): F on a live node in the replaced
        member's AZ or an AZ no other full member uses, a node outside the group first;
        L on a live node outside the group not needed for F, else any live node. On a
        node that had replicas of the group, the next generation."""
        observation = self._observed
        assert observation is not None
        config = observation.committed
        hosting = {node_of(r) for r in used | config.members}  # nodes with one, now or before
        live = [n for n in sorted(self.zones) if n not in self._down_since
                and n not in self.db.catalogue.draining]
        if self._observed_group == METADATA_GROUP:  # one generation-0 replica per node
            live = [n for n in live if n not in hosting]
        staying = config.members - config.log_replicas - {replaces}
        taken = {self.zones[node_of(n)] for n in staying if node_of(n) in self.zones}
        for_full = [n for n in live if self.zones[n] not in taken
                    and n not in {node_of(m) for m in staying}]
        # `replaces` is 0 when a plan resumed after a leader change no longer knows it.
        replaced_zone = self.zones.get(node_of(replaces)) if replaces else None
        for_full.sort(key=lambda n: (n in hosting, self.zones[n] != replaced_zone, n))
        if not log_replica:
            node = for_full[0] if for_full else None
        else:
            candidates = [n for n in live if not (len(for_full) == 1 and n == for_full[0])] \
                or live
            candidates.sort(key=lambda n: (n in hosting, n in for_full, n))
            node = candidates[0] if candidates else None
        if node is None:
            return None
        generations = [generation_of(r) for r in used | config.members if node_of(r) == node]
        return replica_id(node, max(generations) + 1 if generations else 0)

    async def _act(self, table: str, group: str, observation: Observation,
                   action: Action) -> bool:
        if action.kind == "spawn":
            log.warning("group %s: adding a %s replica %s on node %s to replace replica %s",
                        group, "log" if action.log_replica else "full", action.node,
                        node_of(action.node), action.replaces)
            answer = await self.ask(node_of(action.node), {
                "host_replica": group, "table": table, "replica": action.node,
                "members": sorted(observation.committed.members)}, ASK_S)
            return isinstance(answer, dict) and answer.get("ok") is True
        if action.kind == "propose":
            assert action.membership is not None
            answer = await self.ask(node_of(observation.leader), {
                "propose_members": group, "members": sorted(action.membership.members),
                "log_replicas": sorted(action.membership.log_replicas)}, ASK_S)
            log.info("group %s: proposed %s (log replicas %s): %s", group,
                     sorted(action.membership.members), sorted(action.membership.log_replicas),
                     answer)
            return True  # a lost proposal is proposed again from the next observation
        if action.kind == "retire":
            if node_of(action.node) not in self._down_since:  # a node down drops it when back
                await self.ask(node_of(action.node), {"drop_replica": group, "table": table,
                                                      "replica": action.node}, ASK_S)
            return True
        raise AssertionError(action.kind)


def _membership(pair: list[list[int]]) -> Membership:
    members, log_replicas = pair
    return Membership.of([int(m) for m in members], [int(m) for m in log_replicas])
