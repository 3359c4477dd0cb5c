"""Local secondary indexes in the partition store: entries from old and new images, order,
projections, stats, collection sizes, split children, images; the checker catches damage."""
from __future__ import annotations

import contextlib
import os

import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triplica.engine.catalogue import HASH_SPACE_END, TableInfo
from triplica.engine.group_split import SplitMarker, build_child, split_writes
from triplica.engine.index_definitions import LOCAL, IndexInfo
from triplica.engine.item_images import decode_image, encode_image
from triplica.engine.local_index_check import check_store
from triplica.engine.local_indexes import (INDEX_ENTRY_OVERHEAD_BYTES, LocalIndexer, collection_key,
                                           index_key, local_indexer_of)
from triplica.engine.log_entries import decode_entry, encode_entry, stored_item_size
from triplica.model.keys import (decode_key_value, encode_key_value, encode_storage_key,
                                 encoded_value_end, partition_hash, partition_prefix_length)
from triplica.model.size import item_size_bytes
from triplica.storage.lmdb_store import PartitionStore

MAP_SIZE_BYTES_TEST = 64 * 1024 * 1024


def _lsi(name: str, attribute: str, type_name: str, projection: str = "ALL",
         non_key: tuple[str, ...] = ()) -> IndexInfo:
    return IndexInfo(name=name, kind=LOCAL, hash_keys=[("pk", "S")],
                     range_keys=[(attribute, type_name)], projection_type=projection,
                     non_key_attributes=list(non_key))


def _table(*indexes: IndexInfo) -> TableInfo:
    return TableInfo(name="t1", table_id="id", region="us-east-1", hash_key="pk",
                     hash_type="S", range_key="sk", range_type="S",
                     attribute_definitions=[], billing_mode="PAY_PER_REQUEST", read_units=0,
                     write_units=0, creation_time=0.0, local_indexes=list(indexes))


INFO = _table(_lsi("by_n", "n", "N"), _lsi("by_s", "s", "S", "KEYS_ONLY"),
              _lsi("by_b", "b", "B", "INCLUDE", ("x",)))


def _item(pk: str, sk: str, **attributes: dict) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}, **attributes}


def _put(item: dict) -> tuple[bytes, bytes]:
    return (encode_storage_key(item["pk"], item["sk"]), encode_image(item, item_size_bytes(item)))


def _delete(pk: str, sk: str) -> tuple[bytes, None]:
    return (encode_storage_key({"S": pk}, {"S": sk}), None)


@pytest.fixture
def store(tmp_path):
    with PartitionStore(str(tmp_path / "db"), MAP_SIZE_BYTES_TEST, value_size=stored_item_size,
                        indexer=LocalIndexer(INFO)) as opened:
        yield opened


def _index(store: PartitionStore, name: str, reverse: bool = False) -> list[dict]:
    with contextlib.closing(store.scan_index(name, b"", None, reverse=reverse)) as rows:
        return [decode_image(entry) for _, entry, _ in rows]


def test_entries_follow_puts_updates_and_deletes(store):
    store.apply(1, [_put(_item("a", "1", n={"N": "5"}, s={"S": "q"}, x={"S": "xx"}, y={"S": "y"})),
                    _put(_item("a", "2", n={"N": "-3"})),
                    _put(_item("a", "3", s={"S": "p"}, b={"B": "AAE="}, x={"N": "1"}))])
    assert [e["sk"]["S"] for e in _index(store, "by_n")] == ["2", "1"]   # by n: -3, 5
    assert _index(store, "by_s") == [{"pk": {"S": "a"}, "sk": {"S": "3"}, "s": {"S": "p"}},
                                     {"pk": {"S": "a"}, "sk": {"S": "1"}, "s": {"S": "q"}}]
    assert _index(store, "by_b") == [{"pk": {"S": "a"}, "sk": {"S": "3"}, "b": {"B": "AAE="},
                                      "x": {"N": "1"}}]
    assert check_store(store, INFO) == []
    # The index sort key changes, another goes, a third appears; an item is deleted.
    store.apply(2, [_put(_item("a", "1", n={"N": "-10"}, b={"B": "AAA="})), _delete("a", "3")])
    assert [e["sk"]["S"] for e in _index(store, "by_n")] == ["1", "2"]
    assert _index(store, "by_s") == []
    assert [e["sk"]["S"] for e in _index(store, "by_b")] == ["1"]
    assert store.index_stats("by_s") == (0, 0)
    assert store.index_stats("by_n")[0] == 2
    assert check_store(store, INFO) == []
    assert [e["sk"]["S"] for e in _index(store, "by_n", reverse=True)] == ["2", "1"]


def test_sparse_and_mistyped_attributes_are_not_indexed(store):
    store.apply(1, [_put(_item("a", "1")), _put(_item("a", "2", n={"S": "5"}, s={"N": "1"}))])
    for name in INFO.local_indexes:
        assert _index(store, name.name) == []
    assert check_store(store, INFO) == []


def test_order_is_index_sort_key_then_table_sort_key(store):
    store.apply(1, [_put(_item("a", sk, n={"N": n})) for sk, n in
                    (("c", "2"), ("a", "2"), ("b", "1"), ("d", "10"), ("e", "2.5"))]
                + [_put(_item("b", "z", n={"N": "0"}))])
    a_entries = [e for e in _index(store, "by_n") if e["pk"]["S"] == "a"]
    assert [(e["n"]["N"], e["sk"]["S"]) for e in a_entries] == \
        [("1", "b"), ("2", "a"), ("2", "c"), ("2.5", "e"), ("10", "d")]


def test_collection_sizes_count_items_and_entries(store):
    item = _item("a", "1", n={"N": "5"}, s={"S": "q"})
    store.apply(1, [_put(item), _put(_item("b", "1"))])
    key = encode_storage_key({"S": "a"}, {"S": "1"})
    keys_only = {"pk": {"S": "a"}, "sk": {"S": "1"}, "s": {"S": "q"}}
    expected = item_size_bytes(item) * 2 + item_size_bytes(keys_only) + 2 * INDEX_ENTRY_OVERHEAD_BYTES
    assert store.collection_size(collection_key(key)) == expected
    store.apply(2, [_delete("a", "1"), _delete("b", "1")])
    assert store.collection_sizes() == {}
    assert check_store(store, INFO) == []


def test_long_keys_use_overflow_buckets(store):
    long = "k" * 1500
    items = [_item(long, f"{i:04d}" + "s" * 700, n={"N": str(i % 7)}, s={"S": "v" * 900})
             for i in range(40)]
    store.apply(1, [_put(item) for item in items])
    assert len(_index(store, "by_n")) == 40
    assert check_store(store, INFO) == []
    store.apply(2, [_delete(long, item["sk"]["S"]) for item in items[::2]])
    assert len(_index(store, "by_s")) == 20
    assert check_store(store, INFO) == []


def test_split_children_keep_their_share_of_every_index(tmp_path, store):
    store.apply(1, [_put(_item(f"p{i}", f"{j}", n={"N": str(j)}, s={"S": "x"}))
                    for i in range(30) for j in range(3)])
    boundary = 1 << 63
    store.apply_batch([(2, decode_entry(encode_entry(split_writes(
        SplitMarker(boundary, "left", "right")))))])
    counts = []
    for name, (low, high) in {"left": (0, boundary), "right": (boundary, HASH_SPACE_END)}.items():
        directory = str(tmp_path / name)
        assert build_child(store, directory, low, high, [1, 2, 3], "none")
        with PartitionStore(os.path.join(directory, "replica", "items"),
                            value_size=stored_item_size, indexer=LocalIndexer(INFO)) as child:
            assert check_store(child, INFO) == []
            entries = _index(child, "by_n")
            assert all(low <= partition_hash(e["pk"]) < high for e in entries)
            counts.append((child.stats()[0], child.index_stats("by_n")[0], len(entries)))
    assert sum(c[0] for c in counts) == 90 and sum(c[1] for c in counts) == 90
    assert all(c[1] == c[2] for c in counts) and all(c[0] for c in counts)


def test_an_image_carries_the_indexes(tmp_path, store):
    store.apply(1, [_put(_item("a", str(i), n={"N": str(i)})) for i in range(5)])
    store.copy_to(str(tmp_path / "copy"))
    with PartitionStore(str(tmp_path / "copy"), value_size=stored_item_size,
                        indexer=LocalIndexer(INFO)) as copy:
        assert _index(copy, "by_n") == _index(store, "by_n")
        assert check_store(copy, INFO) == []


def test_fetch_reads_the_item_in_the_same_transaction(store):
    store.apply(1, [_put(_item("a", "1", s={"S": "q"}, other={"S": "o"}))])
    with contextlib.closing(store.scan_index("by_s", b"", None, fetch=True)) as rows:
        [(key, entry, item)] = list(rows)
    assert decode_image(item)["other"] == {"S": "o"}
    assert "other" not in decode_image(entry)


def test_the_checker_catches_a_missing_a_wrong_and_a_stray_entry(tmp_path):
    path = str(tmp_path / "db")
    items = [_item("a", str(i), n={"N": str(i)}) for i in range(3)]
    with PartitionStore(path, value_size=stored_item_size) as plain:   # no indexer: no entries
        plain.apply(1, [_put(item) for item in items])
        assert check_store(plain, INFO)[:3] == [f"index {name}: not kept by this store"
                                                for name in ("by_n", "by_s", "by_b")]
    with PartitionStore(path, value_size=stored_item_size, indexer=LocalIndexer(INFO)) as store:
        assert any("has no entry" in p for p in check_store(store, INFO))
    path = str(tmp_path / "indexed")
    with PartitionStore(path, value_size=stored_item_size, indexer=LocalIndexer(INFO)) as store:
        store.apply(1, [_put(item) for item in items])
        assert check_store(store, INFO) == []
    env = lmdb.open(path, max_dbs=16)
    database = env.open_db(b"index:by_n")
    with env.begin(write=True) as txn:
        wrong_key = index_key({"S": "a"}, {"N": "1"}, {"S": "1"})
        txn.put(wrong_key, encode_image({"pk": {"S": "a"}}, 3), db=database)
        stray = index_key({"S": "zz"}, {"N": "1"}, {"S": "1"})
        txn.put(stray, encode_image({"pk": {"S": "zz"}}, 3), db=database)
    env.close()
    with PartitionStore(path, value_size=stored_item_size, indexer=LocalIndexer(INFO)) as store:
        problems = check_store(store, INFO)
    assert any("should be" in p for p in problems)
    assert any("stands for no item" in p for p in problems)
    assert any("stats" in p for p in problems)


def test_no_indexer_for_a_table_without_local_indexes():
    assert local_indexer_of(_table()) is None
    assert local_indexer_of(INFO).names == ("by_n", "by_s", "by_b")


@pytest.mark.parametrize("value", [
    {"S": ""}, {"S": "a\x00b"}, {"S": "é" * 9}, {"B": "AAAA"}, {"B": "AP8A"},
    {"N": "0"}, {"N": "1"}, {"N": "-1"}, {"N": "1E-130"}, {"N": "-1E-130"}, {"N": "9.99E+125"},
    {"N": "-9.99E+125"}, {"N": "12345678901234567890123456789012345678"}, {"N": "-0.5"}])
def test_encoded_value_end_finds_each_encoding_end(value):
    if value.get("S") == "":
        data = b"\x02\x00\x01"
    else:
        data = encode_key_value(value)
    tail = encode_key_value({"S": "after"})
    assert encoded_value_end(data + tail, 0) == len(data)
    if "S" not in value or value["S"]:
        assert decode_key_value(data, 0)[1] == len(data)


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c" * 600]),
                          st.sampled_from(["1", "2", "3", "4"]),
                          st.one_of(st.none(), st.integers(-3, 3)),
                          st.one_of(st.none(), st.sampled_from(["x", "y", ""])),
                          st.booleans()), min_size=1, max_size=30))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_random_histories_keep_indexes_consistent(tmp_path_factory, history):
    path = str(tmp_path_factory.mktemp("random"))
    with PartitionStore(path, MAP_SIZE_BYTES_TEST, value_size=stored_item_size,
                        indexer=LocalIndexer(INFO)) as store:
        for position, (pk, sk, n, s, delete) in enumerate(history, 1):
            if delete:
                store.apply(position, [_delete(pk, sk)])
                continue
            attributes = {}
            if n is not None:
                attributes["n"] = {"N": str(n)}
            if s is not None:
                attributes["s"] = {"S": s} if s else {"N": "0"}
            store.apply(position, [_put(_item(pk, sk, **attributes))])
        assert check_store(store, INFO) == []
        assert partition_prefix_length(encode_storage_key({"S": "a"}, {"S": "1"})) == \
            8 + len(encode_key_value({"S": "a"}))
