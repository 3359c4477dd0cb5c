"""One member of a Multi-Paxos replication group, as a sans-I/O state machine.

The driver (asyncio node or simulator) feeds it time (`tick`), messages
(`step`) and client commands (`propose`), then loops:

    ready = replica.ready()
    persist ready.hard_state / ready.snapshot / ready.entries   (durably)
    send ready.messages
    load ready.snapshot into the state machine if ready.install_snapshot
    apply ready.committed_entries in order
    replica.advance(ready)

Time is whatever the last `tick(now_ms)` said: drivers tick right before
stepping a message so that receipt times are exact (the lease guard relies on
it). Randomness (election jitter) comes from the `random.Random` passed in.

Protocol (paper: "Multi-Paxos ... a leader for the group"):
- Phase 1 once per leadership: Prepare(ballot, first_index = commit + 1);
  each Promise reports every accepted slot from there with its ballot. The
  new leader re-proposes, for every slot above its commit index, the value
  with the highest ballot, fills holes with no-ops, appends one no-op (the
  "fence"), and stamps them all with its own ballot.
- Phase 2 is pipelined: Accepts carry batches of contiguous entries, all
  stamped with the leader's ballot, plus the commit index and a lease round.
  A slot is chosen once a majority holds the leader's value there.
  Re-sending an already chosen value under the new ballot is safe: phase 1
  of that ballot would have forced the same value.
- An acceptor's `match_index` is the highest index up to which every slot
  holds the current leader's value (chosen prefix, then slots stamped with
  the leader's ballot); followers learn commit = min(leader commit, match).
- Leases: see options.py for the arithmetic and the guard that makes them
  safe. A leader that has not heard from a quorum for an election timeout
  steps down.

Membership: a CONFIG entry takes effect for quorums as soon as it is in the
log, but only as an ADDITIONAL constraint until it is committed: while one is
pending, phase 2 needs a majority of the committed configuration AND of the
pending one; after commit only the new one counts. Phase 1 needs a majority
of the committed configuration and of every configuration found in the
candidate's log or any promise above its commit index. Because each change is
one member (majorities of consecutive configurations intersect), only one
change is pending at a time, and a change is proposed only after the leader
committed an entry of its own ballot, every quorum that chose anything
intersects every later phase-1 quorum, across crashes mid-change (a pending
entry is either re-proposed by the next leader, which then keeps requiring
both majorities, or replaced by a no-op, which drops it).

Repair: a replica restored from a store with corrupted records (a hole in
its log) takes no part in any quorum (no promises, non-voting accepts) until
its commit index covers every lost index: it may have forgotten acceptances
there, and once those slots are chosen and learned, forgotten acceptances no
longer matter. Its promised ballot lives in
the hard state, which drivers store redundantly.

Log replicas vote like any member but never campaign and never apply.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from triplica.replication.ballot import ZERO_BALLOT, Ballot
from triplica.replication.membership import Membership
from triplica.replication.log import EntryKind, HardState, LogEntry, PersistedState, ReplicaLog, Snapshot
from triplica.replication.messages import (
    Accept,
    Accepted,
    InstallSnapshot,
    Message,
    Prepare,
    Promise,
    Reject,
)
from triplica.replication.options import ReplicaOptions
from triplica.replication.proposer import NEVER_MS, Progress, Proposer, Role, _Candidacy

@dataclass(frozen=True)
class Ready:
    hard_state: "HardState | None"
    entries: tuple[LogEntry, ...]
    snapshot: "Snapshot | None"  # persist it; discard persisted entries <= snapshot.index
    install_snapshot: bool  # the state machine must load snapshot.data first
    messages: tuple[Message, ...]
    committed_entries: tuple[LogEntry, ...]

    @property
    def must_persist(self) -> bool:
        return self.hard_state is not None or bool(self.entries) or self.snapshot is not None

    @property
    def empty(self) -> bool:
        return not (self.must_persist or self.messages or self.committed_entries)


class Replica(Proposer):
    def __init__(
        self,
        node_id: int,
        group: int,
        membership: "Membership | None",
        rng: random.Random,
        now_ms: int = 0,
        options: ReplicaOptions = ReplicaOptions(),
        persisted: "PersistedState | None" = None,
    ) -> None:
        assert node_id >= 1
        self.node_id = node_id
        self.group = group
        self.options = options
        self._rng = rng
        self.now_ms = now_ms
        persisted = persisted or PersistedState()
        self.log = ReplicaLog(persisted.snapshot)
        for entry in persisted.entries:
            if entry.index > self.log.snapshot_index:
                self.log.put(entry)
        self.promised: Ballot = persisted.hard_state.promised
        self.commit_index = max(persisted.hard_state.commit_index, self.log.snapshot_index)
        lost = [i for i in persisted.lost_indexes if i > self.log.snapshot_index]
        self.repairing = bool(lost)
        self.repair_until = max(lost, default=0)
        if lost:
            self.commit_index = min(self.commit_index, min(lost) - 1)
        self.commit_index = max(self.commit_index, self.log.snapshot_index)
        self.applied_index = self.log.snapshot_index
        self._handed_index = self.applied_index
        self.role = Role.FOLLOWER
        self.leader_id: "int | None" = None
        self.ballot: Ballot = ZERO_BALLOT  # our own ballot while candidate or leader
        self._round_seen = self.promised.round
        base = persisted.snapshot.membership if persisted.snapshot else membership
        self.committed_config: "Membership | None" = base
        self._apply_configs(self.log.snapshot_index + 1, self.commit_index)
        # A restarted replica forgot its guard: behave as if it just heard a leader.
        self._leader_contact_ms = now_ms
        self._election_deadline_ms = now_ms + self._election_timeout_ms()
        self._match_ballot: Ballot = ZERO_BALLOT
        self._match_index = self.commit_index
        # leader state
        self.progress: dict[int, Progress] = {}
        self._fence_index = 0
        self._self_match = 0
        self._leader_since_ms = NEVER_MS
        self._config_change_ms = NEVER_MS  # see Proposer._quorum_contact_ms
        self._next_heartbeat_ms = 0
        self._round = 0
        self._round_sent_ms: dict[int, int] = {}
        self._candidacy: "_Candidacy | None" = None
        # output buffers, drained by ready()
        self._hard_state_dirty = False
        self._persist: dict[int, LogEntry] = {}
        self._snapshot_out: "Snapshot | None" = None
        self._install_snapshot = False
        self._messages: list[Message] = []
        self._ready_in_flight = False

    # ------------------------------------------------------------------ API

    def tick(self, now_ms: int) -> None:
        assert now_ms >= self.now_ms, (now_ms, self.now_ms)
        self.now_ms = now_ms
        if self.role is Role.LEADER:
            if not self.options.fault_skip_lease_check and self._quorum_contact_ms() < now_ms - self.options.election_timeout_base_ms:
                self._become_follower()
                return
            if now_ms >= self._next_heartbeat_ms:
                self._heartbeat()
        elif now_ms >= self._election_deadline_ms:
            if self._may_campaign():
                self._campaign()
            else:
                self._election_deadline_ms = now_ms + self._election_timeout_ms()

    def next_tick_ms(self) -> int:
        """The earliest clock at which `tick` can change anything.

        A driver may sleep until then instead of ticking periodically (an idle
        group then costs one wake-up per heartbeat, not one per tick). Ticking
        earlier is always allowed and does nothing; step/propose may move the
        deadline, so drivers ask again after feeding the core.
        """
        if self.role is Role.LEADER:
            step_down_ms = self._quorum_contact_ms() + self.options.election_timeout_base_ms + 1
            return min(self._next_heartbeat_ms, step_down_ms)
        return self._election_deadline_ms

    def step(self, message: Message) -> None:
        assert message.group == self.group and message.to == self.node_id, message
        handler = _HANDLERS[type(message)]
        handler(self, message)

    def propose(self, command: bytes) -> "int | None":
        """Append a command; returns its log index, or None when not leader."""
        if self.role is not Role.LEADER:
            return None
        return self._append(EntryKind.COMMAND, command)

    def propose_membership(self, membership: Membership) -> "int | None":
        """Start a one-member configuration change; None if not allowed now."""
        if self.role is not Role.LEADER or self.commit_index < self._fence_index:
            return None
        if self._pending_config() is not None or self.committed_config is None:
            return None
        if not membership.is_single_step_from(self.committed_config):
            return None
        index = self._append(EntryKind.CONFIG, membership.encode())
        self._config_change_ms = self.now_ms
        for node in membership.members - {self.node_id}:
            # A new member is new (ids are never reused): start it from the
            # beginning, so it is inside the in-flight window and gets entries
            # or the snapshot at once instead of at the next heartbeat's probe.
            self.progress.setdefault(node, Progress(next_index=1))
        return index

    @property
    def pending_config(self) -> "Membership | None":
        """A configuration in the log beyond the commit index (at most one)."""
        return self._pending_config()

    def lease_valid(self, now_ms: int) -> bool:
        if self.role is not Role.LEADER:
            return False
        return now_ms < self._lease_start_ms() + self.options.lease_ms

    def read_allowed(self, now_ms: int) -> bool:
        """May the driver serve a strongly consistent read from applied state?"""
        if self.role is not Role.LEADER or self.applied_index < self._fence_index:
            return False
        return self.options.fault_skip_lease_check or self.lease_valid(now_ms)

    def compact(self, index: int, data: bytes) -> None:
        """Replace the log up to `index` (applied) by a state machine image."""
        assert self.log.snapshot_index < index <= self.applied_index
        config_entry = self.log.last_config_entry(self.log.snapshot_index + 1, index)
        if config_entry is not None:
            membership = Membership.decode(config_entry.data)
        else:
            assert self.log.snapshot is not None or self.committed_config is not None
            membership = self.log.snapshot.membership if self.log.snapshot else self.committed_config
        snapshot = Snapshot(index, membership, data)
        self.log.install_snapshot(snapshot)
        self._snapshot_out = snapshot

    def ready(self) -> Ready:
        assert not self._ready_in_flight, "advance() the previous Ready first"
        if self.role is Role.LEADER:
            self._replicate()
        hard_state = HardState(self.promised, self.commit_index) if self._hard_state_dirty else None
        snapshot = self._snapshot_out
        floor = snapshot.index if snapshot else 0
        entries = tuple(e for _, e in sorted(self._persist.items()) if e.index > floor)
        install = self._install_snapshot
        committed: tuple[LogEntry, ...] = ()
        if self.commit_index > self._handed_index and self._knows_own_role():
            # A joining replica waits until it learns a configuration that names
            # it: until then it may turn out to be a log replica (which applies
            # nothing), even if it already learned older configurations.
            if self._applies():
                if self._handed_index < self.log.snapshot_index:
                    # a snapshot adopted while our role was unknown: load it now
                    snapshot = self.log.snapshot
                    install = True
                    self._handed_index = self.log.snapshot_index
                committed = tuple(self.log.entries(self._handed_index + 1, self.commit_index))
                assert len(committed) == self.commit_index - self._handed_index, "hole below commit"
            self._handed_index = self.commit_index
        ready = Ready(hard_state, entries, snapshot, install, tuple(self._messages), committed)
        self._hard_state_dirty = False
        self._persist = {}
        self._snapshot_out = None
        self._install_snapshot = False
        self._messages = []
        self._ready_in_flight = not ready.empty
        return ready

    def advance(self, ready: Ready) -> None:
        self._ready_in_flight = False
        if ready.install_snapshot and ready.snapshot is not None:
            self.applied_index = max(self.applied_index, ready.snapshot.index)
        if ready.committed_entries:
            self.applied_index = ready.committed_entries[-1].index
        elif not self._applies():
            self.applied_index = max(self.applied_index, self._handed_index)
        if self.role is Role.LEADER and ready.entries:
            own = [e.index for e in ready.entries if e.ballot == self.ballot]
            if own:
                self._self_match = max(self._self_match, max(own))
                self._advance_commit()

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    @property
    def is_log_replica(self) -> bool:
        return self.committed_config is not None and self.node_id in self.committed_config.log_replicas

    # ------------------------------------------------------------ acceptor

    def _on_prepare(self, m: Prepare) -> None:
        self._see(m.ballot)
        if self.repairing:
            return
        if m.ballot < self.promised:
            self._send(Reject(self.node_id, m.sender, self.group, m.ballot, self.promised))
            return
        if m.ballot > self.promised:
            if self.now_ms < self._leader_contact_ms + self.options.election_timeout_base_ms:
                return  # we vouch for a live leader's lease: no promise yet
            self._set_promised(m.ballot)
            if self.role is not Role.FOLLOWER:
                self._become_follower()
            self.leader_id = None
            self._election_deadline_ms = self.now_ms + self._election_timeout_ms()
        snapshot = self.log.snapshot if m.first_index <= self.log.snapshot_index else None
        entries = tuple(self.log.entries(m.first_index, self.log.last_index))
        self._send(Promise(self.node_id, m.sender, self.group, m.ballot, self.commit_index, entries, snapshot))

    def _on_accept(self, m: Accept) -> None:
        if not self._follow(m.sender, m.ballot):
            return
        gap = bool(m.entries) and m.entries[0].index > self._match_index + 1
        for entry in m.entries:
            assert entry.ballot == m.ballot
            if entry.index <= self.commit_index:
                continue
            current = self.log.get(entry.index)
            if current is None or current.ballot != entry.ballot or not current.same_value(entry):
                self.log.put(entry)
                self._persist[entry.index] = entry
        self._learn(m.ballot, m.commit_index)
        self._send(Accepted(self.node_id, m.sender, self.group, m.ballot, self._match_index, m.lease_round, not self.repairing, gap))

    def _on_install_snapshot(self, m: InstallSnapshot) -> None:
        if not self._follow(m.sender, m.ballot):
            return
        if m.snapshot.index > self.commit_index:
            self._adopt_snapshot(m.snapshot)
        self._learn(m.ballot, m.commit_index)
        self._send(Accepted(self.node_id, m.sender, self.group, m.ballot, self._match_index, m.lease_round, not self.repairing, False))

    def _follow(self, sender: int, ballot: Ballot) -> bool:
        """Accept `sender` (ballot >= promised) as leader; False when stale."""
        self._see(ballot)
        if ballot < self.promised:
            self._send(Reject(self.node_id, sender, self.group, ballot, self.promised))
            return False
        assert sender != self.node_id
        if ballot > self.promised:
            self._set_promised(ballot)
        if self.role is not Role.FOLLOWER:
            self._become_follower()
        self.leader_id = sender
        self._leader_contact_ms = self.now_ms
        self._election_deadline_ms = self.now_ms + self._election_timeout_ms()
        return True

    def _learn(self, ballot: Ballot, leader_commit: int) -> None:
        if self._match_ballot != ballot:
            self._match_ballot = ballot
            self._match_index = self.commit_index
        self._match_index = max(self._match_index, self.commit_index)
        while (entry := self.log.get(self._match_index + 1)) is not None and entry.ballot == ballot:
            self._match_index += 1
        target = min(leader_commit, self._match_index)
        if target > self.commit_index:
            self._commit_to(target)

    def _adopt_snapshot(self, snapshot: Snapshot) -> None:
        self.log.install_snapshot(snapshot)
        self._persist = {i: e for i, e in self._persist.items() if i > snapshot.index}
        self._snapshot_out = snapshot
        self.committed_config = snapshot.membership
        self.commit_index = snapshot.index
        self._hard_state_dirty = True
        if self._knows_own_role():
            self._install_snapshot = self._applies()
            self._handed_index = max(self._handed_index, snapshot.index)
        else:  # ready() loads it once we know we are a full member (never if a log replica)
            self._install_snapshot = False
        self._apply_configs(snapshot.index + 1, snapshot.index)
        self._match_index = max(self._match_index, snapshot.index)
        self._leave_repair_if_done()

    # -------------------------------------------------------------- shared

    def _commit_to(self, index: int) -> None:
        assert index > self.commit_index
        old = self.commit_index
        self.commit_index = index
        self._hard_state_dirty = True
        self._apply_configs(old + 1, index)
        self._leave_repair_if_done()
        if self.role is Role.LEADER:
            config = self.committed_config
            assert config is not None
            if not config.can_lead(self.node_id):
                self._become_follower()
                return
            members = self._all_members()
            self.progress = {n: p for n, p in self.progress.items() if n in members}

    def _apply_configs(self, first: int, last: int) -> None:
        entry = self.log.last_config_entry(first, last)
        if entry is not None:
            self.committed_config = Membership.decode(entry.data)

    def _pending_config(self) -> "Membership | None":
        entry = self.log.last_config_entry(self.commit_index + 1, self.log.last_index)
        return Membership.decode(entry.data) if entry is not None else None

    def _all_members(self) -> frozenset[int]:
        if self.committed_config is None:
            return frozenset()
        pending = self._pending_config()
        return self.committed_config.members | (pending.members if pending else frozenset())

    def _leave_repair_if_done(self) -> None:
        if self.repairing and self.commit_index >= self.repair_until:
            self.repairing = False

    def _knows_own_role(self) -> bool:
        """Has this replica learned a committed configuration that names it?"""
        return self.committed_config is not None and self.node_id in self.committed_config.members

    def _applies(self) -> bool:
        return not self.is_log_replica

    def _set_promised(self, ballot: Ballot) -> None:
        assert ballot >= self.promised
        self.promised = ballot
        self._hard_state_dirty = True

    def _see(self, ballot: Ballot) -> None:
        self._round_seen = max(self._round_seen, ballot.round)

    def _send(self, message: Message) -> None:
        self._messages.append(message)

    def _election_timeout_ms(self) -> int:
        return self.options.election_timeout_base_ms + self._rng.randint(0, self.options.election_timeout_jitter_ms)


_HANDLERS = {
    Prepare: Replica._on_prepare,
    Promise: Replica._on_promise,
    Reject: Replica._on_reject,
    Accept: Replica._on_accept,
    Accepted: Replica._on_accepted,
    InstallSnapshot: Replica._on_install_snapshot,
}
