"""How many partitions a new table starts with, and where they are cut.

Paper: a table is cut into partitions, each able to serve a fixed share of
throughput; DynamoDB documents the per-partition limits as 3,000 read
units, 1,000 write units and about 10 GB. A provisioned table therefore
starts with enough partitions for its provisioned capacity:
max(ceil(RCU / 3000), ceil(WCU / 1000), 1). An on-demand table starts with
ON_DEMAND_PARTITIONS (one: every partition of `triplica serve` is three
replicas with their own log, store and timers, so idle partitions are not
free; issue 4's splits grow a table with its traffic and size).

The hash space [0, HASH_SPACE_END) is cut into equal ranges, so a uniform
hash spreads keys evenly over them.
"""
from __future__ import annotations

from triplica.engine.catalogue import HASH_SPACE_END

READ_UNITS_PER_PARTITION = 3_000
WRITE_UNITS_PER_PARTITION = 1_000
ON_DEMAND_PARTITIONS = 1
PARTITIONS_AT_CREATE_MAX = 64  # 40,000 WCU (the per-table quota) needs 40


def initial_partition_count(billing_mode: str, read_units: int, write_units: int) -> int:
    if billing_mode == "PAY_PER_REQUEST":
        return ON_DEMAND_PARTITIONS
    assert read_units >= 0 and write_units >= 0, (read_units, write_units)
    count = max(-(-read_units // READ_UNITS_PER_PARTITION),
                -(-write_units // WRITE_UNITS_PER_PARTITION), 1)
    assert count <= PARTITIONS_AT_CREATE_MAX, count
    return count


def hash_ranges(count: int) -> list[tuple[int, int]]:
    """`count` contiguous [start, end) ranges covering the hash space, equal up to rounding."""
    assert 1 <= count <= PARTITIONS_AT_CREATE_MAX, count
    cuts = [HASH_SPACE_END * i // count for i in range(count + 1)]
    return list(zip(cuts[:-1], cuts[1:]))
