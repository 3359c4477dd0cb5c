"""Global index state in real stores: outbox, backfill, trim, cursors, fences, splits.

A base PartitionStore applies item writes and index operations; a
"propagation" built from engine/index_batches.py moves outbox runs into index
stores (one per index table partition) as cursor entries, the way the node's
propagator does, with retries, re-deliveries and late batches. The check is
independent of the indexing code's bookkeeping: the index stores' items must
equal the entries computed from the base store's items by the definition.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triplica.engine.global_index_keys import GlobalIndex, GlobalIndexer, indexer_of
from triplica.engine.index_batches import (adopt_entry, backfill_entry, cursor_entry, cut,
                                           drop_entry, run_of, trim_entry)
from triplica.engine.item_images import encode_image
from triplica.engine.log_entries import decode_entry, encode_entry, stored_item_size
from triplica.model.keys import encode_storage_key
from triplica.model.size import item_size_bytes
from triplica.storage.index_outbox import FENCED
from triplica.storage.lmdb_store import PartitionStore

INDEX = GlobalIndex("byColour", (("colour", "S"),), (("size", "N"),),
                    frozenset({"id", "colour", "size"}))
OTHER = GlobalIndex("byShape", (("shape", "S"), ("colour", "S")), (), None)
SPLIT_HASH = 1 << 63


def _item(number: int, colour: str | None, size: int | None, shape: str | None) -> tuple:
    item: dict = {"id": {"S": f"k{number}"}}
    if colour is not None:
        item["colour"] = {"S": colour}
    if size is not None:
        item["size"] = {"N": str(size)}
    if shape is not None:
        item["shape"] = {"S": shape}
    item["payload"] = {"S": "x" * number}
    return encode_storage_key(item["id"], None), encode_image(item, item_size_bytes(item))


class Cluster:
    """One base store, index stores by (index, half of the hash space)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.base = PartitionStore(os.path.join(root, "base"), value_size=stored_item_size,
                                   global_of=indexer_of)
        self.index_stores: dict[tuple[str, int], PartitionStore] = {}
        self.index = 0
        self.in_flight: list[tuple[tuple[str, int], list]] = []

    def apply(self, writes: list) -> None:
        self.index += 1
        self.base.apply(self.index, decode_entry(encode_entry(writes)))

    def store_for(self, destination: tuple[str, int]) -> PartitionStore:
        if destination not in self.index_stores:
            path = os.path.join(self.root, f"{destination[0]}-{destination[1]}")
            self.index_stores[destination] = PartitionStore(path, value_size=stored_item_size)
        return self.index_stores[destination]

    def route(self, name: str, index_key: bytes) -> tuple:
        half = int(int.from_bytes(index_key[:8], "big") >= SPLIT_HASH)
        return (name, half), name

    def propagate(self, limit: int, deliver_to: set | None = None, hold: bool = False,
                  source: str = "p", ancestors: list[str] | None = None) -> bool:
        """One round; False if some destination was not reached (no trim)."""
        records = run_of(self.base.outbox(limit))
        round_ = cut(records, self.route)
        if round_ is None:
            return True
        reached = True
        for destination, batch in round_.batches.items():
            entry = cursor_entry(source, round_.high, ancestors or [], batch.writes)
            if hold:
                self.in_flight.append((destination, entry))
            if deliver_to is not None and destination not in deliver_to:
                reached = False
                continue
            self._apply_index(destination, entry)
        if reached:
            self.apply(trim_entry(round_.high))
        return reached

    def _apply_index(self, destination: tuple, entry: list) -> None:
        store = self.store_for(destination)
        store.apply(store.applied_index() + 1, decode_entry(encode_entry(entry)))

    def release_held(self) -> None:
        for destination, entry in self.in_flight:
            self._apply_index(destination, entry)
        self.in_flight.clear()

    def finish(self) -> None:
        for _ in range(10_000):
            backfilling = self.base.backfilling()
            if not backfilling and self.base.outbox_size() == 0:
                return
            for name in backfilling:
                self.apply(backfill_entry(name, 7))
            self.propagate(50)
        raise AssertionError("propagation did not drain")

    def expected(self) -> dict[str, dict[bytes, bytes]]:
        indexer = indexer_of(self.base.global_definitions())
        found: dict[str, dict[bytes, bytes]] = {}
        for key, image in self.base.scan(b"", None):
            for name, index_key, entry in (indexer.entries(key, image) if indexer else []):
                found.setdefault(name, {})[index_key] = entry
        return found

    def held(self) -> dict[str, dict[bytes, bytes]]:
        found: dict[str, dict[bytes, bytes]] = {}
        for (name, _), store in self.index_stores.items():
            found.setdefault(name, {}).update(dict(store.scan(b"", None)))
        return {name: entries for name, entries in found.items() if entries}

    def close(self) -> None:
        self.base.close()
        for store in self.index_stores.values():
            store.close()


@pytest.fixture
def cluster(tmp_path):
    opened = Cluster(str(tmp_path))
    yield opened
    opened.close()


def test_deltas_follow_adoption_backfill_and_writes(cluster: Cluster) -> None:
    for number in range(30):
        cluster.apply([_item(number, ["red", "blue", None][number % 3], number % 4, None)])
    assert cluster.base.outbox_size() == 0  # no index kept yet
    cluster.apply(adopt_entry(INDEX.to_json()))
    assert cluster.base.backfilling() == {"byColour": b""}
    cluster.apply([_item(3, "green", 9, None)])   # a write during the backfill
    cluster.apply([(encode_storage_key({"S": "k4"}, None), None)])   # a delete
    cluster.finish()
    assert cluster.held() == cluster.expected()
    assert len(cluster.held()["byColour"]) == 19  # sparse: a third has no colour; k4 gone
    # A projected entry carries the keys and the projected attributes only.
    entry = next(iter(cluster.held()["byColour"].values()))
    assert b"payload" not in entry and b"colour" in entry


def test_an_unchanged_entry_is_not_sent_again(cluster: Cluster) -> None:
    cluster.apply(adopt_entry(INDEX.to_json()))
    cluster.apply([_item(1, "red", 1, None)])
    cluster.finish()
    key, image = _item(1, "red", 1, "square")   # only a non-projected attribute changes
    cluster.apply([(key, image)])
    assert cluster.base.outbox_size() == 0


def test_retries_and_late_batches_end_in_the_same_state(cluster: Cluster) -> None:
    cluster.apply(adopt_entry(INDEX.to_json()))
    cluster.apply(backfill_entry("byColour", 5))
    for number in range(40):
        cluster.apply([_item(number, ["red", "blue"][number % 2], number, None)])
        if number % 7 == 0:
            cluster.propagate(9, deliver_to={("byColour", 0)}, hold=True)  # one half fails
    cluster.finish()
    cluster.release_held()   # old batches a former leader sent land late: refused
    assert cluster.held() == cluster.expected()


def test_a_split_child_fences_its_parent(cluster: Cluster) -> None:
    cluster.apply(adopt_entry(INDEX.to_json()))
    cluster.apply(backfill_entry("byColour", 5))
    for number in range(10):
        cluster.apply([_item(number, "red", number, None)])
    # Sent by the parent's leader, still in flight when the parent splits (not trimmed).
    cluster.propagate(3, deliver_to=set(), hold=True, source="parent")
    late = list(cluster.in_flight)
    cluster.in_flight.clear()
    for number in range(10):
        cluster.apply([_item(number, "blue", number, None)])
    while cluster.base.outbox_size():
        cluster.propagate(4, source="child", ancestors=["parent"])
    for destination, entry in late:
        cluster._apply_index(destination, entry)
    assert cluster.held() == cluster.expected()
    for store in cluster.index_stores.values():
        assert store.cursor("parent") == FENCED


def test_drop_stops_deltas_and_a_split_child_keeps_its_own_outbox(cluster: Cluster,
                                                                  tmp_path) -> None:
    cluster.apply(adopt_entry(INDEX.to_json()))
    cluster.apply(adopt_entry(OTHER.to_json()))
    for number in range(20):
        cluster.apply([_item(number, "red", number, "round")])
    cluster.apply(backfill_entry("byShape", 100))
    assert cluster.base.backfilling() == {"byColour": b""}
    records = cluster.base.outbox(1000)
    path = str(tmp_path / "child")
    cluster.base.copy_to(path)
    with PartitionStore(path, value_size=stored_item_size, global_of=indexer_of) as child:
        child.keep_range(b"\x00" * 8, SPLIT_HASH.to_bytes(8, "big"))
        kept = child.outbox(1000)
        assert kept == [r for r in records if r[1] < SPLIT_HASH.to_bytes(8, "big")]
        assert 0 < len(kept) < len(records)
    cluster.apply(drop_entry("byShape"))
    before = cluster.base.outbox_size()
    cluster.apply([_item(50, "red", 1, "round")])
    assert cluster.base.outbox_size() == before + 1   # byColour only
    assert [d["name"] for d in cluster.base.global_definitions()] == ["byColour"]


def test_definitions_survive_reopening(tmp_path) -> None:
    path = str(tmp_path / "base")
    with PartitionStore(path, value_size=stored_item_size, global_of=indexer_of) as store:
        store.apply(1, decode_entry(encode_entry(adopt_entry(INDEX.to_json()))))
    with PartitionStore(path, value_size=stored_item_size, global_of=indexer_of) as store:
        key, image = _item(1, "red", 1, None)
        store.apply(2, [(key, image)])
        assert store.outbox_size() == 1


def test_multi_attribute_keys_are_sparse_and_typed() -> None:
    indexer = GlobalIndexer([OTHER])
    key, image = _item(1, "red", None, "round")
    [(name, index_key, entry)] = indexer.entries(key, image)
    assert name == "byShape" and entry == image   # ALL
    key, image = _item(2, "red", None, None)
    assert indexer.entries(key, image) == []      # a HASH attribute missing: not in it


WRITES = st.lists(st.tuples(st.integers(0, 15), st.sampled_from(["red", "blue", "green", None]),
                            st.integers(0, 3), st.booleans()), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=WRITES, adopt_at=st.integers(0, 60), chunk=st.integers(1, 9),
       failures=st.lists(st.booleans(), min_size=60, max_size=60))
def test_any_history_converges(tmp_path_factory, writes, adopt_at, chunk, failures) -> None:
    cluster = Cluster(str(tmp_path_factory.mktemp("history")))
    try:
        for step, (number, colour, size, delete) in enumerate(writes):
            if step == adopt_at:
                cluster.apply(adopt_entry(INDEX.to_json()))
            if delete:
                cluster.apply([(encode_storage_key({"S": f"k{number}"}, None), None)])
            else:
                cluster.apply([_item(number, colour, size, None)])
            if cluster.base.backfilling():
                cluster.apply(backfill_entry("byColour", chunk))
            cluster.propagate(chunk, deliver_to=None if failures[step] else {("byColour", 1)},
                              hold=failures[step])
        cluster.release_held()
        cluster.finish()
        cluster.release_held()
        assert cluster.held() == cluster.expected()
    finally:
        cluster.close()


def test_the_checker_sees_missing_extra_stale_and_misplaced_entries(cluster: Cluster) -> None:
    from triplica.engine.global_index_check import check_index
    cluster.apply(adopt_entry(INDEX.to_json()))
    for number in range(12):
        cluster.apply([_item(number, ["red", "blue"][number % 2], number, None)])
    cluster.finish()
    items = [image for _, image in cluster.base.scan(b"", None)]
    entries = sorted(cluster.held()["byColour"].items())
    assert check_index(INDEX, "id", None, items, entries) == []
    missing = check_index(INDEX, "id", None, items, entries[1:])
    assert len(missing) == 1 and "missing" in missing[0]
    extra = check_index(INDEX, "id", None, items, entries + [entries[0]])
    assert any("extra" in p for p in extra)
    stale_key = INDEX.key_of({"id": {"S": "k0"}, "colour": {"S": "green"}, "size": {"N": "0"}},
                             encode_storage_key({"S": "k0"}, None))
    stale = check_index(INDEX, "id", None, items, entries[1:] + [
        (stale_key, GlobalIndexer([INDEX]).entries(*_item(0, "green", 0, None))[0][2])])
    assert any("missing" in p for p in stale) and any("extra" in p for p in stale)
    misplaced = check_index(INDEX, "id", None, items, [(entries[1][0], entries[0][1])] +
                            entries[1:])
    assert any("wrong key" in p for p in misplaced)


def test_split_children_name_every_ancestor_and_the_catalogue_keeps_them() -> None:
    """A child fences its whole line of splits (the propagation sweep's seed 65)."""
    from triplica.engine.catalogue import LINEAGE_MAX, PartitionInfo, TableInfo
    from triplica.metadata.control_plane import _children
    root = PartitionInfo("root", 0, 1 << 64, group="g0", members=[1, 2, 3])
    assert root.lineage() == []
    left, right = _children(root, 1 << 63)
    assert left.lineage() == right.lineage() == ["root"]
    grandchild, _ = _children(right, 3 << 62)
    assert grandchild.lineage() == [right.partition_id, "root"]
    line = root
    for _ in range(LINEAGE_MAX + 5):
        line, _ = _children(line, line.hash_start + (line.hash_end - line.hash_start) // 2)
    assert len(line.lineage()) == LINEAGE_MAX
    old = PartitionInfo("c", 0, 1 << 64, split_from="p")   # a catalogue from before
    assert old.lineage() == ["p"]
    info = TableInfo(name="t", table_id="i", region="r", hash_key="pk", hash_type="S",
                     range_key=None, range_type=None, attribute_definitions=[],
                     billing_mode="PAY_PER_REQUEST", read_units=0, write_units=0,
                     creation_time=0.0, partitions=[grandchild])
    assert TableInfo.from_json(info.to_json()).partitions[0].ancestors == grandchild.ancestors
