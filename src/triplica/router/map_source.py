"""Where a router gets a table's partition map: the `MapSource` protocol and
`NodeMapSource`, which asks the storage nodes.

`MapSource.table_map(table)` returns the table's `TableMap` (memds/
partition_map.py) or None when no map can be had (unknown table, nobody
answering); `invalidate(table)` drops what the source remembers about the
table after the router saw an answer the map did not predict (the table was
deleted or recreated, say). A MemDS-backed cache (router/map_cache.py) has
the same interface; this one serves until the metadata system publishes maps.

`NodeMapSource` asks a node with the internal request `Triplica.PartitionMap`
(cluster/node.py answers it from the node's own catalogue, epoch 0) and keeps
each map MAP_TTL_S. A map only steers requests: a node resolves every key
against its own catalogue and redirects (421) when it does not lead, so a
stale map costs extra hops, never a wrong answer.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Callable, Mapping, Protocol, Sequence

import orjson

from triplica.cluster.http_client import NodePool, NodeUnreachableError, encode_request
from triplica.model.partition_map import TableMap
from triplica.common.internal import PARTITION_MAP_TARGET
from triplica.transport.base import TransportError

if TYPE_CHECKING:
    from triplica.router.map_cache import MapCache

log = logging.getLogger(__name__)

MAP_TTL_S = 30.0
MAP_FETCH_DEADLINE_S = 2.0
MAP_ATTEMPT_DEADLINE_S = 1.0
MAPS_CACHED_MAX = 10_000


class MapSource(Protocol):
    async def table_map(self, table: str) -> TableMap | None: ...

    def invalidate(self, table: str) -> None: ...


def partition_map_request(table: str) -> bytes:
    body = orjson.dumps({"TableName": table})
    return encode_request("/", {"host": "triplica-router", "x-amz-target": PARTITION_MAP_TARGET,
                                "content-type": "application/x-amz-json-1.0"}, body)


class NodeMapSource:
    """Partition maps asked of the nodes (each node in turn until one answers), cached."""

    def __init__(self, pools: Mapping[int, NodePool], order: Sequence[int],
                 ttl_s: float = MAP_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        assert order and all(node in pools for node in order)
        self._pools = pools
        self._order = list(order)
        self._ttl_s = ttl_s
        self._clock = clock
        self._maps: dict[str, tuple[float, TableMap]] = {}  # table -> (fetched at, map)
        self._next = 0
        self.fetches = 0

    async def table_map(self, table: str) -> TableMap | None:
        cached = self._maps.get(table)
        if cached is not None and self._clock() - cached[0] < self._ttl_s:
            return cached[1]
        table_map = await self._fetch(table)
        if table_map is None:
            self._maps.pop(table, None)
            return None
        if len(self._maps) >= MAPS_CACHED_MAX:  # bound: drop the oldest entry
            self._maps.pop(next(iter(self._maps)))
        self._maps[table] = (self._clock(), table_map)
        return table_map

    def invalidate(self, table: str) -> None:
        self._maps.pop(table, None)

    async def _fetch(self, table: str) -> TableMap | None:
        """Ask nodes in turn (at most one round); None for an unknown table or no answer."""
        self.fetches += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MAP_FETCH_DEADLINE_S
        data = partition_map_request(table)
        start, self._next = self._next, (self._next + 1) % len(self._order)
        for step in range(len(self._order)):
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                break
            node = self._order[(start + step) % len(self._order)]
            try:
                answer = await self._pools[node].request(
                    data, min(remaining_s, MAP_ATTEMPT_DEADLINE_S))
            except (NodeUnreachableError, TimeoutError) as error:
                log.info("partition map of %s: node %s unreachable: %s", table, node, error)
                continue
            if answer.status == 200:
                try:
                    return TableMap.from_doc(orjson.loads(answer.body))
                except (ValueError, KeyError, TypeError, AssertionError) as error:
                    log.warning("node %s sent a bad map of %s: %s", node, table, error)
                    continue
            if answer.status == 400:  # the table does not exist (as far as this node knows)
                return None
            log.info("partition map of %s: node %s answered %s", table, node, answer.status)
        return None


class MemdsFirstMaps:
    """Maps from MemDS through the router's constant-work cache (router/map_cache.py);
    from the nodes (NodeMapSource) only while no MemDS server answers a miss."""

    def __init__(self, cache: "MapCache", fallback: NodeMapSource) -> None:
        self.cache = cache
        self.fallback = fallback
        self.fallbacks = 0

    async def table_map(self, table: str) -> TableMap | None:
        try:
            return await self.cache.table_map(table)
        except TransportError as error:
            self.fallbacks += 1
            log.info("MemDS unavailable for %s (%s): asking the nodes", table, error)
            return await self.fallback.table_map(table)

    def invalidate(self, table: str) -> None:
        self.cache.invalidate(table)
        self.fallback.invalidate(table)

    def stats(self) -> dict[str, float]:
        cache = self.cache
        return {"requests": cache.requests, "hits": cache.hits, "misses": cache.misses,
                "memds_calls": cache.memds_calls, "shed": cache.shed,
                "memds_calls_per_request": cache.memds_calls_per_request,
                "fallbacks": self.fallbacks}

    async def close(self) -> None:
        await self.cache.close()
