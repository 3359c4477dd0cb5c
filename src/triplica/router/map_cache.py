"""The router's partition map cache, built so that MemDS load never depends on it.

Paper (DynamoDB, 2022, section on MemDS): a router cache that only asks
MemDS on a miss makes the system bimodal, since a cold or wiped cache
turns every request into a MemDS call at once. So this cache asks MemDS on
every request, hit or miss:
- hit: the cached answer is returned at once AND one background `lookup`
  call goes to MemDS; if MemDS answers with a newer epoch for the table (or
  says the table is gone) the cached map is dropped, so the next request
  misses and fetches the new map;
- miss: the caller awaits one `table` call, which caches the table's whole
  map (every later key of the table hits).
Either way a request costs exactly one MemDS call, whatever the cache holds:
`memds_calls == requests` for a warm cache, a cold one, or one wiped midway.

The one exception is shedding: at most `background_calls_max` background
calls are in flight; a hit past that bound makes no call and counts in
`shed` (so `memds_calls + shed == requests`). The bound keeps a slow MemDS
from piling up unbounded tasks in the router; a nonzero `shed` says MemDS is
not keeping up.

Leader hints: `note_leader` records what the router learned from a redirect
and wins over MemDS's hint (from `table` and `lookup` answers), which is
used when the router has none of its own.

Every background task is owned here: `close()` cancels and awaits them.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from triplica.memds.map_store import Answer
from triplica.model.partition_map import HASH_SPACE_END, Route, TableMap
from triplica.transport.base import TransportError

log = logging.getLogger(__name__)

BACKGROUND_CALLS_MAX = 1024
CACHED_TABLES_MAX = 10_000
LEADER_HINTS_MAX = 100_000
DRAIN_S_MAX = 10.0


class TableAnswerLike(Protocol):
    map: TableMap | None
    leaders: dict[str, int]


class MemdsLookups(Protocol):
    """What the cache needs from MemDS (memds/client.py's MemdsClient, or a fake)."""

    async def lookup(self, table: str, key_hash: int) -> Answer | None: ...

    async def table(self, name: str) -> TableAnswerLike: ...


class MapCache:
    """Per-router cache of table maps that sends one MemDS call per request."""

    def __init__(self, client: MemdsLookups, *,
                 background_calls_max: int = BACKGROUND_CALLS_MAX,
                 tables_max: int = CACHED_TABLES_MAX,
                 leader_hints_max: int = LEADER_HINTS_MAX) -> None:
        assert background_calls_max >= 1 and tables_max >= 1 and leader_hints_max >= 1
        self._client = client
        self._background_calls_max = background_calls_max
        self._tables_max = tables_max
        self._leader_hints_max = leader_hints_max
        self._tables: dict[str, TableMap] = {}
        self._redirect_leaders: dict[str, int] = {}
        self._memds_leaders: dict[str, int] = {}
        self._background: set[asyncio.Task] = set()
        self.requests = 0
        self.hits = 0
        self.misses = 0
        self.memds_calls = 0
        self.shed = 0
        self.background_errors = 0
        self.stale_found = 0

    @property
    def memds_calls_per_request(self) -> float:
        return self.memds_calls / self.requests if self.requests else 0.0

    @property
    def background_in_flight(self) -> int:
        return len(self._background)

    async def route(self, table: str, key_hash: int) -> Route | None:
        """The partition of `table` holding `key_hash`; None if MemDS knows no such table."""
        assert 0 <= key_hash < HASH_SPACE_END, key_hash
        table_map = await self._table_map(table, key_hash)
        return table_map.route_for_hash(key_hash) if table_map is not None else None

    async def table_map(self, table: str) -> TableMap | None:
        """The table's whole map (Query/Scan stitching); None if no such table."""
        return await self._table_map(table, 0)

    async def _table_map(self, table: str, key_hash: int) -> TableMap | None:
        self.requests += 1
        cached = self._tables.get(table)
        if cached is not None:
            self.hits += 1
            self._check_in_background(table, key_hash)
            return cached
        self.misses += 1
        return await self._fetch(table)

    async def _fetch(self, table: str) -> TableMap | None:
        self.memds_calls += 1
        answer = await self._client.table(table)
        self._note_memds_leaders(answer.leaders)
        if answer.map is None:
            self._tables.pop(table, None)
            return None
        cached = self._tables.get(table)
        if cached is not None and cached.epoch >= answer.map.epoch:
            return cached  # a concurrent miss cached a map at least as new
        self._cache(table, answer.map)
        return answer.map

    def _cache(self, table: str, table_map: TableMap) -> None:
        assert table_map.name == table, (table_map.name, table)
        self._tables.pop(table, None)
        while len(self._tables) >= self._tables_max:
            del self._tables[next(iter(self._tables))]  # the longest cached goes first
        self._tables[table] = table_map

    def _check_in_background(self, table: str, key_hash: int) -> None:
        if len(self._background) >= self._background_calls_max:
            self.shed += 1
            return
        self.memds_calls += 1
        task = asyncio.create_task(self._check(table, key_hash))
        self._background.add(task)
        task.add_done_callback(self._background_done)

    async def _check(self, table: str, key_hash: int) -> None:
        """Drop the cached map if MemDS has a newer one (or none): the next call refetches."""
        try:
            answer = await self._client.lookup(table, key_hash)
        except TransportError as error:
            self.background_errors += 1
            log.debug("background MemDS lookup of %s failed: %s", table, error)
            return
        cached = self._tables.get(table)
        if answer is not None and answer.leader is not None:
            self._note_memds_leaders({answer.route.group: answer.leader})
        if cached is None:
            return
        if answer is None or answer.route.epoch > cached.epoch:
            self.stale_found += 1
            del self._tables[table]

    def _background_done(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background MemDS check failed", exc_info=task.exception())

    def invalidate(self, table: str) -> None:
        """A route of `table` proved stale (a node refused it): the next call misses."""
        self._tables.pop(table, None)

    def wipe(self) -> None:
        """Forget everything (a restart or a test); MemDS load does not change."""
        self._tables.clear()
        self._redirect_leaders.clear()
        self._memds_leaders.clear()

    def note_leader(self, group: str, node_id: int) -> None:
        """Remember the leader a node redirected us to; it wins over MemDS's hint."""
        _bounded_put(self._redirect_leaders, group, node_id, self._leader_hints_max)

    def leader_of(self, group: str) -> int | None:
        leader = self._redirect_leaders.get(group)
        return leader if leader is not None else self._memds_leaders.get(group)

    def _note_memds_leaders(self, leaders: dict[str, int]) -> None:
        for group, node_id in leaders.items():
            _bounded_put(self._memds_leaders, group, node_id, self._leader_hints_max)

    async def drain(self, timeout_s: float = DRAIN_S_MAX) -> None:
        """Wait (bounded) until the background calls in flight have finished."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout_s)

    async def close(self) -> None:
        """Cancel and await every background call."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _bounded_put(hints: dict[str, int], group: str, node_id: int, entries_max: int) -> None:
    hints.pop(group, None)
    while len(hints) >= entries_max:
        del hints[next(iter(hints))]
    hints[group] = node_id
