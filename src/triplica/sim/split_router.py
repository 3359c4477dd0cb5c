"""Routers with stale partition maps, and the clients behind them, for the split simulation.

The metadata (`PartitionMaps`) is the list of committed maps, each one
production's compact map (model/partition_map.py `TableMap`; a key's
number stands for its hash); a map's epoch is its position. `MemDS`
answers a router's refresh with the latest map or, sometimes, one a few
epochs behind (its copy lags the metadata). A `Router` keeps its cached map
until a node tells it otherwise, and decides as router/router.py does,
with the same code: the route is `TableMap.route_for_hash`, the first
target the group's believed leader (learned from answers) else its first
member, and every decision after an attempt is router/retries.py
(`Attempts.after`):
- "moved" (the group was split) or "unknown group" (the node dropped it or
  has not built it yet; a production node would say moved: its catalogue
  routes the key to the split parent): nothing ran; refresh the map, back
  off (BACKOFF_S_MAP_MIN doubling to BACKOFF_S_MAP_MAX, router.py's), route
  again;
- "not leader": follow a hint naming another member at once; the node
  itself as the hint (lease pending): back off and ask it again; no hint:
  back off and try the next member;
- no answer in `attempt_timeout_ms`: a read backs off and tries the next
  member; a write's outcome is unknown, so the router gives up on it at once
  (production answers 500), as running it again could apply it after a
  newer write.
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

from triplica.model.partition_map import Route, TableMap
from triplica.router.retries import ANSWERED, MOVED, NOT_LEADER, TIMEOUT, Attempts, Outcome
from triplica.router.router import BACKOFF_S_MAP_MAX, BACKOFF_S_MAP_MIN
from triplica.sim.history import HistoryEvent
from triplica.sim.kv import Command
from triplica.sim.split_cluster import SplitCluster, group_key, key_position

TABLE = "t"
MAP_BACKOFF_MS_MIN = int(BACKOFF_S_MAP_MIN * 1000)
MAP_BACKOFF_MS_MAX = int(BACKOFF_S_MAP_MAX * 1000)


@dataclass(frozen=True)
class Partition:
    """A partition of the sim's key space [0, key_count): the control plane's and checks' view."""
    group: int
    start: int
    end: int


class PartitionMaps:
    """The committed maps of the one table (the metadata log's view of it)."""

    def __init__(self, key_count: int, members: tuple[int, ...]) -> None:
        self.key_count = key_count
        self.maps: list[TableMap] = [TableMap(TABLE, 0, "k", "S", None, None, (0,), (group_key(1),),
                                              (tuple(members),))]

    @property
    def latest_epoch(self) -> int:
        return len(self.maps) - 1

    def latest(self) -> tuple[Partition, ...]:
        table_map = self.maps[-1]
        return tuple(Partition(int(table_map.groups[i]), table_map.starts[i],
                               min(table_map.end_of(i), self.key_count))
                     for i in range(table_map.partition_count))

    def commit_split(self, parent: int, boundary: int, left: int, right: int) -> None:
        old = self.maps[-1]
        i = old.groups.index(group_key(parent))
        assert old.starts[i] < boundary < min(old.end_of(i), self.key_count), (parent, boundary, old)
        self.maps.append(TableMap(
            TABLE, len(self.maps), old.hash_key, old.hash_type, None, None,
            old.starts[:i + 1] + (boundary,) + old.starts[i + 1:],
            old.groups[:i] + (group_key(left), group_key(right)) + old.groups[i + 1:],
            old.members[:i] + (old.members[i], old.members[i]) + old.members[i + 1:]))

    def route(self, epoch: int, key: str) -> Route:
        return self.maps[epoch].route_for_hash(key_position(key))


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
    leaders: dict[str, int] = field(default_factory=dict)  # group key -> believed leader (router.py's)
    refreshes: int = 0

    def route(self, key: str) -> Route:
        return self.memds.maps.route(self.epoch, key)

    def refresh(self) -> None:
        self.epoch = self.memds.fetch()
        self.refreshes += 1

    def attempts(self, route: Route, read: bool) -> Attempts:
        """A request's attempts at its partition, as Router._target and _forward start them."""
        members = list(route.members)
        return Attempts(members, self.leaders.get(route.group, members[0]), read, frozenset(members))


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
    route: "Route | None" = None
    attempts: "Attempts | None" = None  # router/retries.py's decisions at `route`
    map_backoff_ms: int = MAP_BACKOFF_MS_MIN


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
        self._route(client)

    # ---------------------------------------------------------- attempts

    def _route(self, client: SplitClient) -> None:
        """Route (again) by the router's cached map; the attempts start at the believed leader."""
        op = client.operation
        assert op is not None
        op.route = client.router.route(op.key)
        op.attempts = client.router.attempts(op.route, op.kind == "strong_get")
        self._attempt(client)

    def _attempt(self, client: SplitClient) -> None:
        op = client.operation
        assert op is not None and op.route is not None and op.attempts is not None
        if self.cluster.now_ms - op.invoke_ms > self.settings.operation_deadline_ms:
            self._end(client, "failed", None)
            return
        op.attempt += 1
        attempt = op.attempt
        group, target = int(op.route.group), op.attempts.target
        if op.kind == "strong_get":
            request: tuple = ("strong_get", op.key)
        else:
            request = ("write", Command(client.client_id, op.seq, op.kind, op.key, op.value, op.expected))

        def reply(answer: Any) -> None:
            self.cluster.at(self._link_ms(), lambda: self._on_reply(client, op, attempt, answer))

        self.cluster.at(self._link_ms(), lambda: self.cluster.handle_client(target, group, request, reply))
        self.cluster.at(self.settings.attempt_timeout_ms, lambda: self._on_timeout(client, op, attempt))

    def _link_ms(self) -> int:
        return 1 + int(self.rng.expovariate(0.5))

    def _on_timeout(self, client: SplitClient, op: _Operation, attempt: int) -> None:
        if client.operation is not op or op.attempt != attempt:
            return
        self._after(client, op, Outcome(TIMEOUT), None)

    def _on_reply(self, client: SplitClient, op: _Operation, attempt: int, answer: Any) -> None:
        if client.operation is not op or op.attempt != attempt:
            return
        op.attempt += 1  # the pending timeout no longer counts
        status, payload = answer
        self.moved_answers += status == "moved"
        if status == "ok":
            outcome = Outcome(ANSWERED)
        elif status == "not_leader":
            outcome = Outcome(NOT_LEADER, payload)
        else:
            assert status in ("moved", "unknown_group"), status
            outcome = Outcome(MOVED)
        self._after(client, op, outcome, payload)

    def _after(self, client: SplitClient, op: _Operation, outcome: Outcome, payload: Any) -> None:
        """What Router._forward and _item_operation do with the decision."""
        assert op.route is not None and op.attempts is not None
        decision = op.attempts.after(outcome)
        if decision.done:
            client.router.leaders[op.route.group] = op.attempts.target
            self._complete(client, op, payload)
        elif decision.give_up:
            self._end(client, "unknown", None)  # it may have run: never run a write twice
        elif decision.refresh:
            client.router.refresh()
            delay = op.map_backoff_ms
            op.map_backoff_ms = min(MAP_BACKOFF_MS_MAX, op.map_backoff_ms * 2)
            self.cluster.at(delay, lambda: self._retry(client, op, route_again=True))
        elif decision.wait_s:
            self.cluster.at(int(decision.wait_s * 1000), lambda: self._retry(client, op))
        else:
            self._attempt(client)

    def _retry(self, client: SplitClient, op: _Operation, route_again: bool = False) -> None:
        if client.operation is op:
            if route_again:
                self._route(client)
            else:
                self._attempt(client)

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
