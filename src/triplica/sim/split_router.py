"""Routers with stale partition maps, and the clients behind them, for the split simulation.

The metadata (`PartitionMaps`) is the list of committed maps; a map's epoch
is its position. `MemDS` answers a router's refresh with the latest map or,
sometimes, one a few epochs behind (its copy lags the metadata). A `Router`
keeps its cached map until a node tells it otherwise, as
cluster/router.py does:
- "moved" (the group was split) or "unknown group" (the node dropped it or
  has not built it yet): nothing ran; refresh the map, back off, retry;
- "not leader" with a hint: follow it at once; the node itself as the hint
  (lease pending): back off and ask it again; no hint: back off and try the
  next member;
- no answer: a read is retried at the next member; a write's outcome is
  unknown, so the router gives up on it at once (production answers 500),
  as running it again could apply it after a newer write.
Every operation has a deadline (`operation_deadline_ms`); the client never
sees "moved".

History (`history`, for the linearizability checker): answered ops with
their times; a write with an unknown outcome with complete_ms=None; an op
refused everywhere until its deadline is left out (it certainly did not run;
a read observed nothing). Values are unique per write ("c<client>s<seq>").
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from triplica.sim.history import HistoryEvent
from triplica.sim.kv import Command
from triplica.sim.split_cluster import SplitCluster, key_position

BACKOFF_MS_MIN = 5
BACKOFF_MS_MAX = 80


@dataclass(frozen=True)
class Partition:
    group: int
    start: int
    end: int


class PartitionMaps:
    """The committed maps of the one table (the metadata log's view of it)."""

    def __init__(self, key_count: int) -> None:
        self.maps: list[tuple[Partition, ...]] = [(Partition(1, 0, key_count),)]

    @property
    def latest_epoch(self) -> int:
        return len(self.maps) - 1

    def latest(self) -> tuple[Partition, ...]:
        return self.maps[-1]

    def commit_split(self, parent: int, boundary: int, left: int, right: int) -> None:
        old = self.latest()
        found = [p for p in old if p.group == parent]
        assert len(found) == 1 and found[0].start < boundary < found[0].end, (parent, boundary, old)
        p = found[0]
        rest = [q for q in old if q.group != parent]
        self.maps.append(tuple(sorted(rest + [Partition(left, p.start, boundary), Partition(right, boundary, p.end)],
                                      key=lambda q: q.start)))

    def route(self, epoch: int, key: str) -> Partition:
        position = key_position(key)
        for partition in self.maps[epoch]:
            if partition.start <= position < partition.end:
                return partition
        raise AssertionError(f"key {key} outside the map at epoch {epoch}")


class MemDS:
    """The routers' map source: usually current, sometimes up to `lag_epochs_max` behind."""

    def __init__(self, maps: PartitionMaps, rng: random.Random, stale_rate: float, lag_epochs_max: int) -> None:
        self.maps = maps
        self.rng = rng
        self.stale_rate = stale_rate
        self.lag_epochs_max = lag_epochs_max

    def fetch(self) -> int:
        latest = self.maps.latest_epoch
        if self.stale_rate and self.rng.random() < self.stale_rate:
            return max(0, latest - self.rng.randint(1, self.lag_epochs_max))
        return latest


@dataclass
class Router:
    router_id: int
    memds: MemDS
    epoch: int = 0  # the cached map; every router starts with the table's first map
    hints: dict[int, int] = field(default_factory=dict)  # group -> believed leader
    refreshes: int = 0

    def route(self, key: str) -> Partition:
        return self.memds.maps.route(self.epoch, key)

    def refresh(self) -> None:
        self.epoch = self.memds.fetch()
        self.refreshes += 1


@dataclass
class WorkloadSettings:
    clients: int = 4
    routers: int = 2
    operations: int = 200
    attempt_timeout_ms: int = 300
    operation_deadline_ms: int = 4000
    think_ms_max: int = 20


@dataclass
class _Operation:
    kind: str  # put | cas | strong_get
    key: str
    value: "str | None"
    expected: "str | None"
    invoke_ms: int
    seq: int
    done: Callable[[str, Any], None]
    attempt: int = 0
    backoff_ms: int = BACKOFF_MS_MIN


@dataclass
class SplitClient:
    client_id: int
    router: Router
    seq: int = 0
    seen: dict[str, "str | None"] = field(default_factory=dict)
    operation: "_Operation | None" = None
    finished: bool = False


class SplitWorkload:
    def __init__(self, cluster: SplitCluster, rng: random.Random, keys: list[str], routers: list[Router],
                 settings: WorkloadSettings) -> None:
        self.cluster = cluster
        self.rng = rng
        self.keys = keys
        self.routers = routers
        self.settings = settings
        self.issued = 0
        self.stopped = False
        self.history: list[HistoryEvent] = []
        self.acked_writes: list[str] = []  # values of acknowledged successful writes
        self.moved_answers = 0
        self.clients = [SplitClient(i + 1, routers[i % len(routers)]) for i in range(settings.clients)]

    @property
    def finished(self) -> bool:
        return all(c.finished for c in self.clients)

    def start(self) -> None:
        for client in self.clients:
            self.cluster.at(self.rng.randrange(1, 50), lambda c=client: self._next(c))

    def _next(self, client: SplitClient) -> None:
        if self.stopped or self.issued >= self.settings.operations:
            client.finished = True
            return
        self.issued += 1
        key = self.rng.choice(self.keys)
        roll = self.rng.random()
        kind = "put" if roll < 0.35 else "cas" if roll < 0.55 else "strong_get"
        expected = client.seen.get(key) if kind == "cas" else None

        def done(status: str, payload: Any) -> None:
            self.cluster.at(self.rng.randrange(0, self.settings.think_ms_max + 1), lambda: self._next(client))
        self.begin(client, kind, key, expected, done)

    def begin(self, client: SplitClient, kind: str, key: str, expected: "str | None",
              done: Callable[[str, Any], None]) -> None:
        """Start one operation; `done(status, payload)` runs when it ends ('ok', 'unknown' or 'failed')."""
        client.seq += 1
        value = f"c{client.client_id}s{client.seq}" if kind != "strong_get" else None
        client.operation = _Operation(kind, key, value, expected, self.cluster.now_ms, client.seq, done)
        self._attempt(client)

    # ---------------------------------------------------------- attempts

    def _attempt(self, client: SplitClient) -> None:
        op = client.operation
        assert op is not None
        if self.cluster.now_ms - op.invoke_ms > self.settings.operation_deadline_ms:
            self._end(client, "failed", None)
            return
        op.attempt += 1
        attempt = op.attempt
        router = client.router
        partition = router.route(op.key)
        target = router.hints.get(partition.group) or self.rng.choice(self.cluster.members)
        if op.kind == "strong_get":
            request: tuple = ("strong_get", op.key)
        else:
            request = ("write", Command(client.client_id, op.seq, op.kind, op.key, op.value, op.expected))

        def reply(answer: Any) -> None:
            self.cluster.at(self._link_ms(), lambda: self._on_reply(client, op, attempt, partition.group, target, answer))

        self.cluster.at(self._link_ms(), lambda: self.cluster.handle_client(target, partition.group, request, reply))
        self.cluster.at(self.settings.attempt_timeout_ms, lambda: self._on_timeout(client, op, attempt, partition.group, target))

    def _link_ms(self) -> int:
        return 1 + int(self.rng.expovariate(0.5))

    def _on_timeout(self, client: SplitClient, op: _Operation, attempt: int, group: int, target: int) -> None:
        if client.operation is not op or op.attempt != attempt:
            return
        if op.kind != "strong_get":
            self._end(client, "unknown", None)  # it may have run: never run a write twice
            return
        client.router.hints[group] = self._next_member(target)
        self._attempt(client)

    def _on_reply(self, client: SplitClient, op: _Operation, attempt: int, group: int, target: int, answer: Any) -> None:
        if client.operation is not op or op.attempt != attempt:
            return
        op.attempt += 1  # the pending timeout no longer counts
        status, payload = answer
        if status == "ok":
            self._complete(client, op, payload)
            return
        router = client.router
        if status == "not_leader" and payload is not None and payload != target:
            router.hints[group] = payload
            self._attempt(client)
            return
        if status in ("moved", "unknown_group"):
            self.moved_answers += status == "moved"
            router.refresh()
        # The node itself as the hint: elected, lease pending; try it again.
        router.hints[group] = target if status == "not_leader" and payload == target else self._next_member(target)
        delay = op.backoff_ms
        op.backoff_ms = min(BACKOFF_MS_MAX, op.backoff_ms * 2)
        self.cluster.at(delay, lambda: self._retry(client, op))

    def _retry(self, client: SplitClient, op: _Operation) -> None:
        if client.operation is op:
            self._attempt(client)

    def _next_member(self, node: int) -> int:
        members = self.cluster.members
        return members[(members.index(node) + 1) % len(members)]

    # --------------------------------------------------------- outcomes

    def _complete(self, client: SplitClient, op: _Operation, payload: Any) -> None:
        now = self.cluster.now_ms
        if op.kind == "strong_get":
            self.history.append(HistoryEvent(client.client_id, "get", op.key, None, None, op.invoke_ms, now, True, payload))
            client.seen[op.key] = payload
        else:
            ok, previous = payload
            self.history.append(HistoryEvent(client.client_id, op.kind, op.key, op.value, op.expected, op.invoke_ms,
                                             now, bool(ok), previous if op.kind == "cas" else None))
            if ok:
                assert op.value is not None
                self.acked_writes.append(op.value)
            client.seen[op.key] = op.value if ok else previous
        self._finish(client, op, "ok", payload)

    def _end(self, client: SplitClient, status: str, payload: Any) -> None:
        op = client.operation
        assert op is not None
        if status == "unknown":
            self.history.append(HistoryEvent(client.client_id, op.kind, op.key, op.value, op.expected,
                                             op.invoke_ms, None, None, None))
        self._finish(client, op, status, payload)

    def _finish(self, client: SplitClient, op: _Operation, status: str, payload: Any) -> None:
        client.operation = None
        op.done(status, payload)
