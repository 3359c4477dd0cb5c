"""A cluster split's pieces: the split record, child replicas built from a parent's, child keys."""
from __future__ import annotations

import os

import pytest

from triplica.engine.catalogue import HASH_SPACE_END, PartitionInfo
from triplica.engine.group_split import (SPLIT_RECORD_KEY, SplitMarker, build_child, marker_of,
                                         split_writes)
from triplica.engine.node_partition import first_campaigner
from triplica.engine.log_entries import decode_entry, encode_entry, stored_item_size
from triplica.metadata.control_plane import _children
from triplica.replication.membership import Membership
from triplica.storage.lmdb_store import PartitionStore, RecordKey
from triplica.replication.paxos_log import PaxosLog

BOUNDARY = 1 << 63


def _key(hash_value: int, name: bytes) -> bytes:
    return hash_value.to_bytes(8, "big") + name


def _value(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(4, "big") + data  # `u32 size || bytes`, as stored items are


def _parent(tmp_path, with_marker: bool = True) -> PartitionStore:
    store = PartitionStore(str(tmp_path / "parent"), value_size=stored_item_size)
    writes = [(_key(h, b"k%d" % i), _value(f"v{i}"))
              for i, h in enumerate((1, 5 << 60, BOUNDARY - 1, BOUNDARY, 12 << 60, HASH_SPACE_END - 1))]
    store.apply(3, writes)
    if with_marker:
        store.apply_batch([(7, decode_entry(encode_entry(split_writes(
            SplitMarker(BOUNDARY, "left-group", "right-group")))))])
    store.apply(8, [])  # a no-op after the split (a new leader's entry)
    return store


def test_a_split_entry_is_a_record_not_an_item(tmp_path) -> None:
    store = _parent(tmp_path)
    assert store.stats()[0] == 6
    assert store.get(bytes(SPLIT_RECORD_KEY)) is None
    assert all(key != bytes(SPLIT_RECORD_KEY) for key, _ in store.scan(b"", None))
    assert marker_of(store) == SplitMarker(BOUNDARY, "left-group", "right-group", 7)


def test_record_entries_round_trip_and_travel_alone() -> None:
    writes = split_writes(SplitMarker(5, "a", "b"))
    decoded = decode_entry(encode_entry(writes))
    assert decoded == writes and type(decoded[0][0]) is RecordKey
    items = [(b"\x00" * 8 + b"x", b"y")]
    assert decode_entry(encode_entry(items)) == items
    assert type(decode_entry(encode_entry(items))[0][0]) is bytes
    with pytest.raises(AssertionError):
        encode_entry(writes + items)


def test_the_first_split_record_stays(tmp_path) -> None:
    """A second split entry later in the log (a retried proposal) changes nothing, so
    every replica's children start at the same index."""
    store = _parent(tmp_path)
    store.apply_batch([(9, split_writes(SplitMarker(BOUNDARY, "left-group", "right-group")))])
    assert marker_of(store).index == 7


def test_children_are_built_from_the_parent_cut_to_their_ranges(tmp_path) -> None:
    parent = _parent(tmp_path)
    left_dir, right_dir = str(tmp_path / "left"), str(tmp_path / "right")
    assert build_child(parent, left_dir, 0, BOUNDARY, [1, 2, 3], "batch")
    assert build_child(parent, right_dir, BOUNDARY, HASH_SPACE_END, [1, 2, 3], "batch")
    seen = []
    for directory, low, high in ((left_dir, 0, BOUNDARY), (right_dir, BOUNDARY, HASH_SPACE_END)):
        assert not os.path.exists(directory + ".building")
        with PartitionStore(os.path.join(directory, "replica", "items"),
                            value_size=stored_item_size) as child:
            keys = [key for key, _ in child.scan(b"", None)]
            assert all(low <= int.from_bytes(k[:8], "big") < high for k in keys)
            assert child.stats() == (3, 6)
            assert child.applied_index() == 7
            assert marker_of(child) is None
            seen += keys
        with PaxosLog(os.path.join(directory, "replica", "log")) as log:
            state = log.state()
            assert state.snapshot is not None and state.snapshot.index == 7
            assert state.snapshot.membership == Membership.of([1, 2, 3])
            assert not state.entries
    assert sorted(seen) == sorted(key for key, _ in parent.scan(b"", None))


def test_no_child_without_the_marker(tmp_path) -> None:
    parent = _parent(tmp_path, with_marker=False)
    assert not build_child(parent, str(tmp_path / "left"), 0, BOUNDARY, [1, 2, 3], "batch")
    assert not os.path.exists(tmp_path / "left")
    (tmp_path / "other").mkdir()
    marked = _parent(tmp_path / "other")
    # A range the marker does not cut is not this split's child.
    assert not build_child(marked, str(tmp_path / "odd"), 0, 5, [1, 2, 3], "batch")


def test_children_get_fresh_keys_and_first_campaigners_on_different_nodes() -> None:
    parent = PartitionInfo("p", 0, HASH_SPACE_END, group="g", members=[1, 2, 3])
    for _ in range(20):
        left, right = _children(parent, BOUNDARY)
        assert (left.hash_start, left.hash_end, right.hash_start, right.hash_end) == \
            (0, BOUNDARY, BOUNDARY, HASH_SPACE_END)
        assert left.split_from == right.split_from == "p"
        assert left.members == right.members == [1, 2, 3]
        assert len({left.group, right.group, "g"}) == 3
        assert first_campaigner(left.group, [1, 2, 3]) != first_campaigner(right.group, [1, 2, 3])


def test_no_write_changes_a_split_parent(tmp_path) -> None:
    """Writes an earlier ballot accepted past the split index may still commit after it:
    every replica's parent state stays as at A, so all children start alike."""
    store = _parent(tmp_path)
    before = (store.stats(), list(store.scan(b"", None)))
    store.apply_batch([(9, [(_key(2, b"late"), _value("after the split"))]),
                       (10, [(_key(1, b"k0"), None)])])
    assert (store.stats(), list(store.scan(b"", None))) == before
    assert store.applied_index() == 10 and marker_of(store).index == 7
