"""A MemDS service in the router's own process, asked without a network hop.

`triplica serve` hosts every role in one process: its MemDS service is fed
exactly as a MemDS server is (pushes from the metadata leader over the
in-process network, and the feed polling the nodes), and its router asks it
through `LocalMemds`, which answers at once: `lookup_now` lets the router's
cache make its one MemDS lookup per request inline (router/map_cache.py),
so the lookup stays constant work without a task per request. Every lookup
counts in the service's `lookups`, as on a server.
"""
from __future__ import annotations

from triplica.memds.client import TableAnswer
from triplica.memds.map_store import Answer
from triplica.memds.server import MemdsService


class LocalMemds:
    def __init__(self, service: MemdsService) -> None:
        self.service = service

    def lookup_now(self, table: str, key_hash: int) -> Answer | None:
        self.service.lookups += 1
        return self.service.store.lookup(table, key_hash)

    async def lookup(self, table: str, key_hash: int) -> Answer | None:
        return self.lookup_now(table, key_hash)

    async def table(self, name: str) -> TableAnswer:
        self.service.lookups += 1
        store = self.service.store
        return TableAnswer(store.table(name), dict(store.leaders_of(name)))

    async def close(self) -> None:
        return None
