"""Simulated clients: sequential operations with timeouts, retries and a history.

Each client runs one operation at a time: put, conditional put (cas), strong
get (leader under a valid lease only) or eventual get (any full replica).
An attempt goes to the client's guess of the leader; "not leader" answers
carry a hint; a silent node is abandoned after `attempt_timeout_ms` for the
next one. An operation gives up after `operation_deadline_ms`.

History (`history`, strong gets and writes, for the linearizability
checker): a write whose every attempt was refused is left out (it certainly
did not happen); a write that may have reached a leader and never got an
answer is recorded with complete_ms=None; a strong get with no answer is left
out (it observed nothing). Eventual gets go to `eventual_history` only.

Values are unique per write ("c<client>s<seq>"), so a read result identifies
the write it observed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from triplica.sim.cluster import SimCluster
from triplica.sim.history import HistoryEvent
from triplica.sim.kv import Command

KEYS = ("k0", "k1", "k2")


@dataclass
class WorkloadSettings:
    clients: int = 3
    operations: int = 200
    attempt_timeout_ms: int = 300
    operation_deadline_ms: int = 4000
    think_ms_max: int = 20
    retry_backoff_ms: int = 15


@dataclass
class _Operation:
    kind: str  # put | cas | strong_get | eventual_get
    key: str
    value: "str | None"
    expected: "str | None"
    invoke_ms: int
    seq: int
    maybe_applied: bool = False
    attempt: int = 0
    followed_hint: bool = False  # the current target came from a not_leader hint


@dataclass
class SimClient:
    client_id: int
    workload: "Workload"
    target: int = 0
    seq: int = 0
    seen: dict[str, "str | None"] = field(default_factory=dict)
    operation: "_Operation | None" = None
    done: bool = False


class Workload:
    def __init__(self, cluster: SimCluster, rng: random.Random, settings: WorkloadSettings) -> None:
        self.cluster = cluster
        self.rng = rng
        self.settings = settings
        self.issued = 0
        self.stopped = False
        self.history: list[HistoryEvent] = []
        self.eventual_history: list[HistoryEvent] = []
        self.acked_writes: list[tuple[int, int, str, int]] = []  # client, seq, key, complete_ms
        self.clients = [SimClient(i + 1, self, target=rng.choice(sorted(cluster.nodes))) for i in range(settings.clients)]
        self.on_complete: "Callable[[SimClient, str, Any], None] | None" = None

    def start(self) -> None:
        for client in self.clients:
            self.cluster.at(self.rng.randrange(1, 50), lambda c=client: self._next(c))

    @property
    def finished(self) -> bool:
        return all(c.done for c in self.clients)

    def _next(self, client: SimClient) -> None:
        if self.stopped or self.issued >= self.settings.operations:
            client.done = True
            return
        self.issued += 1
        if self.rng.random() < 0.25:  # wander: clients do not all agree on who leads
            client.target = self.rng.choice(sorted(self.cluster.nodes))
        self.begin(client, self._choose(client))

    def _choose(self, client: SimClient) -> tuple[str, str, "str | None", "str | None"]:
        key = self.rng.choice(KEYS)
        roll = self.rng.random()
        if roll < 0.30:
            return ("put", key, None, None)
        if roll < 0.50:
            return ("cas", key, None, client.seen.get(key))
        if roll < 0.85:
            return ("strong_get", key, None, None)
        return ("eventual_get", key, None, None)

    def begin(self, client: SimClient, choice: tuple[str, str, "str | None", "str | None"]) -> None:
        kind, key, _, expected = choice
        client.seq += 1
        value = f"c{client.client_id}s{client.seq}" if kind in ("put", "cas") else None
        client.operation = _Operation(kind, key, value, expected, self.cluster.now_ms, client.seq)
        self._attempt(client)

    def _attempt(self, client: SimClient) -> None:
        op = client.operation
        assert op is not None
        if self.cluster.now_ms - op.invoke_ms > self.settings.operation_deadline_ms:
            self._give_up(client)
            return
        op.attempt += 1
        attempt = op.attempt
        target = client.target
        if op.kind in ("put", "cas"):
            request: tuple = ("write", Command(client.client_id, op.seq, op.kind, op.key, op.value, op.expected))
        else:
            request = (op.kind, op.key)

        def reply(answer: Any) -> None:
            self.cluster.at(self._link_ms(), lambda: self._on_reply(client, op, attempt, target, answer))

        self.cluster.at(self._link_ms(), lambda: self.cluster.handle_client(target, request, reply))
        self.cluster.at(self.settings.attempt_timeout_ms, lambda: self._on_timeout(client, op, attempt))

    def _link_ms(self) -> int:
        return 1 + int(self.rng.expovariate(0.5))

    def _on_timeout(self, client: SimClient, op: _Operation, attempt: int) -> None:
        if client.operation is not op or op.attempt != attempt:
            return
        if op.kind in ("put", "cas"):
            op.maybe_applied = True
        if op.followed_hint:
            # The hinted node did not answer: a random other node, not the next
            # one, or a stale node (removed without learning it) hinting at a
            # dead one would trap the client in a cycle between the two.
            others = [n for n in sorted(self.cluster.nodes) if n != client.target]
            client.target = self.rng.choice(others) if others else client.target
        else:
            client.target = self._other_node(client.target)
        op.followed_hint = False
        self._attempt(client)

    def _on_reply(self, client: SimClient, op: _Operation, attempt: int, target: int, answer: Any) -> None:
        if client.operation is not op or op.attempt != attempt:
            return
        status, payload = answer
        if status == "not_leader":
            hinted = payload is not None and payload != target
            client.target = payload if hinted else self._other_node(target)
            op.followed_hint = hinted
            op.attempt += 1  # invalidate the pending timeout
            self.cluster.at(self.settings.retry_backoff_ms, lambda: self._retry(client, op))
            return
        self._complete(client, op, payload)

    def _retry(self, client: SimClient, op: _Operation) -> None:
        if client.operation is op:
            self._attempt(client)

    def _other_node(self, node: int) -> int:
        nodes = sorted(self.cluster.nodes)
        return nodes[(nodes.index(node) + 1) % len(nodes)] if node in nodes else nodes[0]

    def _complete(self, client: SimClient, op: _Operation, payload: Any) -> None:
        now = self.cluster.now_ms
        if op.kind in ("put", "cas"):
            ok, previous = payload
            event = HistoryEvent(client.client_id, op.kind, op.key, op.value, op.expected, op.invoke_ms, now,
                                 bool(ok), previous if op.kind == "cas" else None)
            self.history.append(event)
            self.acked_writes.append((client.client_id, op.seq, op.key, now))
            client.seen[op.key] = op.value if ok else previous
        else:
            event = HistoryEvent(client.client_id, "get", op.key, None, None, op.invoke_ms, now, True, payload)
            (self.history if op.kind == "strong_get" else self.eventual_history).append(event)
            client.seen[op.key] = payload
        self._finish(client, op, "ok", payload)

    def _give_up(self, client: SimClient) -> None:
        op = client.operation
        assert op is not None
        if op.kind in ("put", "cas") and op.maybe_applied:
            self.history.append(HistoryEvent(client.client_id, op.kind, op.key, op.value, op.expected,
                                             op.invoke_ms, None, None, None))
        self._finish(client, op, "timeout", None)

    def _finish(self, client: SimClient, op: _Operation, status: str, payload: Any) -> None:
        client.operation = None
        if self.on_complete is not None:
            self.on_complete(client, status, payload)
            return
        self.cluster.at(self.rng.randrange(0, self.settings.think_ms_max + 1), lambda: self._next(client))
