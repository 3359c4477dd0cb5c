"""Replacing a replication group's members: decides membership changes, sans-I/O.

One decision core for the simulator (sim/runner.py, with crashes,
partitions and scheduled maintenance) and for the metadata leader's mover
(metadata/replica_mover.py, which turns the actions into new replicas,
proposals on the group's leader and retired directories). "Replace" is
this: a member swapped for a new replica. Rebuilding a damaged replica in
place from its peers is "repair" (engine/replica_repair.py).

Paper: "When a storage replica is unhealthy, the leader adds a log replica so
the write quorum holds"; then a full replica is rebuilt (B-tree + log) and
the log replica is removed. The planner here is a pure decision
function over an `Observation` of the group (taken by the runner from the
current leader and a health monitor); it returns `Action`s that the runner
executes (spawn a node, propose a configuration on the leader, retire a
removed node). It never touches the cluster itself.

The plan is declarative: the next step is a function of the committed
configuration and the set of members declared for replacement, so a
proposal lost to a leader crash is simply proposed again, and a pending
one is refused by `Replica.propose_membership` until it commits (one change
at a time). A full replacement of member X is four single-member steps:

    {A, B, X}  ->  {A, B, X, L*}  ->  {A, B, L*}  ->  {A, B, L*, F}  ->  {A, B, F}

Why add first even for a dead X: removing X first ({A, B}) was tried; the
simulator found it strictly worse. In {A, B} one more fault stalls the group
for good when it is a lost log record (A in repair mode cannot vote, and the
returning X is no longer a member), while {A, B, X, L*} uses X again the
moment it returns. The price of adding first is that A, B and L* must all
answer while X is dead, so L* must join in milliseconds: it needs no B-tree
(the leader sends a log replica a snapshot without an image, driver.py).

(L* a fresh log replica, F a fresh full replica, ids never reused); F must be
caught up (leader's match index) before L* is removed. A member is declared
for replacement when the health monitor saw it unhealthy for
`unhealthy_after_ms`, or at a scheduled "maintenance" time (any member, the
leader included). Removed members are retired (stopped for good) after a
delay, so a removed node that missed its removal keeps running for a while,
and only once every member has learned the removal committed: until then a
candidate may still need the removed node's promise (phase 1 requires a
majority of the candidate's committed configuration too).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from triplica.replication.membership import Membership


@dataclass(frozen=True)
class Observation:
    now_ms: int
    leader: int
    commit_index: int  # the leader's
    committed: Membership  # the leader's committed configuration
    caught_up: frozenset[int]  # members whose match index (leader's view) reached its commit index
    unhealthy_ms: dict[int, int]  # node -> how long the health monitor has seen it unhealthy
    configs: "dict[int, Membership | None]"  # each running node's committed configuration (a poll)
    pending: "Membership | None" = None  # the leader's uncommitted configuration, if any


@dataclass(frozen=True)
class Action:
    kind: str  # "spawn" | "propose" | "retire"
    node: int = 0
    membership: "Membership | None" = None
    log_replica: bool = False
    delay_ms: int = 0
    replaces: int = 0  # spawn: the member being replaced (place the new replica like it)


# Where a new replica goes, when ids are places (a cluster's node ids):
# (log_replica, member it replaces, ids it must not reuse) -> an id, or None to wait.
ChooseSpare = Callable[[bool, int, frozenset[int]], "int | None"]


@dataclass
class ReplacementPlanner:
    rng: random.Random
    first_new_id: int
    unhealthy_after_ms: int = 800
    replacements_max: int = 2
    maintenance_at_ms: list[int] = field(default_factory=list)
    accepting_new: bool = True  # False once the run is healing: finish, start nothing new
    # A cluster picks spares among its nodes (None: fresh sequential ids) and may
    # ask for healthy members to be moved away (a node being drained).
    choose_spare: "ChooseSpare | None" = None
    draining: frozenset[int] = frozenset()
    declared: set[int] = field(default_factory=set)
    replacements: int = 0
    spare_log: "int | None" = None
    spare_full: "int | None" = None
    replacing: int = 0  # the member the current replacement replaces
    ever_members: set[int] = field(default_factory=set)
    retired: set[int] = field(default_factory=set)
    latest_commit: int = -1
    proposals: int = 0

    def __post_init__(self) -> None:
        self.next_id = self.first_new_id

    def settled(self, committed: "Membership | None") -> bool:
        """Nothing left to do: three full members, no log replica, removed nodes retired."""
        return (committed is not None and not self.declared and not committed.log_replicas
                and len(committed.members) == 3 and self.ever_members - committed.members <= self.retired
                and self.spare_log is None and self.spare_full is None)

    def decide(self, obs: Observation) -> list[Action]:
        if obs.commit_index < self.latest_commit:
            return []  # a stale leader (it has not learned the latest commits): ignore it
        self.latest_commit = obs.commit_index
        config = obs.committed
        actions: list[Action] = []
        self.ever_members |= config.members
        # Retire a removed node only once every member has learned its removal
        # committed: a candidate that has not still needs a majority of the
        # older configuration (replica.py, "Membership"), the removed node included.
        learned = all(obs.configs.get(n) == config for n in config.members)
        for node in sorted(self.ever_members - config.members - self.retired) if learned else []:
            self.retired.add(node)
            actions.append(Action("retire", node, delay_ms=self.rng.randrange(0, 1000)))
        if self.spare_log in config.members:
            self.spare_log = None
        if self.spare_full in config.members:
            self.spare_full = None
        self.declared &= config.members
        full = config.members - config.log_replicas
        if not self.declared and not config.log_replicas and obs.pending is None:
            # A replacement that unwound (a removal lost to a leader change, then
            # the log replica removed) may leave a spawned spare that is no member
            # and is in no pending configuration: it will never be used.
            for spare in (self.spare_log, self.spare_full):
                if spare is not None and spare not in config.members:
                    self.retired.add(spare)
                    actions.append(Action("retire", spare, delay_ms=self.rng.randrange(0, 1000)))
            self.spare_log = self.spare_full = None
            victim = self._choose_victim(obs, full)
            if victim is None:
                return actions
            self.declared.add(victim)
            self.replacing = victim
            self.replacements += 1
        if self.declared:
            victim = min(self.declared)
            if not config.log_replicas:
                node = self._spare(actions, log_replica=True)
                if node is None:
                    return actions  # nowhere to put it yet
                target = Membership(config.members | {node}, frozenset({node}))
            else:
                target = Membership(config.members - {victim}, config.log_replicas)
        elif config.log_replicas and len(full) < 3:
            node = self._spare(actions, log_replica=False)
            if node is None:
                return actions
            target = Membership(config.members | {node}, config.log_replicas)
        else:
            if not full <= obs.caught_up | {obs.leader}:
                return actions  # the new full replica is still catching up
            target = Membership(config.members - config.log_replicas, frozenset())
        self.proposals += 1
        actions.append(Action("propose", membership=target))
        return actions

    def _choose_victim(self, obs: Observation, full: frozenset[int]) -> "int | None":
        if not self.accepting_new or self.replacements >= self.replacements_max:
            return None
        sick = sorted(n for n in full if n != obs.leader and obs.unhealthy_ms.get(n, 0) >= self.unhealthy_after_ms)
        if sick:
            return sick[0]
        moving = sorted(n for n in full if n in self.draining)  # the leader too, as maintenance
        if moving:
            return moving[0]
        if self.maintenance_at_ms and obs.now_ms >= self.maintenance_at_ms[0]:
            self.maintenance_at_ms.pop(0)
            return self.rng.choice(sorted(full))  # the leader too: it then proposes its own removal
        return None

    def _spare(self, actions: list[Action], log_replica: bool) -> "int | None":
        current = self.spare_log if log_replica else self.spare_full
        if current is not None:
            return current
        if self.choose_spare is not None:
            used = frozenset(self.ever_members | self.retired
                             | {n for n in (self.spare_log, self.spare_full) if n is not None})
            chosen = self.choose_spare(log_replica, self.replacing, used)
            if chosen is None:
                return None
            assert chosen not in used, (chosen, used)
            node = chosen
        else:
            node = self.next_id
            self.next_id += 1
        if log_replica:
            self.spare_log = node
        else:
            self.spare_full = node
        actions.append(Action("spawn", node, log_replica=log_replica, replaces=self.replacing))
        return node
