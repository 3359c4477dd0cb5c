"""The split protocol's decisions, sans-I/O: shared by the nodes, the control plane and the simulator.

engine/group_split.py tells the protocol (the split entry goes through the
parent group's own log; every replica cuts its own children at the same
index A). This module holds every decision in it, with no file, clock or
network, so the production code (engine/node_partition.py,
node/storage_node.py, metadata/control_plane.py, metadata/role.py) and the
split simulation (sim/split_cluster.py, sim/split_sim.py) run the same
rules:

- the split entry: its record (`split_writes`), whether an applied entry is
  one (`marker_in`), and which one counts when a retried proposal put two in
  the log (`first_marker`: the first; storage/lmdb_store.py keeps the first
  record for the same reason); after it, no write changes the state
  (`applies_writes`);
- a replica's part (`ReplicaSplit`): once it applied the marker it serves
  nothing (MOVED); the leadership that proposed a split entry refuses every
  write after it, so no write can follow A in the log; a split entry in
  flight belongs to that one leadership (ballot), and the next leader decides
  it by applying its predecessors' entries; what to do when asked to split
  (`on_ask`);
- a child (`child_seed`): built from this node's parent replica when that
  replica applied the split into the child's range: the parent's state at A
  cut to the child's range, as a log holding only a snapshot at A with the
  parent's members; else nothing to build from, and the child replica starts
  empty and catches up (or heals) from its peers. A brand-new group's first
  campaigner (`first_campaigner`, `start_back_ms`);
- the control plane (`SplitProgress`): may a split start (`split_refusal`),
  then the steps INTENT (recorded in the metadata log) -> APPLIED (a member
  of the parent answered that it applied the split, with A) -> SWITCHED (the
  children replace the parent in the metadata); whom to ask next after each
  answer (`after_answer`), and what reconcile does at each step (`action`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, Sequence

import msgpack

from triplica.engine.log_entries import Write
from triplica.storage.lmdb_store import RecordKey

SPLIT_RECORD_KEY = RecordKey(b"split")

# A replica's refusals (the node turns them into PartitionMovedError / NotLeaderError).
MOVED = "moved"
NOT_LEADER = "not_leader"

# What a replica asked to split does (`ReplicaSplit.on_ask`).
ASK_DONE = "done"            # applied already: answer A
ASK_MISMATCH = "mismatch"    # applied a different split: a bug in the control plane
ASK_PROPOSE = "propose"      # propose the split entry now (if it may serve as leader)
ASK_IN_FLIGHT = "in_flight"  # this leadership's split entry is in flight: wait for it

# The control plane's steps for one split, and its answers from the parent's members.
INTENT = "intent"
APPLIED = "applied"
SWITCHED = "switched"
ANSWER_APPLIED = "applied"        # the member applied the split (index: A)
ANSWER_PROPOSED = "proposed"      # the member leads and its split entry is in flight
ANSWER_NOT_LEADER = "not_leader"  # hint: the member it believes leads, if any
ANSWER_NONE = "none"              # no answer (down, cut off, no such group there)
ACTION_ASK = "ask"
ACTION_SWITCH = "switch"
ACTION_NONE = "none"


@dataclass(frozen=True)
class SplitMarker:
    """A parent group's split, as its replicas store it."""
    boundary: int      # the left child gets [start, boundary), the right [boundary, end)
    left_group: str
    right_group: str
    index: int = 0     # the split entry's log index (0 until applied)

    def same_split(self, other: "SplitMarker") -> bool:
        return (self.boundary, self.left_group, self.right_group) == \
            (other.boundary, other.left_group, other.right_group)

    def at(self, index: int) -> "SplitMarker":
        return replace(self, index=index)

    def child_of(self, key_hash: int) -> str:
        """The child group a key of the parent goes to."""
        return self.left_group if key_hash < self.boundary else self.right_group

    def child_ranges(self, hash_start: int, hash_end: int) -> tuple[tuple[str, int, int], tuple[str, int, int]]:
        """(group, start, end) of the two children of a parent owning [hash_start, hash_end)."""
        assert hash_start < self.boundary < hash_end, (hash_start, self.boundary, hash_end)
        return ((self.left_group, hash_start, self.boundary), (self.right_group, self.boundary, hash_end))


# ------------------------------------------------------------------ the entry

def split_writes(marker: SplitMarker) -> list[Write]:
    """The split entry's writes: one partition record, no item."""
    value = msgpack.packb([str(marker.boundary), marker.left_group, marker.right_group])
    return [(SPLIT_RECORD_KEY, value)]


def marker_from_record(index: int, value: bytes) -> SplitMarker:
    """The marker a split record written by the entry at `index` stands for."""
    boundary, left_group, right_group = msgpack.unpackb(value, raw=False)
    return SplitMarker(int(boundary), left_group, right_group, index)


def marker_in(writes: Sequence[Write], index: int) -> SplitMarker | None:
    """The marker if the entry at `index` (decoded into `writes`) is a split entry."""
    if len(writes) == 1 and writes[0][0] == SPLIT_RECORD_KEY and type(writes[0][0]) is RecordKey:
        value = writes[0][1]
        assert value is not None
        return marker_from_record(index, value)
    return None


def first_marker(current: SplitMarker | None, applied: SplitMarker) -> SplitMarker:
    """Only the first applied split entry counts (a later one is a retried proposal)."""
    return current if current is not None else applied


def applies_writes(moved: SplitMarker | None) -> bool:
    """Does a replica apply an entry's writes? Not once it applied the marker: its state
    stays as at A. The leadership that proposed the split entry proposes nothing after
    it, but a later leader may still commit, after A, writes an earlier ballot's leader
    had accepted at higher indexes (Paxos lets it re-propose them, and it must); a
    replica applying them before cutting its children would start them from another
    state than one that had not (storage/lmdb_store.py keeps the same rule)."""
    return moved is None


# ---------------------------------------------------------------- a replica

class ReplicaSplit:
    """One replica's part in its group's split (module docstring)."""

    def __init__(self, moved: SplitMarker | None = None) -> None:
        self.moved = moved  # the marker, once applied here (frozen at A from then on)
        self.proposing: Any = None  # the ballot of this replica's leadership that proposed it

    def leadership(self, is_leader: bool, ballot: Any) -> None:
        """A split entry in flight is the next leader's to decide: it belongs to one ballot."""
        if self.proposing is not None and (not is_leader or ballot != self.proposing):
            self.proposing = None

    def applied(self, marker: SplitMarker) -> None:
        self.moved = first_marker(self.moved, marker)
        self.proposing = None

    def refusal(self, may_serve: bool, write: bool) -> str | None:
        """Why this replica refuses a request (None: it serves it). `may_serve`: it leads
        with a lease and has applied its predecessors' entries (for strong reads and writes);
        pass True for a request any replica may serve."""
        if self.moved is not None:
            return MOVED
        if not may_serve:
            return NOT_LEADER
        if write and self.proposing is not None:
            return MOVED  # nothing may follow the split entry in the log
        return None

    def on_ask(self, marker: SplitMarker) -> str:
        """What to do when the control plane asks this replica to split its group."""
        if self.moved is not None:
            return ASK_DONE if self.moved.same_split(marker) else ASK_MISMATCH
        return ASK_IN_FLIGHT if self.proposing is not None else ASK_PROPOSE

    def proposed(self, ballot: Any) -> None:
        self.proposing = ballot

    def proposal_failed(self) -> None:
        self.proposing = None


# -------------------------------------------------------------------- children

@dataclass(frozen=True)
class ChildSeed:
    """What this node's replica of a split child starts from (see `child_seed`)."""
    index: int                 # the parent's split index A: the child's snapshot index
    hash_start: int            # the parent's state cut to [hash_start, hash_end)
    hash_end: int
    members: tuple[int, ...]   # the snapshot's configuration: the parent's members


def child_seed(marker: SplitMarker | None, hash_start: int, hash_end: int,
               members: Sequence[int]) -> ChildSeed | None:
    """The child to build from a parent replica holding `marker` (None if it never applied
    a split): None when there is nothing to build from (the parent replica did not split
    into this range), and the child replica starts empty, learning everything (its
    configuration included) from its peers."""
    if marker is None or not (hash_start == marker.boundary or hash_end == marker.boundary):
        return None
    assert hash_start < hash_end, (hash_start, hash_end)
    return ChildSeed(marker.index, hash_start, hash_end, tuple(sorted(set(members))))


def first_campaigner(group_key: str, members: Sequence[int]) -> int:
    """The member of a brand-new group that campaigns first: picked by a stable hash of
    the group key (the same on every node), not the lowest id, so leaders spread."""
    digest = hashlib.blake2b(group_key.encode("utf-8"), digest_size=8).digest()
    ordered = sorted(members)
    return ordered[int.from_bytes(digest, "big") % len(ordered)]


def start_back_ms(node_id: int, group_key: str, members: Sequence[int], election_timeout_base_ms: int,
                  election_timeout_jitter_ms: int) -> int:
    """How far a brand-new group's replica back-dates its clock at its first start: every
    member may promise at once, and the first campaigner campaigns at its first tick.
    A restart never back-dates."""
    back_ms = election_timeout_base_ms
    if node_id == first_campaigner(group_key, members):
        back_ms += election_timeout_jitter_ms
    return back_ms


# ------------------------------------------------------------- control plane

def split_refusal(parent_range: tuple[int, int] | None, boundary: int, intent_pending: bool,
                  table_active: bool = True, moving: bool = False) -> str | None:
    """Why the control plane may not start this split now (None: it may). One operation
    at a time per table, and a boundary strictly inside the parent's range."""
    if not table_active:
        return "the table is not ACTIVE"
    if intent_pending:
        return "a split of this table is in progress"
    if parent_range is None:
        return "no such partition"
    if not parent_range[0] < boundary < parent_range[1]:
        return "the boundary is not inside the partition"
    if moving:
        return "a replica move of the group is in progress"
    return None


@dataclass(frozen=True)
class SplitAnswer:
    """A member's answer to "split this group" (kinds: ANSWER_*)."""
    kind: str
    index: int = 0            # ANSWER_APPLIED: A
    hint: int | None = None   # ANSWER_NOT_LEADER: the member it believes leads


@dataclass(frozen=True)
class AskNext:
    done: bool          # the split is applied: switch
    target: int         # whom to ask next
    wait: bool          # back off before asking (False: follow a hint at once)


class SplitProgress:
    """One split through the control plane's steps (module docstring). The intent is in
    the metadata log before this exists; `action` is what the leader (or whichever
    metadata replica leads next, in reconcile) does at the current step."""

    def __init__(self, parent: str, marker: SplitMarker, members: Sequence[int],
                 first_target: int | None = None) -> None:
        assert members, "a group with no members"
        self.parent = parent
        self.marker = marker
        self.members = list(members)
        self.target = self.members[0] if first_target is None else first_target
        self.step = INTENT

    @property
    def action(self) -> str:
        return {INTENT: ACTION_ASK, APPLIED: ACTION_SWITCH, SWITCHED: ACTION_NONE}[self.step]

    def next_member(self, node: int) -> int:
        if node not in self.members:
            return self.members[0]
        return self.members[(self.members.index(node) + 1) % len(self.members)]

    def after_answer(self, answer: SplitAnswer) -> AskNext:
        """Step 2: the decision after `self.target` answered. Applied: the split index is
        learned and the next step is the switch; a leader with its split entry in flight is
        asked again; a hint naming another member is followed at once; anything else tries
        the next member after a pause."""
        assert self.step == INTENT, self.step
        if answer.kind == ANSWER_APPLIED:
            assert answer.index > 0, answer
            self.marker = self.marker.at(answer.index)
            self.step = APPLIED
            return AskNext(True, self.target, False)
        if answer.kind == ANSWER_PROPOSED:
            return AskNext(False, self.target, True)
        if answer.kind == ANSWER_NOT_LEADER and answer.hint in self.members and answer.hint != self.target:
            self.target = answer.hint
            return AskNext(False, self.target, False)
        self.target = self.next_member(self.target)
        return AskNext(False, self.target, True)

    def switched(self) -> None:
        """Step 3 is in the metadata log: the children replace the parent."""
        assert self.step == APPLIED, self.step
        self.step = SWITCHED
