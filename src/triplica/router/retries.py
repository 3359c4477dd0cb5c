"""What a router does after each attempt at a partition: the retry decisions, sans-I/O.

The router (router/router.py) and the split simulation's routers
(sim/split_router.py) send an attempt, classify what came back as an
`Outcome`, and ask `Attempts.after` what next. The rules:

- ANSWERED (a success, or an error that is the answer): done.
- NOT_LEADER with a hint naming another node: follow it at once. The node
  itself as the hint (elected, its lease not yet valid): back off and ask
  it again, but after SELF_HINTS_MAX such answers in a row move on (a
  deposed leader that does not know it yet). No usable hint: back off and
  try the next candidate.
- MOVED (the partition was split; nothing ran): refresh the table's map,
  back off, and route the request again (`Next.refresh`).
- NOT_REACHED (nothing was sent): back off, next candidate.
- LOST or TIMEOUT (it may have run): a read backs off and tries the next
  candidate; a write gives up with an unknown outcome (`Next.give_up`):
  running it again could apply it after a newer write, or make a
  conditional write fail on its own earlier success. The SDK decides, as
  with DynamoDB's 500s.
- SERVER_ERROR (a 5xx answer): a read backs off and tries again; a write's
  answer is that error.

Backoff doubles from BACKOFF_S_MIN to BACKOFF_S_MAX. Deadlines and attempt
counts are the caller's (it knows the clock): this module only decides.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

BACKOFF_S_MIN = 0.01
BACKOFF_S_MAX = 0.2
SELF_HINTS_MAX = 8

ANSWERED = "answered"
NOT_LEADER = "not_leader"
MOVED = "moved"
NOT_REACHED = "not_reached"
LOST = "lost"
TIMEOUT = "timeout"
SERVER_ERROR = "server_error"
OUTCOMES = frozenset({ANSWERED, NOT_LEADER, MOVED, NOT_REACHED, LOST, TIMEOUT, SERVER_ERROR})


@dataclass(frozen=True)
class Outcome:
    kind: str
    hint: int | None = None  # NOT_LEADER: the node the answering replica believes leads

    def __post_init__(self) -> None:
        assert self.kind in OUTCOMES, self.kind


@dataclass(frozen=True)
class Next:
    done: bool = False        # the outcome is the answer
    give_up: bool = False     # unknown outcome: answer "internal error", never retry
    refresh: bool = False     # the map is stale: refresh it and route again
    target: int = 0           # where the next attempt goes
    wait_s: float = 0.0       # back off this long first
    learned_leader: bool = False  # the target that answered leads the group


class Attempts:
    """One request's attempts at one partition (or at any node, for table operations)."""

    def __init__(self, candidates: Sequence[int], target: int, retry_unknown: bool,
                 known: frozenset[int] | None = None) -> None:
        """`candidates`: the members to try in turn; `target`: the first attempt's;
        `retry_unknown`: the request may run twice (a read); `known`: every node a
        hint may name (default: the candidates)."""
        assert candidates, "no node to try"
        self.candidates = list(candidates)
        self.target = target
        self.retry_unknown = retry_unknown
        self.known = known if known is not None else frozenset(self.candidates)
        self.backoff_s = BACKOFF_S_MIN
        self.self_hints = 0
        self.attempts = 0

    def next_candidate(self, node: int) -> int:
        if node not in self.candidates:
            return self.candidates[0]
        return self.candidates[(self.candidates.index(node) + 1) % len(self.candidates)]

    def _back_off(self) -> float:
        wait_s = self.backoff_s
        self.backoff_s = min(self.backoff_s * 2, BACKOFF_S_MAX)
        return wait_s

    def _retry(self, target: int, wait: bool) -> Next:
        self.target = target
        return Next(target=target, wait_s=self._back_off() if wait else 0.0)

    def after(self, outcome: Outcome) -> Next:
        """The decision after the attempt at `self.target` ended with `outcome`."""
        self.attempts += 1
        kind = outcome.kind
        if kind == ANSWERED:
            return Next(done=True, target=self.target, learned_leader=True)
        if kind == MOVED:
            return Next(refresh=True, target=self.target, wait_s=self._back_off())
        if kind == NOT_LEADER:
            return self._follow(outcome.hint)
        if kind == NOT_REACHED:
            return self._retry(self.next_candidate(self.target), wait=True)
        if kind == SERVER_ERROR:
            if not self.retry_unknown:
                return Next(done=True, target=self.target)
            return self._retry(self.target, wait=True)
        assert kind in (LOST, TIMEOUT), kind
        if not self.retry_unknown:
            return Next(give_up=True, target=self.target)
        return self._retry(self.next_candidate(self.target), wait=True)

    def _follow(self, hint: int | None) -> Next:
        if hint is None or hint not in self.known:
            self.self_hints = 0
            return self._retry(self.next_candidate(self.target), wait=True)
        if hint != self.target:
            self.self_hints = 0
            return self._retry(hint, wait=False)
        self.self_hints += 1
        if self.self_hints > SELF_HINTS_MAX:  # a deposed leader that does not know it yet
            self.self_hints = 0
            return self._retry(self.next_candidate(self.target), wait=True)
        return self._retry(self.target, wait=True)
