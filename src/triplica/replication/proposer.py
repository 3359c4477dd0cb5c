"""The proposer half of a Replica: campaigning (phase 1), leading (phase 2), leases.

Split out of replica.py to keep each file readable; `Proposer` is a mixin
whose methods run on the Replica's state (see replica.py for the protocol,
the membership rule and the invariants). Nothing here does I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from triplica.replication.ballot import Ballot
from triplica.replication.membership import Membership
from triplica.replication.log import EntryKind, LogEntry
from triplica.replication.messages import Accept, Accepted, InstallSnapshot, Prepare, Promise, Reject
from triplica.replication.quorum import has_quorum, quorum_value

NEVER_MS = -(2**62)


class Role(Enum):
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass
class Progress:
    """The leader's view of one peer."""
    next_index: int
    match_index: int = 0
    voting: bool = True
    acked_sent_ms: int = NEVER_MS  # send time of the latest round it acknowledged
    resend_ms: int = NEVER_MS
    snapshot_sent_ms: int = NEVER_MS
    heard: bool = False  # has it answered this leadership at least once?
    match_at_heartbeat: int = -1


@dataclass
class _Candidacy:
    first_index: int
    promises: dict[int, Promise] = field(default_factory=dict)
    asked: set[int] = field(default_factory=set)  # nodes sent a Prepare




class Proposer:
    """Phase 1, phase 2 and lease logic; mixed into Replica."""


    def _may_campaign(self) -> bool:
        config = self.committed_config
        return config is not None and config.can_lead(self.node_id) and not self.repairing

    def _campaign(self) -> None:
        self.ballot = Ballot(max(self.promised.round, self._round_seen) + 1, self.node_id)
        self._round_seen = self.ballot.round
        self._set_promised(self.ballot)
        self.role = Role.CANDIDATE
        self.leader_id = None
        self._election_deadline_ms = self.now_ms + self._election_timeout_ms()
        first = self.commit_index + 1
        self._candidacy = _Candidacy(first)
        own = Promise(self.node_id, self.node_id, self.group, self.ballot, self.commit_index,
                      tuple(self.log.entries(first, self.log.last_index)), None)
        self._candidacy.promises[self.node_id] = own
        self._candidacy.asked.add(self.node_id)
        self._ask(self._all_members())
        self._maybe_lead()

    def _ask(self, members: "frozenset[int] | set[int]") -> None:
        """Send our Prepare to every node in `members` not asked yet."""
        assert self._candidacy is not None
        for node in sorted(set(members) - self._candidacy.asked):
            self._candidacy.asked.add(node)
            self._send(Prepare(self.node_id, node, self.group, self.ballot, self._candidacy.first_index))

    def _on_promise(self, m: Promise) -> None:
        if self.role is not Role.CANDIDATE or m.ballot != self.ballot or self._candidacy is None:
            return
        if m.snapshot is not None and m.snapshot.index > self.commit_index:
            self._adopt_snapshot(m.snapshot)
        self._learn_chosen(m)
        if not self._may_campaign():  # we learned that we were removed or demoted
            self._become_follower()
            return
        self._candidacy.promises[m.sender] = m
        self._maybe_lead()

    def _learn_chosen(self, m: Promise) -> None:
        """Slots at or below the promiser's commit index hold chosen values: learn them.

        This matters for membership: a candidate that missed the commit of a
        configuration change learns it here instead of insisting on a
        majority of the configuration it believed in.
        """
        by_index = {e.index: e for e in m.entries}
        index = self.commit_index
        while index + 1 <= m.commit_index and (entry := by_index.get(index + 1)) is not None:
            index += 1
            current = self.log.get(index)
            if current is None or current.ballot != entry.ballot or not current.same_value(entry):
                self.log.put(entry)
                self._persist[index] = entry
        if index > self.commit_index:
            self._commit_to(index)

    def _phase1_configs(self) -> list[Membership]:
        assert self._candidacy is not None and self.committed_config is not None
        configs = [self.committed_config]
        own = self.log.entries(self.commit_index + 1, self.log.last_index)
        for entries in [own] + [p.entries for p in self._candidacy.promises.values()]:
            for entry in entries:
                if entry.kind == EntryKind.CONFIG and entry.index > self.commit_index:
                    configs.append(Membership.decode(entry.data))
        return configs

    def _maybe_lead(self) -> None:
        assert self._candidacy is not None
        voters = set(self._candidacy.promises)
        if self.options.fault_double_self_vote:
            voters |= self._double_vote_partner()
        configs = self._phase1_configs()
        if not has_quorum(voters, configs):
            # A promise may reveal a configuration our log lacks (a change that
            # was pending when the old leader died): its new members must be
            # asked too, or we can never reach its majority.
            self._ask(frozenset().union(*(c.members for c in configs)))
            return
        merged: dict[int, LogEntry] = {}
        for promise in self._candidacy.promises.values():
            for entry in promise.entries:
                best = merged.get(entry.index)
                if entry.index > self.commit_index and (best is None or entry.ballot > best.ballot):
                    merged[entry.index] = entry
        last = max(merged, default=self.commit_index)
        for index in range(self.commit_index + 1, last + 1):
            chosen = merged.get(index)
            kind, data = (chosen.kind, chosen.data) if chosen else (EntryKind.NOOP, b"")
            self._put_own(LogEntry(index, self.ballot, kind, data))
        self._fence_index = last + 1
        self._put_own(LogEntry(self._fence_index, self.ballot, EntryKind.NOOP))
        self._become_leader()

    def _become_leader(self) -> None:
        assert self._candidacy is not None
        self.role = Role.LEADER
        self.leader_id = self.node_id
        self.progress = {}
        for node in self._all_members() - {self.node_id}:
            promise = self._candidacy.promises.get(node)
            match = min(promise.commit_index, self.commit_index) if promise else 0
            self.progress[node] = Progress(next_index=self.commit_index + 1, match_index=match)
        self._candidacy = None
        self._self_match = self.commit_index
        self._leader_since_ms = self.now_ms
        self._round_sent_ms = {}
        self._heartbeat()

    def _become_follower(self) -> None:
        self.role = Role.FOLLOWER
        self._candidacy = None
        self.progress = {}
        self.leader_id = None
        self._fence_index = 0
        self._election_deadline_ms = self.now_ms + self._election_timeout_ms()

    def _append(self, kind: EntryKind, data: bytes) -> int:
        index = self.log.last_index + 1
        self._put_own(LogEntry(index, self.ballot, kind, data))
        return index

    def _put_own(self, entry: LogEntry) -> None:
        self.log.put(entry)
        self._persist[entry.index] = entry

    def _heartbeat(self) -> None:
        self._next_heartbeat_ms = self.now_ms + self.options.heartbeat_interval_ms
        for progress in self.progress.values():
            stalled = progress.match_index == progress.match_at_heartbeat
            if progress.heard and stalled and progress.match_index < self.log.last_index:
                progress.next_index = progress.match_index + 1  # resend what was lost
            progress.match_at_heartbeat = progress.match_index
        self._replicate(heartbeat=True)

    def _replicate(self, heartbeat: bool = False) -> None:
        """Send each peer what it lacks (batched, pipelined); all peers on heartbeat."""
        round_ = None
        last = self.log.last_index
        for node in sorted(self.progress):
            progress = self.progress[node]
            behind = progress.next_index <= last and progress.next_index - progress.match_index <= self.options.inflight_entries_max
            if not (heartbeat or behind):
                continue
            needs_snapshot = progress.next_index <= self.log.snapshot_index
            recently = self.now_ms - progress.snapshot_sent_ms < self.options.election_timeout_base_ms
            if needs_snapshot and recently and not heartbeat:
                continue
            if round_ is None:
                round_ = self._new_round()
            if needs_snapshot:
                self._send_snapshot(node, progress, round_)
                continue
            entries: tuple[LogEntry, ...] = ()
            if behind:
                upto = min(last, progress.next_index + self.options.accept_batch_entries_max - 1)
                entries = tuple(e if e.ballot == self.ballot else e.with_ballot(self.ballot)
                                for e in self.log.entries(progress.next_index, upto))
                assert len(entries) == upto - progress.next_index + 1, "leader log has a hole"
                progress.next_index = upto + 1
            self._send(Accept(self.node_id, node, self.group, self.ballot, entries, self.commit_index, round_))

    def _send_snapshot(self, node: int, progress: Progress, round_: int) -> None:
        snapshot = self.log.snapshot
        assert snapshot is not None
        if self.now_ms - progress.snapshot_sent_ms < self.options.election_timeout_base_ms:
            self._send(Accept(self.node_id, node, self.group, self.ballot, (), self.commit_index, round_))
            return
        progress.snapshot_sent_ms = self.now_ms
        progress.next_index = snapshot.index + 1
        self._send(InstallSnapshot(self.node_id, node, self.group, self.ballot, snapshot, self.commit_index, round_))

    def _new_round(self) -> int:
        self._round += 1
        self._round_sent_ms[self._round] = self.now_ms
        self._leader_contact_ms = self.now_ms  # we guard our own lease too
        if len(self._round_sent_ms) > 4096:
            horizon = self.now_ms - 2 * self.options.election_timeout_base_ms
            self._round_sent_ms = {r: t for r, t in self._round_sent_ms.items() if t >= horizon}
        return self._round

    def _on_accepted(self, m: Accepted) -> None:
        if self.role is not Role.LEADER or m.ballot != self.ballot:
            return
        progress = self.progress.get(m.sender)
        if progress is None:
            return
        progress.voting = m.voting
        if m.voting:
            progress.match_index = max(progress.match_index, m.match_index)
        else:  # a repairing replica may have lost entries it once acknowledged
            progress.match_index = m.match_index
        progress.next_index = max(progress.next_index, progress.match_index + 1)
        if m.voting:
            progress.acked_sent_ms = max(progress.acked_sent_ms, self._round_sent_ms.get(m.lease_round, NEVER_MS))
        progress.heard = True
        if m.gap and self.now_ms - progress.resend_ms >= self.options.heartbeat_interval_ms // 2:
            progress.resend_ms = self.now_ms
            progress.next_index = progress.match_index + 1
        self._advance_commit()

    def _on_reject(self, m: Reject) -> None:
        self._see(m.promised)
        if self.role is not Role.FOLLOWER and m.ballot == self.ballot and m.promised > self.ballot:
            self._become_follower()

    def _configs(self) -> list[Membership]:
        assert self.committed_config is not None
        pending = self._pending_config()
        return [self.committed_config] if pending is None else [self.committed_config, pending]

    def _advance_commit(self) -> None:
        values = {node: p.match_index for node, p in self.progress.items() if p.voting}
        values[self.node_id] = self._self_match
        if self.options.fault_double_self_vote:
            for node in self._double_vote_partner():
                values[node] = self._self_match
        target = min(quorum_value(values, self._configs()), self.log.last_index)
        if target > self.commit_index:
            self._commit_to(target)

    def _lease_start_ms(self) -> int:
        values = {node: p.acked_sent_ms for node, p in self.progress.items() if p.voting}
        values[self.node_id] = self.now_ms
        if self.options.fault_double_self_vote:
            for node in self._double_vote_partner():
                values[node] = self.now_ms
        return quorum_value(values, self._configs(), missing=NEVER_MS)

    def _quorum_contact_ms(self) -> int:
        """When the leader last knew a quorum was with it, for stepping down.

        A configuration change restarts the clock like a new leadership does:
        a member just added has acknowledged nothing, so the new
        configuration's quorum contact is "never" until it answers, and the
        leader would step down at once (the drivers' healing test saw it).
        Only stepping down waits; the lease (reads) still needs real
        acknowledgements from a quorum of every configuration.
        """
        return max(self._lease_start_ms(), self._leader_since_ms, self._config_change_ms)

    def _double_vote_partner(self) -> set[int]:
        others = sorted(self._all_members() - {self.node_id})
        return {others[0]} if others else set()
