"""Paxos ballots: (round, node_id), totally ordered, unique per proposer.

A ballot is the identity of one leadership attempt. Two proposers never use
the same ballot because the node id breaks ties between equal rounds, and a
proposer never reuses a round because it always picks one above every round
it has promised or seen (the promised ballot is persisted before any message
carrying the new ballot leaves the node).

Ballot.ZERO orders below every real ballot (node ids are >= 1).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True, slots=True)
class Ballot:
    round: int
    node: int

    def next_for(self, node: int) -> "Ballot":
        """The smallest ballot owned by `node` that is above this one."""
        return Ballot(self.round + 1, node)

    def to_wire(self) -> tuple[int, int]:
        return (self.round, self.node)

    @classmethod
    def from_wire(cls, value: "tuple[int, int] | list[int]") -> "Ballot":
        return cls(int(value[0]), int(value[1]))


Ballot.ZERO = Ballot(0, 0)  # type: ignore[attr-defined]
ZERO_BALLOT = Ballot(0, 0)
