"""MemDS: the map store's ordering rules, the service, client and feed over real TCP."""
from __future__ import annotations

import asyncio
import bisect
import json
import os
import signal
import sys

import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from triplica.memds.client import MemdsClient, MemdsUnavailableError
from triplica.memds.feed import (
    CHANGES_PER_FETCH_MAX,
    FeedReplyError,
    FeedUnavailableError,
    NodeFeed,
    check_reply,
    run_feed,
)
from triplica.memds.map_store import ChangeError, MapStore, StoreFullError
from triplica.model.partition_map import HASH_SPACE_END, TableMap
from triplica.memds.server import MemdsService, load_config
from triplica.transport.base import RemoteError
from triplica.transport.tcp import TcpServer

TEST_DEADLINE_S = 20.0
WAIT_STEP_S = 0.02


def run(coro):
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(asyncio.wait_for(coro, TEST_DEADLINE_S))


def table_map(name: str, epoch: int, starts=(0,), members=(1, 2, 3)) -> TableMap:
    return TableMap(name=name, epoch=epoch, hash_key="pk", hash_type="S", range_key=None,
                    range_type=None, starts=tuple(starts),
                    groups=tuple(f"{name}-g{i}" for i in range(len(starts))),
                    members=tuple(tuple(members) for _ in starts))


def put(name: str, epoch: int, starts=(0,), members=(1, 2, 3)) -> dict:
    return {"epoch": epoch, "table": name, "map": table_map(name, epoch, starts, members).to_doc()}


def delete(name: str, epoch: int) -> dict:
    return {"epoch": epoch, "table": name, "map": None}


def state_of(store: MapStore) -> dict:
    return {name: store.table(name).to_doc() for name in sorted(store.tables())}


async def wait_until(predicate, what: str, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / WAIT_STEP_S)):
        if predicate():
            return
        await asyncio.sleep(WAIT_STEP_S)
    raise AssertionError(f"timed out waiting for {what}")


# -- MapStore ----------------------------------------------------------------

TABLE_NAMES = ("a", "b", "c")


@st.composite
def deliveries(draw):
    """Distinct changes (one per epoch), then a delivery with repeats and any order."""
    epochs = draw(st.lists(st.integers(1, 40), min_size=1, max_size=15, unique=True))
    changes = {}
    for epoch in epochs:
        name = draw(st.sampled_from(TABLE_NAMES))
        if draw(st.booleans()):
            changes[epoch] = delete(name, epoch)
        else:
            starts = sorted(set([0] + draw(st.lists(st.integers(1, 1000), max_size=3))))
            changes[epoch] = put(name, epoch, starts)
    delivered = draw(st.lists(st.sampled_from(sorted(changes)), max_size=30))
    delivered = draw(st.permutations(delivered + sorted(changes)))
    return changes, [changes[epoch] for epoch in delivered]


@settings(max_examples=300, deadline=None)
@given(deliveries())
def test_store_end_state_is_the_epoch_ordered_application(case):
    changes, delivered = case
    store = MapStore()
    applied = sum(store.apply(change) for change in delivered)
    reference = MapStore()
    for epoch in sorted(changes):
        assert reference.apply(changes[epoch])
    assert state_of(store) == state_of(reference)
    assert store.epoch == reference.epoch == max(changes)
    assert applied == store.applied <= len(changes)
    assert store.ignored == len(delivered) - applied
    # The model: per table, the change with the highest epoch decides.
    newest = {}
    for epoch in sorted(changes):
        newest[changes[epoch]["table"]] = changes[epoch]
    expected = {name: c["map"] for name, c in newest.items() if c["map"] is not None}
    assert state_of(store) == dict(sorted(expected.items()))


def test_store_ignores_redelivered_and_older_changes():
    store = MapStore()
    assert store.apply(put("a", 5))
    assert not store.apply(put("a", 5))
    assert not store.apply(put("a", 3, starts=(0, 9)))
    assert store.table("a").starts == (0,)
    assert store.apply(delete("a", 7))
    assert not store.apply(put("a", 6))          # older than the deletion: stays deleted
    assert store.table("a") is None
    assert store.apply(put("a", 8, starts=(0, 9)))
    assert store.table("a").starts == (0, 9)
    assert (store.applied, store.ignored, store.epoch) == (3, 3, 8)


def test_store_forgets_oldest_tombstone_but_still_refuses_older_creates():
    store = MapStore(tombstones_max=2)
    for epoch, name in ((1, "a"), (2, "b"), (3, "c")):
        store.apply(put(name, epoch))
    for epoch, name in ((4, "a"), (5, "b"), (6, "c")):
        assert store.apply(delete(name, epoch))
    assert store.forgotten_epoch == 4
    assert not store.apply(put("a", 1))           # re-delivered create of a deleted table
    assert not store.apply(put("new", 4))
    assert store.apply(put("new", 7))
    assert store.tables() == ["new"]


def test_store_refuses_more_than_tables_max():
    store = MapStore(tables_max=2)
    store.apply(put("a", 1))
    store.apply(put("b", 2))
    with pytest.raises(StoreFullError):
        store.apply(put("c", 3))
    assert store.apply(put("a", 4, starts=(0, 5)))  # replacing a table is fine
    assert store.apply(delete("b", 5)) and store.apply(put("c", 6))
    assert sorted(store.tables()) == ["a", "c"]


@pytest.mark.parametrize("change", [
    None, [], {"epoch": 0, "table": "a", "map": None}, {"epoch": True, "table": "a", "map": None},
    {"epoch": 1, "table": "", "map": None}, {"epoch": 1, "table": 5, "map": None},
    {"epoch": 1, "table": "a", "map": {"name": "a"}},
    {"epoch": 1, "table": "a", "map": table_map("b", 1).to_doc()},
    {"epoch": 1, "table": "a", "map": dict(table_map("a", 1).to_doc(),
                                           partitions=[{"start": 5, "group": "g", "members": []}])},
])
def test_store_rejects_malformed_changes(change):
    store = MapStore()
    with pytest.raises(ChangeError):
        store.apply(change)
    assert store.epoch == 0 and store.tables() == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, HASH_SPACE_END - 1), max_size=40, unique=True),
       st.lists(st.integers(0, HASH_SPACE_END - 1), min_size=1, max_size=20))
def test_lookup_matches_a_brute_force_search(more_starts, hashes):
    starts = sorted([0] + more_starts)
    store = MapStore()
    store.apply(put("t", 1, starts))
    for key_hash in hashes + [0, HASH_SPACE_END - 1] + starts:
        index = max(i for i, start in enumerate(starts) if start <= key_hash)
        answer = store.lookup("t", key_hash)
        assert answer.route.index == index
        assert answer.route.hash_start == starts[index]
        end = starts[index + 1] if index + 1 < len(starts) else HASH_SPACE_END
        assert answer.route.hash_end == end
        assert answer.route.group == f"t-g{index}"
        assert index == bisect.bisect_right(starts, key_hash) - 1
    assert store.lookup("other", 0) is None


def test_leader_hint_keeps_highest_term_and_only_for_members():
    store = MapStore()
    store.apply(put("t", 1, starts=(0, 100), members=(1, 2, 3)))
    assert store.lookup("t", 5).leader is None
    assert store.note_leader("t-g0", 2, term=7)
    assert not store.note_leader("t-g0", 3, term=6)
    assert not store.note_leader("t-g0", 3, term=7)
    assert store.lookup("t", 5).leader == 2
    assert store.lookup("t", 500).leader is None
    assert store.note_leader("t-g0", 9, term=8)          # not a member: not returned
    assert store.lookup("t", 5).leader is None
    assert store.leaders_of("t") == {}
    assert store.note_leader("t-g1", 3, term=1)
    assert store.leaders_of("t") == {"t-g1": 3}


def test_leader_hints_are_bounded_and_prune_dead_groups():
    store = MapStore(leader_hints_max=2)
    store.apply(put("t", 1, starts=(0, 100)))
    assert store.note_leader("gone", 1, 1)
    assert store.note_leader("t-g0", 1, 1)
    assert store.note_leader("t-g1", 2, 1)             # prunes "gone"
    assert not store.note_leader("also-gone", 1, 1)    # both live: refused
    assert store.leader_hints_refused == 1
    assert store.leaders_of("t") == {"t-g0": 1, "t-g1": 2}


# -- MemdsService (no sockets) -------------------------------------------------

def test_service_answers_lookup_table_push_leader_and_stats():
    service = MemdsService()
    assert service.answer({"map_changes": [put("t", 3, starts=(0, 1 << 63))]}) == {"epoch": 3}
    assert service.answer({"leader": ["t-g1", 2, 4]}) == {}
    assert service.answer({"lookup": ["t", 1 << 63]}) == {
        "epoch": 3, "index": 1, "start": 1 << 63, "end": None, "group": "t-g1",
        "members": [1, 2, 3], "leader": 2}
    first = service.answer({"lookup": ["t", 0]})
    assert (first["end"], first["leader"]) == (1 << 63, None)
    assert service.answer({"lookup": ["nope", 0]}) == {"missing": True}
    reply = service.answer({"table": "t"})
    assert TableMap.from_doc(reply["map"]) == table_map("t", 3, starts=(0, 1 << 63))
    assert reply["leaders"] == {"t-g1": 2}
    assert service.answer({"table": "nope"}) == {"map": None, "leaders": {}}
    stats = service.answer({"stats": True})
    assert (stats["lookups"], stats["tables"], stats["epoch"]) == (5, 1, 3)


@pytest.mark.parametrize("request_body", [
    None, {}, {"lookup": ["t", 0], "stats": True}, {"nope": 1}, {"lookup": ["t"]},
    {"lookup": ["t", -1]}, {"lookup": ["t", 1.5]}, {"table": 3}, {"leader": ["g", 1]},
    {"map_changes": {"epoch": 1}}, {"map_changes": [{"epoch": 1}]},
])
def test_service_rejects_malformed_requests(request_body):
    service = MemdsService()
    with pytest.raises(ChangeError):
        service.answer(request_body)
    assert service.lookups == 0 and service.store.epoch == 0


# -- server and client over TCP ------------------------------------------------

async def start_servers(count: int, changes: list[dict]) -> tuple[list, list]:
    services, servers = [], []
    for _ in range(count):
        service = MemdsService()
        service.answer({"map_changes": changes})
        server = TcpServer("127.0.0.1", 0, service.handle)
        await server.start()
        services.append(service)
        servers.append(server)
    return services, servers


def test_client_spreads_calls_round_robin_and_fails_over():
    async def scenario():
        services, servers = await start_servers(3, [put("t", 2, starts=(0, 1000))])
        client = MemdsClient([s.address for s in servers], attempt_deadline_s=0.3)
        try:
            for key_hash in range(30):
                answer = await client.lookup("t", key_hash * 100)
                assert answer.route.index == (0 if key_hash < 10 else 1)
                assert answer.route.epoch == 2
            assert [s.lookups for s in services] == [10, 10, 10]
            table = await client.table("t")
            assert table.map == table_map("t", 2, starts=(0, 1000)) and table.leaders == {}
            assert await client.lookup("nope", 1) is None
            before_close = services[1].lookups
            await servers[1].close()
            for _ in range(12):
                assert (await client.lookup("t", 5)).route.index == 0
            assert services[1].lookups == before_close and client.failovers >= 1
            assert sum(s.lookups for s in services) == 30 + 2 + 12
            with pytest.raises(RemoteError):
                await client.call({"nope": 1})
            stats = await client.stats()
            assert stats["tables"] == 1 and stats["epoch"] == 2
            for server in servers:
                await server.close()
            with pytest.raises(MemdsUnavailableError):
                await client.lookup("t", 5)
        finally:
            await client.close()
            for server in servers:
                await server.close()

    run(scenario())


# -- feed from (fake) storage nodes ----------------------------------------------

class FakeNode:
    """A storage node's map_changes_after answer over a scripted log."""

    def __init__(self, log: list[dict], reply=None) -> None:
        self.log = log
        self.reply = reply
        self.asked: list[int] = []
        self.server = TcpServer("127.0.0.1", 0, self.handle)

    async def handle(self, message):
        after = message["map_changes_after"]
        self.asked.append(after)
        if self.reply is not None:
            return self.reply
        return {"changes": [c for c in self.log if c["epoch"] > after]}


def test_feed_polls_nodes_in_order_and_applies_changes():
    async def scenario():
        log = [put("a", 1), put("b", 2), put("a", 3, starts=(0, 50)), delete("b", 4)]
        dead = FakeNode([])
        await dead.server.start()
        dead_address = dead.server.address
        await dead.server.close()
        liar = FakeNode([], reply={"changes": [put("x", 9), put("y", 8)]})
        node = FakeNode(log)
        await liar.server.start()
        await node.server.start()
        feed = NodeFeed([dead_address, liar.server.address, node.server.address],
                        deadline_s=0.3)
        store = MapStore()
        stop = asyncio.Event()
        feeding = asyncio.create_task(run_feed(store, feed, 0.05, stop))
        try:
            await wait_until(lambda: store.feed_epoch == 4, "the feed to reach epoch 4")
            assert store.tables() == ["a"] and store.table("a").starts == (0, 50)
            assert liar.asked == [0] and store.table("x") is None
            node.log.append(put("c", 5))
            await wait_until(lambda: store.table("c") is not None, "epoch 5 to be polled")
            assert node.asked[-1] >= 4 and feed.node_failures == 2
            stop.set()
            await asyncio.wait_for(feeding, 2.0)
        finally:
            feeding.cancel()
            await feed.close()
            await liar.server.close()
            await node.server.close()

    run(scenario())


def test_feed_catches_up_in_full_batches_and_stops_before_a_bad_change():
    async def scenario():
        count = CHANGES_PER_FETCH_MAX * 2 + 5
        log = [put(f"t{i % 7}", i) for i in range(1, count + 1)]
        log.append({"epoch": count + 1, "table": "bad", "map": {"oops": 1}})
        log.append(put("after-bad", count + 2))
        node = FakeNode(log)
        await node.server.start()
        feed = NodeFeed([node.server.address])
        store = MapStore()
        stop = asyncio.Event()
        feeding = asyncio.create_task(run_feed(store, feed, 5.0, stop))
        try:
            # A poll interval of 5 s: reaching the end fast proves full batches refetch at once.
            await wait_until(lambda: store.feed_epoch == count, "catch-up", timeout_s=3.0)
            await asyncio.sleep(0.1)
            assert store.feed_epoch == count and store.table("after-bad") is None
            assert node.asked[:3] == [0, CHANGES_PER_FETCH_MAX, CHANGES_PER_FETCH_MAX * 2]
            stop.set()
            await asyncio.wait_for(feeding, 2.0)
        finally:
            feeding.cancel()
            await feed.close()
            await node.server.close()

    run(scenario())


def test_check_reply_bounds_and_validates():
    changes = [put("t", i) for i in range(1, CHANGES_PER_FETCH_MAX + 50)]
    assert len(check_reply({"changes": changes}, 0)) == CHANGES_PER_FETCH_MAX
    assert check_reply({"changes": []}, 7) == []
    for bad in (None, [], {"changes": None}, {"changes": [put("t", 3)]},
                {"changes": [put("t", 9), put("t", 9)]}, {"changes": [{"epoch": "9"}]}):
        with pytest.raises(FeedReplyError):
            check_reply(bad, 3)


def test_feed_with_no_live_node_raises():
    async def scenario():
        node = FakeNode([])
        await node.server.start()
        address = node.server.address
        await node.server.close()
        feed = NodeFeed([address], deadline_s=0.2)
        try:
            with pytest.raises(FeedUnavailableError):
                await feed.fetch(0)
        finally:
            await feed.close()

    run(scenario())


# -- the server process ------------------------------------------------------------

def test_server_process_feeds_serves_and_stops_on_sigterm(tmp_path):
    async def scenario():
        node = FakeNode([put("t", 1, starts=(0, 1 << 40)), put("u", 2)])
        await node.server.start()
        config = {"listen_host": "127.0.0.1", "port": 0, "poll_s": 0.05,
                  "nodes": [{"host": "127.0.0.1", "peer_port": node.server.address[1]}]}
        path = tmp_path / "memds.json"
        path.write_text(json.dumps(config))
        assert load_config(str(path)).nodes == (("127.0.0.1", node.server.address[1]),)
        src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
        env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "triplica.memds.server", "--config", str(path),
            stdout=asyncio.subprocess.PIPE, env=env)
        client = None
        try:
            line = (await asyncio.wait_for(process.stdout.readline(), 10.0)).decode()
            assert line.startswith("memds listening on 127.0.0.1:"), line
            port = int(line.rsplit(":", 1)[1])
            client = MemdsClient([("127.0.0.1", port)])
            for _ in range(250):
                stats = await client.stats()
                if stats["epoch"] == 2:
                    break
                await asyncio.sleep(WAIT_STEP_S)
            assert stats["tables"] == 2 and stats["epoch"] == 2
            assert (await client.lookup("t", 1 << 41)).route.index == 1
            assert (await client.stats())["lookups"] == 1
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 10.0) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            if client is not None:
                await client.close()
            await node.server.close()

    run(scenario())


def test_load_config_rejects_bad_files(tmp_path):
    path = tmp_path / "bad.json"
    for doc in ({"port": 1, "nodes": []}, {"nodes": [{"host": "h", "peer_port": 1}]},
                {"port": 1, "poll_s": 0.001, "nodes": [{"host": "h", "peer_port": 1}]}):
        path.write_text(json.dumps(doc))
        with pytest.raises(ValueError):
            load_config(str(path))
