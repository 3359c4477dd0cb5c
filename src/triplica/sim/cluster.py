"""Many replicas of one group in one process, on a virtual clock.

`SimCluster` owns the event queue (virtual real time, integer ms), the
network, each node's disk, clock and key/value state machine, and drives
each Replica with the production driver's Ready processing
(replication/ready_loop.py): tick before step, then ready -> fsync (after
the disk's latency) -> send -> apply -> advance. A crash drops the Ready
whose fsync has not completed, the in-memory replica and the state machine;
a restart rebuilds them from the disk.

Continuous checks (recorded in `violations`, never raised mid-run):
- two replicas chose different values for one index (seen at apply time);
- two replicas that applied the same index hold different state checksums;
- more than one leader holds a valid lease at the same instant (checked
  after every event; leases only start or extend at events, so this is
  exact);
- a log replica (a node in `log_replica_ids`, set by whoever adds it; ids
  are never reused) leads, applies an entry or a snapshot, or serves a read;
- a committed configuration has fewer than 3 members or fewer than 2 full
  ones (the control plane only ever goes 3 -> 4 -> 3, see replication/replacement.py).

Membership churn: `add_node` + `start` a node with no bootstrap membership
(it learns it through the log or a snapshot); `retire` stops a removed node
for good and forgets it (messages to it are dropped).

Every event folds into `trace_hash`, so two runs of one seed can be compared.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

import msgpack

from triplica.replication.membership import Membership
from triplica.replication.log import EntryKind
from triplica.replication.messages import Message, message_from_wire, message_to_wire
from triplica.replication.options import ReplicaOptions
from triplica.replication.log import HardState, LogEntry, Snapshot
from triplica.replication.ready_loop import ReadyLoop
from triplica.replication.replica import Ready, Replica
from triplica.sim.disk import SimDisk
from triplica.sim.events import EventQueue
from triplica.sim.kv import Command, KeyValueStateMachine
from triplica.sim.network import SimNetwork
from triplica.common.checksum import crc32c

TICK_MS = 10
GROUP = 1
READY_LOOP_MAX = 1000


@dataclass
class SimNode:
    node_id: int
    disk: SimDisk
    rng: random.Random
    clock_offset_ms: int
    clock_drift: float  # local clock runs at (1 + drift) x real time
    disk_latency_ms: Callable[[], int]
    bootstrap: "Membership | None"
    replica: "Replica | None" = None
    ready_loop: "ReadyLoop | None" = None
    kv: "KeyValueStateMachine | None" = None
    up: bool = False
    incarnation: int = 0
    fsync_in_flight: bool = False
    pending_writes: dict[int, tuple[Command, Callable[[Any], None]]] = field(default_factory=dict)

    def local_ms(self, real_ms: int) -> int:
        return self.clock_offset_ms + int(real_ms * (1.0 + self.clock_drift))


class SimCluster(EventQueue):
    def __init__(self, rng: random.Random, node_ids: list[int], options: ReplicaOptions,
                 network: "SimNetwork | None" = None, compact_every_entries: int = 10**9,
                 trace: bool = False, wire_roundtrip: bool = True) -> None:
        self.rng = rng
        self.options = options
        self.network = network or SimNetwork(rng)
        EventQueue.__init__(self)
        self.compact_every_entries = compact_every_entries
        self.trace_enabled = trace
        self.trace_lines: list[str] = []
        self.trace_hash = 0
        self.wire_roundtrip = wire_roundtrip
        self.violations: list[str] = []
        self.chosen: dict[int, bytes] = {}  # index -> kind+data, first seen applied
        self.state_checksums: dict[int, int] = {}
        self.value_index: dict[str, int] = {}  # value written -> index that wrote it
        self.lease_holders_max = 0
        self.log_replica_ids: set[int] = set()
        self.retired: set[int] = set()
        self.held_down: set[int] = set()  # crashed "for good": fault restarts skip them (runner)
        self.membership = Membership.of(node_ids)
        self.nodes: dict[int, SimNode] = {}
        for node_id in node_ids:
            self.add_node(node_id, self.membership)
        for node_id in node_ids:
            self.start(node_id)

    # ------------------------------------------------------------- events

    def after_event(self) -> None:
        self._check_leases()

    def _trace(self, *fields: object) -> None:
        line = " ".join(str(f) for f in (self.now_ms,) + fields)
        self.trace_hash = crc32c(line.encode(), self.trace_hash)
        if self.trace_enabled:
            self.trace_lines.append(line)

    # -------------------------------------------------------------- nodes

    def add_node(self, node_id: int, bootstrap: "Membership | None") -> SimNode:
        drift_max = self.options.clock_drift_rate_max
        node = SimNode(
            node_id=node_id, disk=SimDisk(), rng=random.Random(self.rng.getrandbits(64)),
            clock_offset_ms=self.rng.randrange(0, 10_000),
            clock_drift=self.rng.uniform(-drift_max, drift_max),
            disk_latency_ms=lambda: 1, bootstrap=bootstrap)
        self.nodes[node_id] = node
        return node

    def start(self, node_id: int) -> None:
        node = self.nodes[node_id]
        assert not node.up
        persisted = node.disk.load()
        node.incarnation += 1
        node.up = True
        node.fsync_in_flight = False
        node.pending_writes = {}
        node.replica = Replica(node_id, GROUP, node.bootstrap, node.rng, node.local_ms(self.now_ms),
                               self.options, persisted)
        node.ready_loop = ReadyLoop(
            node.replica, send=self._send_all, install=lambda snapshot: self._install(node, snapshot),
            apply=lambda entries: self._apply_all(node, entries),
            durable_hard_state=lambda: node.disk.hard_state, finished=lambda ready: self._finished(node))
        snapshot = persisted.snapshot
        node.kv = KeyValueStateMachine.restore(snapshot.data) if snapshot else KeyValueStateMachine()
        self._trace("start", node_id, "lost", persisted.lost_indexes)
        self._schedule_tick(node, node.incarnation)

    def crash(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if not node.up:
            return
        self._trace("crash", node_id)
        node.up = False
        node.replica = None
        node.ready_loop = None
        node.kv = None
        node.pending_writes = {}
        node.fsync_in_flight = False

    def retire(self, node_id: int) -> None:
        """Stop a node removed from the group, for good."""
        if node_id not in self.nodes:
            return
        self.crash(node_id)
        self._trace("retire", node_id)
        del self.nodes[node_id]
        self.retired.add(node_id)

    def _schedule_tick(self, node: SimNode, incarnation: int) -> None:
        def tick() -> None:
            if node.up and node.incarnation == incarnation:
                assert node.replica is not None
                node.replica.tick(node.local_ms(self.now_ms))
                self._drive(node)
                self._schedule_tick(node, incarnation)
        self.at(TICK_MS, tick)

    def _drive(self, node: SimNode) -> None:
        """Process Readies until one needs an fsync or there is nothing to do."""
        if not node.up or node.fsync_in_flight:
            return
        assert node.ready_loop is not None
        ready = node.ready_loop.settle(READY_LOOP_MAX)
        if ready is None:
            return
        node.fsync_in_flight = True
        durable = node.ready_loop.to_persist(ready)
        self.at(node.disk_latency_ms(), lambda i=node.incarnation: self._fsynced(node, i, ready, durable))

    def _fsynced(self, node: SimNode, incarnation: int, ready: Ready,
                 durable: "tuple[HardState | None, tuple[LogEntry, ...], Snapshot | None]") -> None:
        if node.up and node.incarnation == incarnation:
            assert node.ready_loop is not None
            node.disk.write(*durable)
            node.ready_loop.finish(ready)
            self._drive(node)

    def _install(self, node: SimNode, snapshot: Snapshot) -> None:
        if node.node_id in self.log_replica_ids:
            self._violation(f"t={self.now_ms}: log replica {node.node_id} installed a snapshot into a state machine")
        node.kv = KeyValueStateMachine.restore(snapshot.data)
        self._check_state(node, snapshot.index, node.kv)

    def _apply_all(self, node: SimNode, entries: "tuple[LogEntry, ...]") -> None:
        assert node.kv is not None
        for entry in entries:
            self._apply(node, node.kv, entry)

    def _finished(self, node: SimNode) -> None:
        """After a Ready's advance: the next fsync may start; compact now and then."""
        replica, kv = node.replica, node.kv
        assert replica is not None and kv is not None
        node.fsync_in_flight = False
        if replica.applied_index - replica.log.snapshot_index >= self.compact_every_entries and not replica.is_log_replica:
            replica.compact(replica.applied_index, kv.snapshot())

    def _apply(self, node: SimNode, kv: KeyValueStateMachine, entry: Any) -> None:
        identity = bytes([entry.kind]) + entry.data
        first = self.chosen.setdefault(entry.index, identity)
        if first != identity:
            self.violations.append(f"index {entry.index}: node {node.node_id} applied a different value than another replica")
        if node.node_id in self.log_replica_ids:
            self._violation(f"t={self.now_ms}: log replica {node.node_id} applied index {entry.index}")
        result = None
        command = None
        if entry.kind == EntryKind.CONFIG:
            config = Membership.decode(entry.data)
            if len(config.members) not in (3, 4) or len(config.members - config.log_replicas) < 2:
                self._violation(f"index {entry.index}: committed configuration {sorted(config.members)} "
                                f"log {sorted(config.log_replicas)}")
        if entry.kind == EntryKind.COMMAND:
            command = Command.decode(entry.data)
            result = kv.apply(command)
            if result is not None and result[0] and command.value is not None:
                self.value_index.setdefault(command.value, entry.index)
        self._check_state(node, entry.index, kv)
        pending = node.pending_writes.pop(entry.index, None)
        if pending is not None:
            wanted, reply = pending
            if command is not None and (command.client, command.seq) == (wanted.client, wanted.seq) and result is not None:
                reply(("ok", result))

    def _check_state(self, node: SimNode, index: int, kv: KeyValueStateMachine) -> None:
        checksum = kv.checksum()
        first = self.state_checksums.setdefault(index, checksum)
        if first != checksum:
            self.violations.append(f"index {index}: node {node.node_id} state checksum differs")

    def _send_all(self, messages: "tuple[Message, ...]") -> None:
        for message in messages:
            self._send(message)

    def _send(self, message: Message) -> None:
        if self.wire_roundtrip:
            message = message_from_wire(msgpack.unpackb(msgpack.packb(message_to_wire(message)), use_list=False))
        for delay in self.network.delays_ms(message.sender, message.to):
            self.at(delay, lambda m=message: self._deliver(m))

    def _deliver(self, message: Message) -> None:
        node = self.nodes.get(message.to)
        if node is None or not node.up:
            return
        assert node.replica is not None
        self._trace("recv", message.to, type(message).__name__, message.sender, message.ballot.round)
        node.replica.tick(node.local_ms(self.now_ms))
        node.replica.step(message)
        self._drive(node)

    def _violation(self, text: str) -> None:
        if len(self.violations) < 50:
            self.violations.append(text)

    def _check_leases(self) -> None:
        leaders = [n for n in self.nodes.values() if n.up and n.replica is not None and n.replica.is_leader]
        for n in leaders:
            if n.node_id in self.log_replica_ids:
                self._violation(f"t={self.now_ms}: log replica {n.node_id} is leader")
        if len(leaders) < 2:
            return
        holders = [n.node_id for n in leaders if n.replica.lease_valid(n.local_ms(self.now_ms))]  # type: ignore[union-attr]
        self.lease_holders_max = max(self.lease_holders_max, len(holders))
        if len(holders) > 1 and len(self.violations) < 50:
            self.violations.append(f"t={self.now_ms}: nodes {holders} hold valid leases at once")

    # ---------------------------------------------------- client requests

    def leader(self) -> "int | None":
        for node in self.nodes.values():
            if node.up and node.replica is not None and node.replica.is_leader:
                return node.node_id
        return None

    def change_membership(self, membership: Membership) -> "int | None":
        """Ask the current leader to propose `membership` (a scripted-test helper)."""
        leader = self.leader()
        if leader is None:
            return None
        node = self.nodes[leader]
        assert node.replica is not None
        node.replica.tick(node.local_ms(self.now_ms))
        index = node.replica.propose_membership(membership)
        self._drive(node)
        return index

    def _check_read(self, node_id: int) -> None:
        if node_id in self.log_replica_ids:
            self._violation(f"t={self.now_ms}: log replica {node_id} served a read")

    def handle_client(self, node_id: int, request: tuple, reply: Callable[[Any], None]) -> None:
        """A client request arrived at a node (after the client link delay)."""
        node = self.nodes.get(node_id)
        if node is None or not node.up:
            return  # the client times out
        replica, kv = node.replica, node.kv
        assert replica is not None and kv is not None
        kind = request[0]
        replica.tick(node.local_ms(self.now_ms))
        config = replica.committed_config
        if config is not None and node_id not in config.members:
            # Removed from the group: its idea of the leader is stale and may
            # point at a dead node that points back here, so give no hint.
            reply(("not_leader", None))
            return
        if kind == "write":
            command: Command = request[1]
            index = replica.propose(command.encode())
            if index is None:
                reply(("not_leader", replica.leader_id))
                return
            node.pending_writes[index] = (command, reply)
            self._drive(node)
        elif kind == "strong_get":
            if replica.read_allowed(node.local_ms(self.now_ms)):
                self._check_read(node_id)
                reply(("ok", kv.get(request[1])))
            else:
                reply(("not_leader", replica.leader_id))
        elif kind == "eventual_get":
            # Only a replica that knows it is a full member serves reads: a
            # joining node may turn out to be a log replica (no state at all).
            config = replica.committed_config
            if config is None or not config.can_lead(node_id):
                reply(("not_leader", replica.leader_id))
            else:
                self._check_read(node_id)
                reply(("ok", kv.get(request[1])))
        else:
            raise AssertionError(kind)
