"""Processing the core's Ready: the one loop every driver of a Replica runs.

The core (replica.py) does no I/O; whoever drives it takes a `Ready` and, in
this order: persists what it must (hard state, entries, snapshot: one
fsync), sends its messages, installs its snapshot if asked, applies its
committed entries, then calls `advance` (etcd-io/raft's contract). The
asyncio driver (driver.py) and the simulator (sim/cluster.py,
sim/split_cluster.py) both run it through `ReadyLoop`, injecting the I/O
(`ReadyIO`: send, install, apply) and doing the fsync their own way (a worker
thread; a simulated disk after a simulated latency), so the simulator checks
the loop that runs.

What must reach the disk before the messages go out (`needs_disk`): entries,
a snapshot, or a new promise. Not a hard state whose only change is a higher
commit index under the same promise: the commit index is a restart
optimisation (log.py); a replica that restarts with an older one just learns
the rest again from the leader, exactly as after a crash before that fsync.
Such a hard state waits for the next write (`to_persist` folds it in), which
writes it after everything it covers.

One Ready is in flight at a time: the caller persists it, then `finish`es
it, before taking the next; `settle` finishes Readies inline until one needs
the disk (or a snapshot install, which a driver may want to do elsewhere).
The caller ticks the core before stepping it and, if it likes, before each
round (the asyncio driver does, for fresh send times).
"""
from __future__ import annotations

from typing import Callable

from triplica.replication.log import HardState, LogEntry, Snapshot
from triplica.replication.messages import Message
from triplica.replication.replica import Ready, Replica

Send = Callable[[tuple[Message, ...]], None]
Install = Callable[[Snapshot], None]
Apply = Callable[[tuple[LogEntry, ...]], None]


class ReadyLoop:
    """One replica's Ready processing (module docstring)."""

    def __init__(self, replica: Replica, *, send: Send, install: Install, apply: Apply,
                 durable_hard_state: Callable[[], HardState],
                 finished: Callable[[Ready], None] | None = None,
                 defer_commit_index: bool = True) -> None:
        """The I/O, all synchronous: `send` a Ready's messages, `install` its snapshot into
        the state machine, `apply` its committed entries; `durable_hard_state`: the hard
        state on disk now (what a restart would read); `finished`: told after each
        Ready's `advance`; `defer_commit_index`: False writes every hard state at once
        (the split simulation, see sim/split_cluster.py)."""
        self.replica = replica
        self.send = send
        self.install = install
        self.apply = apply
        self.durable_hard_state = durable_hard_state
        self.finished = finished
        self.defer_commit_index = defer_commit_index
        self.deferred: HardState | None = None  # a commit-index-only hard state not yet written

    def take(self) -> Ready | None:
        """The core's next Ready, or None when it has nothing to do."""
        ready = self.replica.ready()
        return None if ready.empty else ready

    def needs_disk(self, ready: Ready) -> bool:
        if ready.entries or ready.snapshot is not None:
            return True
        hard_state = ready.hard_state
        if hard_state is not None and not self.defer_commit_index:
            return True
        return hard_state is not None and hard_state.promised != self.durable_hard_state().promised

    def to_persist(self, ready: Ready) -> tuple[HardState | None, tuple[LogEntry, ...], Snapshot | None]:
        """What to write (one fsync) for a Ready that `needs_disk`."""
        assert self.needs_disk(ready)
        hard_state = ready.hard_state or self.deferred
        self.deferred = None
        return hard_state, ready.entries, ready.snapshot

    def skip_disk(self, ready: Ready) -> None:
        """A Ready that needs no disk: its hard state (if any) waits for the next write."""
        assert not self.needs_disk(ready)
        if ready.hard_state is not None:
            self.deferred = ready.hard_state

    def finish(self, ready: Ready) -> None:
        """Everything after persisting, in the core's order: send, install, apply, advance."""
        self.send(ready.messages)
        if ready.install_snapshot and ready.snapshot is not None:
            self.install(ready.snapshot)
        if ready.committed_entries:
            self.apply(ready.committed_entries)
        self.replica.advance(ready)
        if self.finished is not None:
            self.finished(ready)

    def settle(self, rounds_max: int, stop_at_install: bool = False, stop_when_idle: bool = False,
               strict: bool = True) -> Ready | None:
        """Finish Readies that need no disk until one does (returned: the caller persists
        it, then finishes it) or nothing is left (None). `stop_at_install`: return a Ready
        installing a snapshot too, unfinished. `stop_when_idle`: stop after a Ready that
        applied nothing (its advance creates no output; a leader's next `ready` would only
        replicate again, which can wait for the caller's next round). After `rounds_max`
        Readies: a bug if `strict` (the simulator), else None and the rest waits."""
        for _ in range(rounds_max):
            ready = self.take()
            if ready is None:
                return None
            if self.needs_disk(ready) or (stop_at_install and ready.install_snapshot):
                return ready
            self.skip_disk(ready)
            self.finish(ready)
            if stop_when_idle and not ready.committed_entries:
                return None
        if strict:
            raise AssertionError(f"replica {self.replica.node_id}: the Ready loop does not settle "
                                 f"in {rounds_max} rounds")
        return None
