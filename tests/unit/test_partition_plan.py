"""Initial partition counts and hash ranges (engine/partition_plan.py)."""
from __future__ import annotations

from hypothesis import given, strategies as st

from triplica.engine.catalogue import HASH_SPACE_END
from triplica.engine.partition_plan import hash_ranges, initial_partition_count


def test_counts_follow_dynamodb_per_partition_limits() -> None:
    assert initial_partition_count("PAY_PER_REQUEST", 0, 0) == 1
    assert initial_partition_count("PROVISIONED", 1, 1) == 1
    assert initial_partition_count("PROVISIONED", 3_000, 1_000) == 1
    assert initial_partition_count("PROVISIONED", 3_001, 1) == 2
    assert initial_partition_count("PROVISIONED", 1, 1_001) == 2
    assert initial_partition_count("PROVISIONED", 40_000, 40_000) == 40


@given(st.integers(min_value=1, max_value=64))
def test_ranges_cover_the_hash_space_without_gaps(count: int) -> None:
    ranges = hash_ranges(count)
    assert len(ranges) == count and ranges[0][0] == 0 and ranges[-1][1] == HASH_SPACE_END
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    sizes = [end - start for start, end in ranges]
    assert max(sizes) - min(sizes) <= 1
