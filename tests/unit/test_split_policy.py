"""Split decisions (metadata/split_policy.py): when to split and where."""
from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from triplica.engine.catalogue import HASH_SPACE_END
from triplica.engine.split_policy import (
    HEAVY_KEYS_MAX, MIN_SIDE_SHARE, SIZE_BYTES_MAX, AccessSketch, WindowUsage, choose_split_point,
    split_reason)


def true_share_below(loads: dict[int, float], boundary: int) -> float:
    total = sum(loads.values())
    return sum(v for k, v in loads.items() if k < boundary) / total


def test_reasons() -> None:
    hot = WindowUsage(2_900, 10)
    cool = WindowUsage(100, 100)
    assert split_reason(SIZE_BYTES_MAX + 1, []) == "size"
    assert split_reason(10, [hot, hot, hot]) == "consumption"
    assert split_reason(10, [WindowUsage(0, 900)] * 3) == "consumption"
    assert split_reason(10, [hot, cool, hot]) is None  # a burst is not "keeps running hot"
    assert split_reason(10, [hot, hot]) is None


def test_skewed_load_is_split_by_its_distribution_not_the_midpoint() -> None:
    rng = random.Random(7)
    sketch = AccessSketch(0, HASH_SPACE_END)
    loads: dict[int, float] = {}
    # Zipf-like popularity over keys that all hash into the lower quarter.
    keys = [rng.randrange(0, HASH_SPACE_END // 4) for _ in range(2_000)]
    for _ in range(50_000):
        key = keys[min(int(rng.paretovariate(1.2)) - 1, len(keys) - 1)]
        sketch.record(key, 1.0)
        loads[key] = loads.get(key, 0.0) + 1.0
    point = choose_split_point(sketch)
    assert point is not None and 0 < point < HASH_SPACE_END // 4
    assert abs(true_share_below(loads, point) - 0.5) < 0.15
    assert abs(true_share_below(loads, HASH_SPACE_END // 2) - 0.5) > 0.45  # the midpoint would fail


def test_two_hot_items_end_up_on_different_sides() -> None:
    sketch = AccessSketch(0, HASH_SPACE_END)
    a, b = 1_000_003, 1_000_777  # same bucket: only the heavy-key summary can tell them apart
    for _ in range(1_000):
        sketch.record(a, 1.0)
        sketch.record(b, 1.0)
    point = choose_split_point(sketch)
    assert point is not None and a < point <= b


def test_one_item_carrying_all_the_load_is_not_split() -> None:
    sketch = AccessSketch(0, HASH_SPACE_END)
    for _ in range(100):
        sketch.record(12345, 5.0)
    assert choose_split_point(sketch) is None
    assert choose_split_point(AccessSketch(0, HASH_SPACE_END)) is None


def test_decay_follows_current_traffic() -> None:
    sketch = AccessSketch(0, 1 << 20, buckets=16)
    for _ in range(100):
        sketch.record(10, 1.0)  # old traffic, low end
    for _ in range(20):
        sketch.decay(0.5)
    for i in range(100):
        sketch.record((1 << 19) + i * 997, 1.0)  # current traffic, upper half
    point = choose_split_point(sketch)
    assert point is not None and point > 1 << 19


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**40), st.integers(min_value=2, max_value=2**40),
       st.lists(st.tuples(st.integers(min_value=0, max_value=2**40), st.integers(min_value=1, max_value=50)),
                min_size=1, max_size=300),
       st.integers(min_value=1, max_value=64))
def test_split_point_is_inside_and_each_side_gets_load(start: int, width: int, records: list,
                                                       buckets: int) -> None:
    end = start + width
    sketch = AccessSketch(start, end, buckets=buckets)
    for raw, units in records:
        sketch.record(start + raw % width, float(units))
    assert len(sketch.heavy) <= HEAVY_KEYS_MAX and len(sketch.counts) <= buckets
    point = choose_split_point(sketch)
    if point is not None:
        assert start < point < end
        loads: dict[int, float] = {}
        for raw, units in records:
            loads[start + raw % width] = loads.get(start + raw % width, 0.0) + units
        # The estimate may be off inside one bucket, never by more than that bucket's load.
        share = true_share_below(loads, point)
        slack = max(sketch.counts) / sketch.total
        assert min(share, 1 - share) >= MIN_SIDE_SHARE - slack - 1e-9
