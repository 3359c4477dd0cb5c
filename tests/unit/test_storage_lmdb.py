"""PartitionStore: apply/get/scan, stats, applied index, long keys, reopen."""
from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triplica.storage.lmdb_store import (
    DIRECT_KEY_BYTES_MAX,
    MAP_SIZE_BYTES_DEFAULT,
    PartitionStore,
)

MAP_SIZE_BYTES_TEST = 64 * 1024 * 1024


@pytest.fixture
def store(tmp_path):
    with PartitionStore(str(tmp_path / "db"), MAP_SIZE_BYTES_TEST) as opened:
        yield opened


def test_default_map_size_is_virtual(tmp_path):
    with PartitionStore(str(tmp_path / "db")) as opened:
        opened.apply(1, [(b"k", b"v")])
        assert opened.get(b"k") == b"v"
    # Room for a partition well past DynamoDB's ~10 GB split size...
    assert MAP_SIZE_BYTES_DEFAULT >= 16 * 1024**3
    # ...reserved as address space only: the file on disk stays small.
    assert (tmp_path / "db" / "data.mdb").stat().st_size < 1024**2


def test_apply_get_stats_applied_index(store):
    assert store.applied_index() == 0
    assert store.stats() == (0, 0)
    assert store.get(b"a") is None
    store.apply(1, [(b"a", b"one"), (b"b", b"two")])
    assert store.get(b"a") == b"one"
    assert store.applied_index() == 1
    assert store.stats() == (2, 6)
    store.apply(2, [(b"a", b"uno!"), (b"c", None)])      # overwrite, delete missing
    assert store.stats() == (2, 7)
    store.apply(5, [(b"b", None)])
    assert store.get(b"b") is None
    assert store.stats() == (1, 4)
    assert store.applied_index() == 5
    with pytest.raises(AssertionError):
        store.apply(5, [(b"z", b"z")])
    assert store.get(b"z") is None                       # aborted, nothing written
    assert store.applied_index() == 5


def test_apply_batch_one_transaction(store):
    store.apply_batch([(1, [(b"a", b"1")]), (2, [(b"b", b"2")]), (3, [(b"a", None)])])
    assert store.applied_index() == 3
    assert store.stats() == (1, 1)
    with pytest.raises(AssertionError):
        store.apply_batch([(4, [(b"c", b"3")]), (4, [(b"d", b"4")])])
    assert store.get(b"c") is None                       # whole batch aborted
    assert store.applied_index() == 3


def test_scan_bounds_forward_and_reverse(store):
    keys = [bytes([c]) for c in b"abcdef"]
    store.apply(1, [(k, k.upper()) for k in keys])

    def scan(*args, **kwargs):
        return [k for k, _ in store.scan(*args, **kwargs)]

    assert scan(b"", None) == keys
    assert scan(b"b", b"e") == [b"b", b"c", b"d"]
    assert scan(b"b", b"e", start_inclusive=False) == [b"c", b"d"]
    assert scan(b"b", b"e", end_inclusive=True) == [b"b", b"c", b"d", b"e"]
    assert scan(b"bb", b"dd") == [b"c", b"d"]
    assert scan(b"", None, reverse=True) == keys[::-1]
    assert scan(b"b", b"e", reverse=True) == [b"d", b"c", b"b"]
    assert scan(b"b", b"e", reverse=True, start_inclusive=False) == [b"d", b"c"]
    assert scan(b"b", b"e", reverse=True, end_inclusive=True) == [b"e", b"d", b"c", b"b"]
    assert scan(b"b", b"zz", reverse=True) == [b"f", b"e", b"d", b"c", b"b"]
    assert scan(b"x", None) == []
    assert scan(b"", b"a") == []
    assert scan(b"", b"", reverse=True) == []
    assert list(store.scan(b"c", b"d")) == [(b"c", b"C")]


def test_scan_closed_early_releases_transaction(store):
    store.apply(1, [(bytes([c]), b"v") for c in range(1, 100)])
    for _ in range(2000):                 # far more than reader slots
        with contextlib.closing(store.scan(b"", None)) as iterator:
            next(iterator)
    store.apply(2, [(b"\x01", None)])
    assert store.stats() == (98, 98)


def test_long_keys_share_a_bucket(store):
    prefix = b"p" * DIRECT_KEY_BYTES_MAX
    long_a, long_b = prefix + b"a", prefix + b"b" * 2000
    store.apply(1, [(long_b, b"B"), (long_a, b"A"), (prefix, b"P"), (prefix[:-1] + b"q", b"Q")])
    assert store.get(long_a) == b"A"
    assert store.get(long_b) == b"B"
    assert store.get(prefix + b"c") is None
    assert store.stats() == (4, 4)
    assert [k for k, _ in store.scan(b"", None)] == [prefix, long_a, long_b, prefix[:-1] + b"q"]
    assert [k for k, _ in store.scan(long_a, None, start_inclusive=False)] == [
        long_b, prefix[:-1] + b"q"]
    assert [k for k, _ in store.scan(b"", long_b, reverse=True)] == [long_a, prefix]
    store.apply(2, [(long_a, None), (long_b, None)])
    assert store.stats() == (2, 2)
    assert [k for k, _ in store.scan(b"", None)] == [prefix, prefix[:-1] + b"q"]


def test_reopen_persists(tmp_path):
    path = str(tmp_path / "db")
    long_key = b"x" * 1500
    with PartitionStore(path, MAP_SIZE_BYTES_TEST) as opened:
        opened.apply(7, [(b"k", b"v"), (long_key, b"long")])
        opened.checkpoint()
    with PartitionStore(path, MAP_SIZE_BYTES_TEST) as opened:
        assert opened.applied_index() == 7
        assert opened.get(b"k") == b"v"
        assert opened.get(long_key) == b"long"
        assert opened.stats() == (2, 5)


def test_copy_to(tmp_path, store):
    store.apply(3, [(b"k", b"v"), (b"y" * 900, b"w")])
    store.copy_to(str(tmp_path / "copy"))
    with PartitionStore(str(tmp_path / "copy"), MAP_SIZE_BYTES_TEST) as copy:
        assert copy.applied_index() == 3
        assert list(copy.scan(b"", None)) == list(store.scan(b"", None))
        assert copy.stats() == store.stats()


# Keys drawn around the 480-byte boundary: a few shared prefixes so buckets
# hold several entries, direct keys equal to or prefixes of bucket prefixes.
_PREFIXES = [b"", b"a" * 470, b"a" * 479, b"a" * 480, b"a" * 479 + b"b", b"b" * 480]
_KEYS = st.builds(
    lambda prefix, tail: (prefix + tail)[:4096] or b"\x00",
    st.sampled_from(_PREFIXES),
    st.binary(min_size=0, max_size=20).map(lambda b: bytes(x % 4 for x in b)),
)
_WRITES = st.lists(st.tuples(_KEYS, st.one_of(st.none(), st.binary(max_size=8))),
                   min_size=1, max_size=12)
_BOUNDS = st.one_of(st.none(), _KEYS)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(_WRITES, min_size=1, max_size=6),
       start=_KEYS, end=_BOUNDS, reverse=st.booleans(),
       start_inclusive=st.booleans(), end_inclusive=st.booleans(),
       bounds_from_keys=st.booleans(), data=st.data())
def test_matches_sorted_dict(tmp_path_factory, batches, start, end, reverse,
                             start_inclusive, end_inclusive, bounds_from_keys, data):
    model: dict[bytes, bytes] = {}
    path = str(tmp_path_factory.mktemp("prop"))
    with PartitionStore(path, MAP_SIZE_BYTES_TEST) as opened:
        for index, writes in enumerate(batches, start=1):
            opened.apply(index, writes)
            for key, value in writes:
                if value is None:
                    model.pop(key, None)
                else:
                    model[key] = value
        ordered = sorted(model.items())
        if bounds_from_keys and ordered:     # bounds that hit stored keys exactly
            start = data.draw(st.sampled_from([k for k, _ in ordered]))
            end = data.draw(st.sampled_from([k for k, _ in ordered]))
        assert list(opened.scan(b"", None)) == ordered
        assert list(opened.scan(b"", None, reverse=True)) == ordered[::-1]
        for key, value in ordered:
            assert opened.get(key) == value
        assert opened.stats() == (len(model), sum(len(v) for v in model.values()))

        def inside(key: bytes) -> bool:
            low_ok = key > start or (key == start and start_inclusive)
            high_ok = end is None or key < end or (key == end and end_inclusive)
            return low_ok and high_ok

        expected = [(k, v) for k, v in ordered if inside(k)]
        if reverse:
            expected.reverse()
        got = list(opened.scan(start, end, reverse=reverse,
                               start_inclusive=start_inclusive,
                               end_inclusive=end_inclusive))
        assert got == expected
