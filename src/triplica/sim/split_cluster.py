"""Many replication groups (partitions) on the same three nodes, on a virtual clock.

`SplitCluster` is SimCluster's multi-group sibling, for the split simulation
(split_sim.py): every node hosts one replica of each live group, all driven
with the production driver's Ready processing (replication/ready_loop.py:
tick before step, ready -> fsync -> send -> apply -> advance). A crash takes down every replica
on the node and drops what was not fsynced; a restart rebuilds each one from
its own disk.

The partition protocol's decisions are the production ones, called here
as engine/node_partition.py and node/storage_node.py call them
(engine/split_protocol.py); this module does only what the sim stands in
for (the state machine, disks, messages):
- the split entry is production's (`split_writes`, `marker_in`); a group's
  state (`PartitionState`) is the key/value map plus the split marker, the
  first split entry applied (`first_marker`), after which the replica serves
  nothing;
- who refuses what (`ReplicaSplit`): writes and strong reads only on a
  leader that may serve (lease held, read fence applied); the leadership
  (ballot) that proposed a split entry refuses every write after it; what a
  replica asked to split does (`on_ask`);
- a switch (`publish`) builds this node's replicas of the two children from
  its own replica of the parent (`child_seed`): the state cut to each
  child's range, as a log holding only a snapshot at A with the parent's
  members; a node whose parent replica never applied the split starts its
  child replica empty and catches up from the child's leader by
  InstallSnapshot. Then the node drops its parent replica. A child's first
  campaigner is production's (`start_back_ms`).
Group ids are ints here (the Replica core's `group`); their keys, as in
markers and maps, are `group_key(id)`.

Commit index: every hard state is written at once here, unlike production
(ready_loop.py defers one whose only change is the commit index). A node's
children are cut from the state its disk recovers to, the snapshot plus
the log up to the durable commit index (production's LMDB store is not
synced per apply either). With the deferral, 44 of seeds 0..999 fail on
liveness: the one member that applied a split entry answers "done", loses
power before its commit index reaches the disk, and every node then builds
the children empty (the others had not applied the entry when they
switched). Production's switch waits for the parent replica to apply the
split (StorageNode.prepare_child) and the control plane gives the other
members a moment (metadata/role.py `_wait_applied`), neither modelled here,
so whether production can lose a split this way is an open question.

Continuous checks (recorded in `violations`): one chosen value per
(group, index); equal state checksums at equal (group, index); at most one
valid lease per group at any instant; one split index per group; every
builder of a child starts it at the same index with the same state; a
request served for a key outside the group's range.

Deliberate bugs for the self-test (`SplitFaults`), off by default.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

import msgpack

from triplica.engine.log_entries import decode_entry, encode_entry
from triplica.engine.split_protocol import (ASK_DONE, ASK_MISMATCH, ASK_PROPOSE, NOT_LEADER, ChildSeed,
                                            ReplicaSplit, SplitMarker, applies_writes, child_seed, first_marker,
                                            marker_in,
                                            split_writes, start_back_ms)
from triplica.replication.membership import Membership
from triplica.replication.log import EntryKind, HardState, LogEntry, PersistedState, Snapshot
from triplica.replication.messages import Message, message_from_wire, message_to_wire
from triplica.replication.options import ReplicaOptions
from triplica.replication.ready_loop import ReadyLoop
from triplica.replication.replica import Ready, Replica
from triplica.sim.disk import SimDisk
from triplica.sim.events import EventQueue
from triplica.sim.kv import Command, KeyValueStateMachine
from triplica.sim.network import SimNetwork
from triplica.common.checksum import crc32c

TICK_MS = 10
READY_LOOP_MAX = 1000
VIOLATIONS_MAX = 50


def key_position(key: str) -> int:
    """Keys are 'k<position>': the position stands in for the key's hash."""
    return int(key[1:])


def group_key(group: int) -> str:
    """A sim group id as production names groups (markers, maps)."""
    return str(group)


def split_entry(marker: SplitMarker) -> bytes:
    """The split entry's bytes: production's (engine/split_protocol.py, log_entries.py)."""
    return encode_entry(split_writes(marker))


def decode_command(index: int, data: bytes) -> "Command | SplitMarker":
    """A sim command, or production's split entry (a msgpack map, where commands are arrays)."""
    if type(msgpack.unpackb(data)) is dict:
        marker = marker_in(decode_entry(data), index)
        assert marker is not None, data
        return marker
    return Command.decode(data)


class PartitionState:
    """One replica's applied state of a group: the key/value map and the split marker."""

    def __init__(self, kv: "KeyValueStateMachine | None" = None, moved: "SplitMarker | None" = None) -> None:
        self.kv = kv or KeyValueStateMachine()
        self.moved = moved

    def apply(self, index: int, data: bytes, writes_after_moved: bool = False) -> "tuple[Command | SplitMarker, Any]":
        """Apply one command entry, as production does: writes are applied
        until the marker, none after it (`applies_writes`; `writes_after_moved`
        is for the self-test's faults, SplitFaults.unfrozen)."""
        decoded = decode_command(index, data)
        if isinstance(decoded, SplitMarker):
            self.moved = first_marker(self.moved, decoded)
            return decoded, None
        if not (applies_writes(self.moved) or writes_after_moved):
            return decoded, None  # frozen at A: no answer, the client's outcome is unknown
        return decoded, self.kv.apply(decoded)

    def cut(self, start: int, end: int) -> "PartitionState":
        """A child's share: items in [start, end); the retry table whole (clients may
        retry a write to either child, and it must still take effect once)."""
        kv = KeyValueStateMachine()
        kv.data = {k: v for k, v in self.kv.data.items() if start <= key_position(k) < end}
        kv.last = dict(self.kv.last)
        return PartitionState(kv)

    def snapshot(self) -> bytes:
        moved = None if self.moved is None else [self.moved.boundary, self.moved.left_group, self.moved.right_group,
                                                 self.moved.index]
        return msgpack.packb([self.kv.snapshot(), moved])

    @classmethod
    def restore(cls, data: bytes) -> "PartitionState":
        kv, moved = msgpack.unpackb(data)
        return cls(KeyValueStateMachine.restore(kv), SplitMarker(*moved) if moved is not None else None)

    def checksum(self) -> int:
        return crc32c(self.snapshot())


@dataclass(frozen=True)
class SplitFaults:
    """Deliberate protocol bugs, used ONLY by the test proving the checks catch them."""
    moved_accepts_writes: bool = False    # a split parent's leader keeps taking writes
    child_from_unapplied: bool = False    # a lagging node cuts its child from state before A
    write_before_fence: bool = False      # a new leader takes writes before applying its predecessors' entries

    @property
    def unfrozen(self) -> bool:
        """A split parent applies writes after A (`applies_writes` would make the two
        write faults harmless: the self-test shows the checks catch what they do)."""
        return self.moved_accepts_writes or self.write_before_fence


@dataclass
class GroupReplica:
    """One node's replica of one group: its disk survives crashes, the rest does not."""
    group: int
    start: int
    end: int
    disk: SimDisk
    bootstrap: "Membership | None"
    replica: "Replica | None" = None
    ready_loop: "ReadyLoop | None" = None
    state: "PartitionState | None" = None
    fsync_in_flight: bool = False
    pending_writes: dict[int, tuple[Command, Callable[[Any], None]]] = field(default_factory=dict)
    split: ReplicaSplit = field(default_factory=ReplicaSplit)  # production's split decisions
    back_date_ms: int = 0  # a brand-new group's first start: may promise (and campaign) at once

    def stop(self) -> None:
        self.replica = None
        self.ready_loop = None
        self.state = None
        self.fsync_in_flight = False
        self.pending_writes = {}
        self.split = ReplicaSplit()

    def refresh_moved(self) -> None:
        """The applied marker, as NodePartition._refresh_moved reads it from its store."""
        if self.state is not None and self.state.moved is not None:
            self.split.applied(self.state.moved)


@dataclass(frozen=True)
class Switch:
    """A committed split, as every node applies it from the metadata."""
    parent: int
    marker: SplitMarker  # with the split index A the control plane learned
    parent_range: tuple[int, int]
    members: tuple[int, ...]


@dataclass
class SplitNode:
    node_id: int
    rng: random.Random
    clock_offset_ms: int
    clock_drift: float
    disk_latency_ms: Callable[[], int]
    groups: dict[int, GroupReplica] = field(default_factory=dict)
    switches_known: int = 0    # how far this node's catalogue has read `SplitCluster.switches`
    switches_applied: int = 0  # how many of them it has carried out (in order)
    up: bool = False
    incarnation: int = 0

    def local_ms(self, real_ms: int) -> int:
        return self.clock_offset_ms + int(real_ms * (1.0 + self.clock_drift))


@dataclass
class ChildStart:
    node: int
    index: int  # snapshot index, 0 for an empty (catching-up) replica
    checksum: "int | None"


class SplitCluster(EventQueue):
    def __init__(self, rng: random.Random, node_ids: list[int], key_count: int, options: ReplicaOptions,
                 network: SimNetwork, compact_every_entries: int = 10**9, faults: SplitFaults = SplitFaults(),
                 trace: bool = False) -> None:
        self.rng = rng
        self.options = options
        self.network = network
        self.faults = faults
        self.compact_every_entries = compact_every_entries
        EventQueue.__init__(self)
        self.trace_enabled = trace
        self.trace_lines: list[str] = []
        self.trace_hash = 0
        self.violations: list[str] = []
        self.chosen: dict[tuple[int, int], bytes] = {}
        self.state_checksums: dict[tuple[int, int], int] = {}
        self.value_applied: dict[str, tuple[int, int]] = {}  # value written -> (group, index) first applied
        self.split_index: dict[int, int] = {}  # group -> A
        self.child_starts: dict[int, list[ChildStart]] = {}
        self.switches: list[Switch] = []  # committed splits, in metadata order
        self.split_proposals: dict[int, list[int]] = {}  # group -> nodes that proposed its split entry
        self.faults_enabled = True  # the runner clears it at healing: faults still queued then do nothing
        self.members = tuple(node_ids)
        drift_max = options.clock_drift_rate_max
        self.nodes: dict[int, SplitNode] = {}
        for node_id in node_ids:
            node = SplitNode(node_id, random.Random(rng.getrandbits(64)), rng.randrange(0, 10_000),
                             rng.uniform(-drift_max, drift_max), lambda: 1)
            node.groups[1] = GroupReplica(1, 0, key_count, SimDisk(), Membership.of(node_ids))
            self.nodes[node_id] = node
        for node_id in node_ids:
            self.start(node_id)

    # ------------------------------------------------------------- events

    def after_event(self) -> None:
        self._check_leases()

    def trace(self, *fields: object) -> None:
        line = " ".join(str(f) for f in (self.now_ms,) + fields)
        self.trace_hash = crc32c(line.encode(), self.trace_hash)
        if self.trace_enabled:
            self.trace_lines.append(line)

    def violation(self, text: str) -> None:
        if len(self.violations) < VIOLATIONS_MAX:
            self.violations.append(f"t={self.now_ms}: {text}")

    # -------------------------------------------------------------- nodes

    def start(self, node_id: int) -> None:
        node = self.nodes[node_id]
        assert not node.up
        node.incarnation += 1
        node.up = True
        # Switches it learned while down: cut children from the parent state
        # its disk recovers to (what production's store holds).
        for switch in self.switches[node.switches_applied:node.switches_known]:
            parent = node.groups.get(switch.parent)
            if parent is not None:
                self._build_children(node, parent, _recovered_state(parent.disk, self.faults.unfrozen), switch)
        node.switches_applied = node.switches_known
        for group in sorted(node.groups):
            if node.groups[group].replica is None:
                self._start_group(node, node.groups[group])
        self.trace("start", node_id, sorted(node.groups))
        self._schedule_tick(node, node.incarnation)

    def _start_group(self, node: SplitNode, gr: GroupReplica) -> None:
        persisted = gr.disk.load()
        local_ms = node.local_ms(self.now_ms)
        gr.replica = Replica(node.node_id, gr.group, gr.bootstrap, node.rng, local_ms - gr.back_date_ms,
                             self.options, persisted)
        gr.back_date_ms = 0  # a restart never back-dates
        gr.ready_loop = ReadyLoop(
            gr.replica, send=self._send_all, install=lambda snapshot: self._install(node, gr, snapshot),
            apply=lambda entries: self._apply_all(node, gr, entries),
            durable_hard_state=lambda: gr.disk.hard_state, finished=lambda ready: self._finished(gr),
            defer_commit_index=False)  # see the module docstring, "Commit index"
        gr.state = PartitionState.restore(persisted.snapshot.data) if persisted.snapshot else PartitionState()
        gr.split = ReplicaSplit()
        gr.refresh_moved()
        gr.replica.tick(local_ms)

    def crash(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if not node.up:
            return
        self.trace("crash", node_id)
        node.up = False
        for gr in node.groups.values():
            gr.stop()

    def _schedule_tick(self, node: SplitNode, incarnation: int) -> None:
        def tick() -> None:
            if node.up and node.incarnation == incarnation:
                for group in sorted(node.groups):
                    gr = node.groups.get(group)
                    if gr is not None and gr.replica is not None:
                        gr.replica.tick(node.local_ms(self.now_ms))
                        self._drive(node, gr)
                self._schedule_tick(node, incarnation)
        self.at(TICK_MS, tick)

    # -------------------------------------------------------------- drive

    def _drive(self, node: SplitNode, gr: GroupReplica) -> None:
        """Process Readies until one needs an fsync or there is nothing to do."""
        if not node.up or gr.fsync_in_flight or gr.ready_loop is None or node.groups.get(gr.group) is not gr:
            return
        ready = gr.ready_loop.settle(READY_LOOP_MAX)
        if ready is None:
            return
        gr.fsync_in_flight = True
        durable = gr.ready_loop.to_persist(ready)
        self.at(node.disk_latency_ms(), lambda i=node.incarnation: self._fsynced(node, gr, i, ready, durable))

    def _fsynced(self, node: SplitNode, gr: GroupReplica, incarnation: int, ready: Ready,
                 durable: "tuple[HardState | None, tuple[LogEntry, ...], Snapshot | None]") -> None:
        if node.up and node.incarnation == incarnation and gr.ready_loop is not None \
                and node.groups.get(gr.group) is gr:
            gr.disk.write(*durable)
            gr.ready_loop.finish(ready)
            self._drive(node, gr)

    def _install(self, node: SplitNode, gr: GroupReplica, snapshot: Snapshot) -> None:
        gr.state = PartitionState.restore(snapshot.data)
        self._check_state(node, gr.group, snapshot.index, gr.state)
        gr.refresh_moved()

    def _apply_all(self, node: SplitNode, gr: GroupReplica, entries: "tuple[LogEntry, ...]") -> None:
        assert gr.state is not None
        for entry in entries:
            self._apply(node, gr, gr.state, entry)
        gr.refresh_moved()

    def _finished(self, gr: GroupReplica) -> None:
        """After a Ready's advance: the next fsync may start; compact now and then."""
        replica, state = gr.replica, gr.state
        assert replica is not None and state is not None
        gr.fsync_in_flight = False
        if replica.applied_index - replica.log.snapshot_index >= self.compact_every_entries:
            replica.compact(replica.applied_index, state.snapshot())

    def _apply(self, node: SplitNode, gr: GroupReplica, state: PartitionState, entry: LogEntry) -> None:
        identity = bytes([entry.kind]) + entry.data
        if self.chosen.setdefault((gr.group, entry.index), identity) != identity:
            self.violation(f"group {gr.group} index {entry.index}: node {node.node_id} applied a different value")
        decoded, result = (None, None)
        if entry.kind == EntryKind.COMMAND:
            decoded, result = state.apply(entry.index, entry.data, self.faults.unfrozen)
            if isinstance(decoded, SplitMarker) and state.moved is not None:
                first = self.split_index.setdefault(gr.group, state.moved.index)
                if first != state.moved.index:
                    self.violation(f"group {gr.group}: node {node.node_id} split at {state.moved.index}, another at {first}")
            elif isinstance(decoded, Command) and result is not None and result[0] and decoded.value is not None:
                self.value_applied.setdefault(decoded.value, (gr.group, entry.index))
        self._check_state(node, gr.group, entry.index, state)
        pending = gr.pending_writes.pop(entry.index, None)
        if pending is not None and isinstance(decoded, Command) and result is not None:
            wanted, reply = pending
            if (decoded.client, decoded.seq) == (wanted.client, wanted.seq):
                reply(("ok", result))

    def _check_state(self, node: SplitNode, group: int, index: int, state: PartitionState) -> None:
        checksum = state.checksum()
        if self.state_checksums.setdefault((group, index), checksum) != checksum:
            self.violation(f"group {group} index {index}: node {node.node_id} state checksum differs")

    def _send_all(self, messages: "tuple[Message, ...]") -> None:
        for message in messages:
            self._send(message)

    def _send(self, message: Message) -> None:
        message = message_from_wire(msgpack.unpackb(msgpack.packb(message_to_wire(message)), use_list=False))
        for delay in self.network.delays_ms(message.sender, message.to):
            self.at(delay, lambda m=message: self._deliver(m))

    def _deliver(self, message: Message) -> None:
        node = self.nodes.get(message.to)
        if node is None or not node.up:
            return
        gr = node.groups.get(message.group)
        if gr is None or gr.replica is None:
            return  # a group this node dropped (split) or does not host yet
        self.trace("recv", message.to, message.group, type(message).__name__, message.sender, message.ballot.round)
        gr.replica.tick(node.local_ms(self.now_ms))
        gr.replica.step(message)
        self._drive(node, gr)

    def _check_leases(self) -> None:
        holders: dict[int, list[int]] = {}
        for node in self.nodes.values():
            if not node.up:
                continue
            for gr in node.groups.values():
                if gr.replica is not None and gr.replica.is_leader and gr.replica.lease_valid(node.local_ms(self.now_ms)):
                    holders.setdefault(gr.group, []).append(node.node_id)
        for group, nodes in holders.items():
            if len(nodes) > 1:
                self.violation(f"group {group}: nodes {nodes} hold valid leases at once")

    # ---------------------------------------------------------- serving

    def _serving(self, node_id: int, group: int, write: bool = False) -> "tuple[GroupReplica | None, tuple | None]":
        """The replica if it may serve as leader now, else the refusal to send
        (production's decision: ReplicaSplit.refusal, as NodePartition._leader)."""
        node = self.nodes.get(node_id)
        if node is None or not node.up:
            return None, None  # silence: the caller times out
        gr = node.groups.get(group)
        if gr is None or gr.replica is None or gr.state is None:
            return None, ("unknown_group", None)
        replica = gr.replica
        replica.tick(node.local_ms(self.now_ms))
        gr.split.leadership(replica.is_leader, replica.ballot)  # as NodePartition.role_changed
        early = write and self.faults.write_before_fence and replica.is_leader
        may_serve = replica.read_allowed(node.local_ms(self.now_ms)) or early
        refusal = gr.split.refusal(may_serve, write)
        if self.faults.moved_accepts_writes:
            refusal = None if may_serve else NOT_LEADER
        if refusal == NOT_LEADER:
            return None, ("not_leader", replica.leader_id)
        if refusal is not None:
            return None, ("moved", None)
        return gr, None

    def handle_client(self, node_id: int, group: int, request: tuple, reply: Callable[[Any], None]) -> None:
        """A routed request reached a node: ('write', Command) or ('strong_get', key)."""
        gr, refusal = self._serving(node_id, group, write=request[0] == "write")
        if gr is None:
            if refusal is not None:
                reply(refusal)
            return
        assert gr.replica is not None and gr.state is not None
        key = request[1].key if request[0] == "write" else request[1]
        if not gr.start <= key_position(key) < gr.end:
            self.violation(f"group {group} [{gr.start},{gr.end}) served key {key}")
        if request[0] == "strong_get":
            reply(("ok", gr.state.kv.get(key)))
            return
        command: Command = request[1]
        index = gr.replica.propose(command.encode())
        if index is None:
            reply(("not_leader", gr.replica.leader_id))
            return
        gr.pending_writes[index] = (command, reply)
        self._drive(self.nodes[node_id], gr)

    def handle_split(self, node_id: int, group: int, marker: SplitMarker, reply: Callable[[Any], None]) -> None:
        """The control plane asks a member to split `group` (NodePartition.split, with no
        wait: ('done', A), ('pending', None) while its entry is in flight, or a refusal)."""
        node = self.nodes.get(node_id)
        gr = node.groups.get(group) if node is not None and node.up else None
        if gr is not None and gr.state is not None and gr.split.moved is not None:
            if gr.split.on_ask(marker) == ASK_MISMATCH:
                self.violation(f"group {group} was split as {gr.split.moved}, asked {marker}")
            reply(("done", gr.split.moved.index))
            return
        gr, refusal = self._serving(node_id, group)
        if gr is None:
            if refusal is not None:
                reply(refusal)
            return
        assert gr.replica is not None
        decision = gr.split.on_ask(marker)
        assert decision != ASK_DONE, decision
        if decision == ASK_PROPOSE:
            if gr.replica.propose(split_entry(marker)) is None:
                reply(("not_leader", gr.replica.leader_id))
                return
            gr.split.proposed(gr.replica.ballot)
            self.split_proposals.setdefault(group, []).append(node_id)
            self.trace("split-entry", node_id, group, marker.boundary)
            self._drive(self.nodes[node_id], gr)
        reply(("pending", None))

    # ----------------------------------------------------------- switch

    def commit_switch(self, switch: Switch) -> None:
        """The metadata committed a split (nodes learn it later, see `publish`)."""
        self.switches.append(switch)

    def publish(self, node_id: int) -> None:
        """This node's catalogue catches up with the metadata: carry out every
        switch it has not, in commit order (a child may itself have been split)."""
        node = self.nodes[node_id]
        node.switches_known = len(self.switches)
        if not node.up:
            return  # done at restart
        for switch in self.switches[node.switches_applied:node.switches_known]:
            parent = node.groups.get(switch.parent)
            assert parent is not None and parent.state is not None, (node_id, switch)
            self._build_children(node, parent, parent.state, switch)
            for child in (switch.marker.left_group, switch.marker.right_group):
                self._start_group(node, node.groups[int(child)])
        node.switches_applied = node.switches_known

    def caught_up(self) -> bool:
        return all(n.switches_applied == len(self.switches) for n in self.nodes.values())

    def _build_children(self, node: SplitNode, parent: GroupReplica, state: PartitionState, switch: Switch) -> None:
        marker = switch.marker
        built_any = False
        for key, start, end in marker.child_ranges(*switch.parent_range):
            child = int(key)
            seed = child_seed(state.moved, start, end, switch.members)
            if seed is None and self.faults.child_from_unapplied:
                seed = ChildSeed(marker.index, start, end, tuple(sorted(switch.members)))
            disk = SimDisk()
            # No bootstrap configuration: a built child learns it from its
            # snapshot; an empty one must not campaign with nothing in its log.
            gr = GroupReplica(child, start, end, disk, None)
            if seed is not None:
                cut = state.cut(seed.hash_start, seed.hash_end)
                disk.write(HardState(), (), Snapshot(seed.index, Membership.of(seed.members), cut.snapshot()))
                self.child_starts.setdefault(child, []).append(ChildStart(node.node_id, seed.index, cut.checksum()))
                built_any = True
            else:
                # Nothing to cut from: an empty replica that learns everything
                # (configuration included) from the child's leader.
                self.child_starts.setdefault(child, []).append(ChildStart(node.node_id, 0, None))
            gr.back_date_ms = start_back_ms(node.node_id, key, switch.members, self.options.election_timeout_base_ms,
                                            self.options.election_timeout_jitter_ms)
            node.groups[child] = gr
        del node.groups[parent.group]
        parent.stop()
        self.trace("switch", node.node_id, parent.group, "->", marker.left_group, marker.right_group,
                   "at", marker.index if built_any else "empty")

    # ------------------------------------------------------------ views

    def leader_of(self, group: int) -> "int | None":
        """The node leading `group` with the highest commit index (a deposed one may still think it leads)."""
        best = None
        for node in self.nodes.values():
            gr = node.groups.get(group) if node.up else None
            if gr is not None and gr.replica is not None and gr.replica.is_leader:
                if best is None or gr.replica.commit_index > best[0]:
                    best = (gr.replica.commit_index, node.node_id)
        return None if best is None else best[1]


def _recovered_state(disk: SimDisk, writes_after_moved: bool) -> PartitionState:
    """The applied state a restart recovers: the snapshot plus the log up to the durable commit index."""
    persisted: PersistedState = disk.load()
    state = PartitionState.restore(persisted.snapshot.data) if persisted.snapshot else PartitionState()
    index = persisted.snapshot.index if persisted.snapshot else 0
    entries = {e.index: e for e in persisted.entries}
    while index + 1 <= persisted.hard_state.commit_index and index + 1 in entries:
        index += 1
        if entries[index].kind == EntryKind.COMMAND:
            state.apply(index, entries[index].data, writes_after_moved)
    return state
