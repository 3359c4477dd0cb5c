"""The index simulation's propagator: node/index_propagation.py's rounds on virtual time.

One `SimPropagator` is the propagator of one base partition's leader for one
term. Its round is IndexPropagator._propagate step for step, with the same
pure pieces (engine/index_batches.py):
1. while the outbox holds at most `backfill_outbox_max` records, propose one
   backfill chunk per index still backfilling (sorted by name);
2. read the outbox's first `read_max` records, `run_of` them, `cut` them by
   the current index maps; nothing: the round is done;
3. send every destination its batch as a `cursor_entry` (source = the
   partition id, ancestors = [its split parent]) and wait for every answer;
4. every answer "ok": propose the trim entry; otherwise (or at the ask
   timeout) the round failed and the next one waits `retry_ms`.
Its state is in memory only: when its leader loses the lead (crash, leader
change, split) it is dropped, answers to it land nowhere, and a proposal it
made may or may not commit (as an entry a leader accepted may still be
chosen after it fails). The next leader's propagator starts from the outbox.

The deliberate bugs of IndexFaults that live here (trim before the answers,
no fence, a backfill's last chunk muted) are for the self-test only.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Protocol

import msgpack

from triplica.engine.index_batches import Route, backfill_entry, cursor_entry, cut, run_of, trim_entry
from triplica.engine.log_entries import Write, encode_entry
from triplica.sim.index_world import Group
from triplica.storage.index_outbox import OP_BACKFILL

ANSWER_OK = "ok"
ANSWER_MOVED = "moved"
ANSWER_NOT_LEADER = "not_leader"


@dataclass(frozen=True)
class PropagationSettings:
    """production's constants (node/index_propagation.py), scaled to the runs' sizes."""

    read_max: int                 # OUTBOX_READ_MAX
    backfill_chunk: int           # BACKFILL_CHUNK
    backfill_outbox_max: int      # BACKFILL_OUTBOX_MAX
    idle_ms: int = 20             # PROPAGATE_IDLE_S
    retry_ms: int = 200           # RETRY_S
    ask_timeout_ms: int = 300     # engine/leader_asks.py ASK_S
    propose_ms_max: int = 4       # a proposal's commit latency
    # Fence every split ancestor, as production does (node/index_propagation.py); off, the
    # parent alone, the bug the sweep's seed 65 found (tests/sim/test_index_sweep.py).
    fence_lineage: bool = True


@dataclass
class IndexFaults:
    """Deliberate bugs, used ONLY by the test proving the sweep's checks catch them."""

    trim_before_answers: bool = False       # trim as soon as the batches are sent
    ignore_cursor: bool = False             # an index partition applies every batch's writes
    no_fence: bool = False                  # a split child names no ancestor
    skip_last_backfill_chunk: bool = False  # the chunk that ends a backfill puts nothing out
    child_drops_outbox: bool = False        # a base split child starts with an empty outbox
    moved_index_accepts: bool = False       # a split index parent still applies batches


class Mute:
    """The switch of `skip_last_backfill_chunk`: while on, backfill sees no entries."""

    def __init__(self) -> None:
        self.on = False


class Host(Protocol):
    """What a propagator needs from the simulation (index_sim.IndexSim)."""

    now_ms: int
    rng: random.Random
    faults: IndexFaults
    mute: Mute
    stats: dict[str, Any]

    def at(self, delay_ms: int, action: Callable[[], None]) -> None: ...

    def trace(self, *fields: object) -> None: ...

    def route(self, name: str, index_key: bytes) -> tuple[Hashable, str] | None: ...

    def lineage(self, group: Group) -> list[str]: ...

    def send_batch(self, destination: Hashable, source: str, high: bytes, entry: bytes,
                   on_answer: Callable[[str], None]) -> None: ...


class SimPropagator:
    """One base partition leader's propagator for one term (module docstring)."""

    def __init__(self, host: Host, group: Group, settings: PropagationSettings) -> None:
        self.host = host
        self.group = group
        self.term = group.term
        self.settings = settings
        self.running = False
        self.resting_until_ms = 0
        self._round = 0
        self._waiting: set[Hashable] = set()
        self._failed = False
        self._high = b""
        self._records = 0
        self._dropped = 0

    def alive(self) -> bool:
        return self.group.leads(self.host.now_ms) and self.group.term == self.term

    @property
    def idle(self) -> bool:
        return not self.running

    def tick(self) -> None:
        if self.running or self.resting_until_ms > self.host.now_ms or not self.alive():
            return
        self.running = True
        self._round += 1
        store = self.group.store
        backlog = store.outbox_size()
        chunks: list[list[Write]] = []
        if backlog <= self.settings.backfill_outbox_max:
            chunks = [backfill_entry(name, self.settings.backfill_chunk)
                      for name in sorted(store.backfilling())]
        self._propose_all(chunks, self._read)

    # -- proposals --------------------------------------------------------

    def _propose_all(self, entries: list[list[Write]], then: Callable[[], None]) -> None:
        if not entries:
            then()
            return
        self._propose(entries[0], lambda: self._propose_all(entries[1:], then))

    def _propose(self, writes: list[Write], then: Callable[[], None]) -> None:
        round_ = self._round

        def commit() -> None:
            if self.group.gone:
                self._end(round_, False)  # after the split entry: refused (moved)
                return
            mine = self.alive()
            if mine or self.host.rng.random() < 0.5:   # a lost leader's entry may still commit
                self._apply(writes)
            if mine:
                then()
        self.host.at(self.host.rng.randint(1, self.settings.propose_ms_max), commit)

    def _apply(self, writes: list[Write]) -> None:
        if self.host.faults.skip_last_backfill_chunk and _is_backfill(writes):
            self.host.mute.on = self._ends_backfill(writes)
        try:
            index = self.group.apply(writes)
        finally:
            self.host.mute.on = False
        self.host.trace("propose", self.group.gid, self.term, index, bytes(writes[0][0]).decode())

    def _ends_backfill(self, writes: list[Write]) -> bool:
        """Whether this chunk reads the last items (the fault mutes exactly that one)."""
        store = self.group.store
        position = store.backfilling().get(self._chunk_name(writes))
        if position is None:
            return False
        rows = store.scan(position, None, start_inclusive=False)
        try:
            left = sum(1 for _ in zip(range(self.settings.backfill_chunk), rows))
        finally:
            rows.close()  # type: ignore[attr-defined]
        return left < self.settings.backfill_chunk

    @staticmethod
    def _chunk_name(writes: list[Write]) -> str:
        return str(msgpack.unpackb(writes[0][1], raw=False)[0])

    # -- the round --------------------------------------------------------

    def _read(self) -> None:
        records = run_of(self.group.store.outbox(self.settings.read_max))
        route: Route = self.host.route
        found = cut(records, route)
        if found is None:
            self._end(self._round, True)
            return
        self._high, self._records, self._dropped = found.high, len(records), found.dropped
        self._waiting = set(found.batches)
        self._failed = False
        parent = self.group.split_from
        ancestors = [parent] if parent else []   # the parent alone: the old bug
        if self.settings.fence_lineage:
            ancestors = self.host.lineage(self.group)
        if self.host.faults.no_fence:
            ancestors = []
        round_ = self._round
        for destination, batch in found.batches.items():
            entry = encode_entry(cursor_entry(self.group.gid, found.high, ancestors, batch.writes))
            self.host.send_batch(destination, self.group.gid, found.high, entry,
                                 lambda answer, d=destination: self._answer(round_, d, answer))
        self.host.stats["batches"] += len(found.batches)
        if self.host.faults.trim_before_answers or not self._waiting:
            self._trim(round_)
            return
        self.host.at(self.settings.ask_timeout_ms, lambda: self._timeout(round_))

    def _answer(self, round_: int, destination: Hashable, answer: str) -> None:
        if round_ != self._round or not self.running or destination not in self._waiting:
            return  # a late or duplicated answer, or to a round that is over
        if not self.alive():
            self.running = False
            return
        self._waiting.discard(destination)
        self._failed = self._failed or answer != ANSWER_OK
        if answer == ANSWER_MOVED:
            self.host.stats["moved_answers"] += 1
        if self._waiting:
            return
        if self._failed:
            self._end(round_, False)
        else:
            self._trim(round_)

    def _timeout(self, round_: int) -> None:
        if round_ == self._round and self.running and self._waiting:
            self.host.stats["ask_timeouts"] += 1
            self._end(round_, False)

    def _trim(self, round_: int) -> None:
        def trimmed() -> None:
            self.host.stats["delivered"] += self._records - self._dropped
            self._end(round_, True)
        self._propose(trim_entry(self._high), trimmed)

    def _end(self, round_: int, ok: bool) -> None:
        if round_ != self._round or not self.running:
            return
        self.running = False
        self._waiting = set()
        if not ok:
            self.host.stats["failed_rounds"] += 1
            self.resting_until_ms = self.host.now_ms + self.settings.retry_ms


def _is_backfill(writes: list[Write]) -> bool:
    return bytes(writes[0][0]) == OP_BACKFILL
