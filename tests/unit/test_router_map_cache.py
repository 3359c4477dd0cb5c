"""The router's map cache does constant work: one MemDS call per request, warm or cold."""
from __future__ import annotations

import asyncio
import random

import pytest
import uvloop

from triplica.memds.client import MemdsClient, TableAnswer
from triplica.memds.map_store import Answer
from triplica.model.partition_map import HASH_SPACE_END, TableMap
from triplica.memds.server import MemdsService
from triplica.router.map_cache import MapCache
from triplica.transport.base import ConnectionLostError
from triplica.transport.tcp import TcpServer

TEST_DEADLINE_S = 20.0
REQUESTS = 200


def run(coro):
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(asyncio.wait_for(coro, TEST_DEADLINE_S))


def table_map(name: str, epoch: int, starts=(0, 1 << 62, 1 << 63)) -> TableMap:
    return TableMap(name=name, epoch=epoch, hash_key="pk", hash_type="S", range_key=None,
                    range_type=None, starts=tuple(starts),
                    groups=tuple(f"{name}-g{i}" for i in range(len(starts))),
                    members=tuple((1, 2, 3) for _ in starts))


class FakeMemds:
    """Answers from a dict of maps; counts calls; can hold lookups or fail them."""

    def __init__(self, maps: dict[str, TableMap]) -> None:
        self.maps = maps
        self.leaders: dict[str, int] = {}
        self.lookups = 0
        self.tables = 0
        self.gate: asyncio.Event | None = None
        self.fail_lookups = False

    async def lookup(self, table: str, key_hash: int) -> Answer | None:
        self.lookups += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_lookups:
            raise ConnectionLostError("MemDS went away")
        found = self.maps.get(table)
        if found is None:
            return None
        route = found.route_for_hash(key_hash)
        return Answer(route, self.leaders.get(route.group))

    async def table(self, name: str) -> TableAnswer:
        self.tables += 1
        return TableAnswer(self.maps.get(name), dict(self.leaders))

    @property
    def calls(self) -> int:
        return self.lookups + self.tables


def workload(seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(rng.choice(("a", "b", "c")), rng.randrange(HASH_SPACE_END))
            for _ in range(REQUESTS)]


async def play(cache: MapCache, requests, wipe_at: int | None = None) -> None:
    for i, (table, key_hash) in enumerate(requests):
        if i == wipe_at:
            cache.wipe()
        route = await cache.route(table, key_hash)
        assert route is not None and route.hash_start <= key_hash < route.hash_end
        await asyncio.sleep(0)  # let background calls run, as a busy router would


@pytest.mark.parametrize("mode", ["warm", "cold", "wiped halfway"])
def test_one_memds_call_per_request_whatever_the_cache_holds(mode):
    async def scenario():
        memds = FakeMemds({name: table_map(name, 1) for name in "abc"})
        cache = MapCache(memds)
        if mode == "warm":
            for name in "abc":
                await cache.table_map(name)
            await cache.drain()
            cache.requests = cache.hits = cache.misses = cache.memds_calls = 0
            memds.lookups = memds.tables = 0
        await play(cache, workload(7), wipe_at=REQUESTS // 2 if mode == "wiped halfway" else None)
        await cache.drain()
        assert cache.requests == REQUESTS
        assert cache.memds_calls == REQUESTS and memds.calls == REQUESTS
        assert cache.memds_calls_per_request == 1.0 and cache.shed == 0
        assert cache.hits + cache.misses == REQUESTS
        expected_misses = {"warm": 0, "cold": 3, "wiped halfway": 6}[mode]
        assert cache.misses == memds.tables == expected_misses
        await cache.close()

    run(scenario())


def test_hit_finds_newer_epoch_and_next_call_refetches():
    async def scenario():
        memds = FakeMemds({"a": table_map("a", 1)})
        cache = MapCache(memds)
        assert (await cache.route("a", 5)).epoch == 1
        memds.maps["a"] = table_map("a", 4, starts=(0, 10))
        assert (await cache.route("a", 50)).epoch == 1      # hit: the cached answer at once
        await cache.drain()
        assert cache.stale_found == 1
        route = await cache.route("a", 50)                   # miss: the new map
        assert (route.epoch, route.index, cache.misses) == (4, 1, 2)
        del memds.maps["a"]
        assert (await cache.route("a", 50)).epoch == 4
        await cache.drain()
        assert await cache.route("a", 50) is None            # the table is gone
        assert await cache.table_map("a") is None
        assert cache.memds_calls == cache.requests == 6
        await cache.close()

    run(scenario())


def test_older_background_answer_does_not_drop_a_newer_map():
    async def scenario():
        memds = FakeMemds({"a": table_map("a", 3)})
        cache = MapCache(memds)
        await cache.table_map("a")
        memds.maps["a"] = table_map("a", 2)      # a lagging MemDS server
        await cache.route("a", 1)
        await cache.drain()
        assert cache.stale_found == 0 and (await cache.table_map("a")).epoch == 3
        await cache.close()

    run(scenario())


def test_background_calls_past_the_bound_are_shed():
    async def scenario():
        memds = FakeMemds({"a": table_map("a", 1)})
        memds.gate = asyncio.Event()
        cache = MapCache(memds, background_calls_max=2)
        await cache.table_map("a")
        for _ in range(5):
            await cache.route("a", 9)
            await asyncio.sleep(0)
        assert cache.background_in_flight == 2 and cache.shed == 3
        assert cache.memds_calls + cache.shed == cache.requests == 6
        assert cache.memds_calls_per_request == pytest.approx(3 / 6)
        memds.gate.set()
        await cache.drain()
        assert memds.lookups == 2 and cache.background_in_flight == 0
        await cache.close()

    run(scenario())


def test_background_failures_are_counted_and_keep_the_cache():
    async def scenario():
        memds = FakeMemds({"a": table_map("a", 1)})
        cache = MapCache(memds)
        await cache.table_map("a")
        memds.fail_lookups = True
        for _ in range(3):
            assert (await cache.route("a", 1)).epoch == 1
        await cache.drain()
        assert cache.background_errors == 3 and cache.hits == 3
        await cache.close()

    run(scenario())


def test_invalidate_wipe_and_leader_hints():
    async def scenario():
        memds = FakeMemds({"a": table_map("a", 1)})
        memds.leaders = {"a-g0": 2}
        cache = MapCache(memds)
        await cache.route("a", 0)
        assert cache.leader_of("a-g0") == 2 and cache.leader_of("a-g1") is None
        cache.note_leader("a-g0", 3)                # learned from a redirect: wins
        assert cache.leader_of("a-g0") == 3
        cache.invalidate("a")
        await cache.route("a", 0)
        assert cache.misses == 2
        cache.wipe()
        assert cache.leader_of("a-g0") is None
        await cache.route("a", 0)
        assert cache.misses == 3 and cache.memds_calls == 3
        await cache.close()

    run(scenario())


def test_cached_tables_are_bounded():
    async def scenario():
        memds = FakeMemds({name: table_map(name, 1) for name in "abcd"})
        cache = MapCache(memds, tables_max=2)
        for name in "abcd":
            await cache.table_map(name)
        await cache.table_map("d")
        await cache.table_map("a")
        assert (cache.hits, cache.misses) == (1, 5)
        await cache.close()

    run(scenario())


@pytest.mark.parametrize("mode", ["warm", "cold", "wiped halfway"])
def test_constant_work_against_a_real_memds_server(mode):
    """MemDS's own counter grows by exactly one per router request."""
    async def scenario():
        service = MemdsService()
        service.answer({"map_changes": [
            {"epoch": i + 1, "table": name, "map": table_map(name, i + 1).to_doc()}
            for i, name in enumerate("abc")]})
        server = TcpServer("127.0.0.1", 0, service.handle)
        await server.start()
        client = MemdsClient([server.address])
        cache = MapCache(client)
        try:
            if mode == "warm":
                for name in "abc":
                    await cache.table_map(name)
                await cache.drain()
            cache_before, served_before = cache.memds_calls, service.lookups
            await play(cache, workload(11),
                       wipe_at=REQUESTS // 2 if mode == "wiped halfway" else None)
            await cache.drain()
            assert cache.memds_calls - cache_before == REQUESTS
            assert service.lookups - served_before == REQUESTS
            assert cache.shed == 0 and cache.background_errors == 0
        finally:
            await cache.close()
            await client.close()
            await server.close()

    run(scenario())
