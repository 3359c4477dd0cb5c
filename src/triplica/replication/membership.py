"""Group membership: which nodes are acceptors, which of them are log replicas.

Every member is an acceptor: it votes in phase 1 and phase 2 and counts
toward quorums. A log replica is a member that stores the WAL only: it never
leads, never serves reads and never applies entries to a state machine
(paper: "log replicas ... only store recent write-ahead log entries").

Membership changes travel through the log as CONFIG entries and change one
member at a time (add one node, remove one node, or flip one node between
full and log replica). The rule for when a configuration takes effect is
documented in replica.py (module docstring, "Membership").
"""
from __future__ import annotations

from dataclasses import dataclass

import msgpack


@dataclass(frozen=True, slots=True)
class Membership:
    members: frozenset[int]
    log_replicas: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        assert self.log_replicas <= self.members, "log replicas must be members"

    @classmethod
    def of(cls, members: "list[int] | tuple[int, ...] | set[int]", log_replicas: "tuple[int, ...] | set[int]" = ()) -> "Membership":
        return cls(frozenset(members), frozenset(log_replicas))

    def can_lead(self, node: int) -> bool:
        return node in self.members and node not in self.log_replicas

    def encode(self) -> bytes:
        return msgpack.packb([sorted(self.members), sorted(self.log_replicas)])

    @classmethod
    def decode(cls, data: bytes) -> "Membership":
        members, log_replicas = msgpack.unpackb(data)
        return cls(frozenset(members), frozenset(log_replicas))

    def is_single_step_from(self, other: "Membership") -> bool:
        """True when self differs from other by exactly one member's role.

        Adding or removing one node changes any majority by at most one, so
        every majority of `other` intersects every majority of `self`.
        Flipping one node between full and log replica keeps the member set,
        so quorums are unchanged.
        """
        added = self.members - other.members
        removed = other.members - self.members
        if len(added) + len(removed) == 1:
            return True
        if added or removed:
            return False
        return len(self.log_replicas ^ other.log_replicas) == 1
