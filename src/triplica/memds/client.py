"""A router's channel to the MemDS fleet: calls spread round robin, failover on error.

Every MemDS server holds the whole map, so any one can answer any call.
Calls go to the servers in turn (the load spreads evenly); a call that
fails in transport is tried on the next server, servers that just failed
are tried last for SERVER_DOWN_S, and the whole call has CALL_DEADLINE_S
(each attempt at most ATTEMPT_DEADLINE_S, so one dead server can't eat the
deadline). A RemoteError (the server refused the request) is not retried:
every server would refuse it the same way.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from triplica.memds.map_store import Answer
from triplica.model.partition_map import HASH_SPACE_END, Route, TableMap
from triplica.transport.base import RemoteError, TransportError
from triplica.transport.tcp import TcpClient

CALL_DEADLINE_S = 2.0
ATTEMPT_DEADLINE_S = 0.5
SERVER_DOWN_S = 1.0
SERVERS_MAX = 100


class MemdsUnavailableError(TransportError):
    """No MemDS server answered within the call's deadline."""


@dataclass(frozen=True)
class TableAnswer:
    """A `table` call's result: the map (None: no such table) and its leader hints."""

    map: TableMap | None
    leaders: dict[str, int]


class MemdsClient:
    """Round-robin calls to MemDS servers with failover; close() when done."""

    def __init__(self, addresses: list[tuple[str, int]], *,
                 deadline_s: float = CALL_DEADLINE_S,
                 attempt_deadline_s: float = ATTEMPT_DEADLINE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        assert 1 <= len(addresses) <= SERVERS_MAX, len(addresses)
        assert 0 < attempt_deadline_s <= deadline_s
        self._clients = [TcpClient(str(host), int(port)) for host, port in addresses]
        self._deadline_s = deadline_s
        self._attempt_deadline_s = attempt_deadline_s
        self._clock = clock
        self._down_until_s = [0.0] * len(addresses)
        self._next = 0
        self.calls = 0
        self.failovers = 0

    async def lookup(self, table: str, key_hash: int) -> Answer | None:
        """Where `key_hash` of `table` lives, with a leader hint; None if no such table."""
        assert 0 <= key_hash < HASH_SPACE_END, key_hash
        reply = await self.call({"lookup": [table, key_hash]})
        if reply.get("missing"):
            return None
        end = reply["end"]
        route = Route(table=table, epoch=reply["epoch"], index=reply["index"],
                      hash_start=reply["start"],
                      hash_end=HASH_SPACE_END if end is None else end,
                      group=reply["group"], members=tuple(reply["members"]))
        return Answer(route, reply["leader"])

    async def table(self, name: str) -> TableAnswer:
        """The table's whole map (for a router's cache) and its leader hints."""
        reply = await self.call({"table": name})
        doc = reply["map"]
        return TableAnswer(TableMap.from_doc(doc) if doc is not None else None,
                           {str(g): int(n) for g, n in reply["leaders"].items()})

    async def stats(self) -> dict[str, Any]:
        """One server's counters (the next in turn)."""
        return await self.call({"stats": True})

    async def call(self, message: Any) -> Any:
        """Send `message` to the next server in turn, failing over within the deadline."""
        self.calls += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._deadline_s
        errors: list[str] = []
        for index in self._order():
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                break
            client = self._clients[index]
            try:
                return await client.call(message, min(remaining_s, self._attempt_deadline_s))
            except RemoteError:
                raise
            except TransportError as error:
                self.failovers += 1
                self._down_until_s[index] = self._clock() + SERVER_DOWN_S
                errors.append(f"{client.address[0]}:{client.address[1]}: {error}")
        raise MemdsUnavailableError("no MemDS server answered: " + "; ".join(errors)[:2000])

    def _order(self) -> list[int]:
        """Every server once, starting at the next in turn, recently failed ones last."""
        count = len(self._clients)
        start, self._next = self._next, (self._next + 1) % count
        rotation = [(start + step) % count for step in range(count)]
        now_s = self._clock()
        return sorted(rotation, key=lambda i: self._down_until_s[i] > now_s)

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self._clients))
