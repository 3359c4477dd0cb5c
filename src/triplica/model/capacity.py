"""DynamoDB's capacity unit rules: what a read or a write costs, and how it is reported.

A read costs one unit per 4 KB read (rounded up, at least one), half of that
when eventually consistent; a write one unit per 1 KB written. The units of
ReturnConsumedCapacity TOTAL / INDEXES are reported per table; INDEXES also
splits them into the table's and each secondary index's
(`indexed_capacity`): a write is charged once for the table and once for
every index entry it puts or deletes, a Query of an index for the index
entries it read and, for items fetched from the table (a local index),
for those. A read of a global index is charged to the index alone (its
table's units are 0).
"""
from __future__ import annotations

import math
from typing import Any

from triplica.model import limits

LOCAL_INDEXES = "LocalSecondaryIndexes"
GLOBAL_INDEXES = "GlobalSecondaryIndexes"


def read_units(size_bytes: int, consistent: bool) -> float:
    units = max(1, math.ceil(size_bytes / limits.READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


def write_units(size_bytes: int) -> float:
    return float(max(1, math.ceil(size_bytes / limits.WRITE_UNIT_BYTES)))


def consumed_capacity(mode: str | None, table_name: str, units: float,
                      kind: str) -> dict[str, Any] | None:
    """The ConsumedCapacity member for ReturnConsumedCapacity TOTAL or INDEXES."""
    if mode not in ("TOTAL", "INDEXES"):
        return None
    result: dict[str, Any] = {"TableName": table_name, "CapacityUnits": units,
                              kind: units}
    if mode == "INDEXES":
        result["Table"] = {"CapacityUnits": units, kind: units}
    return result


def indexed_capacity(mode: str | None, table_name: str, kind: str, table_units: float,
                     index_units: dict[str, float],
                     global_units: dict[str, float] | None = None) -> dict[str, Any] | None:
    """ConsumedCapacity when secondary indexes took part: the total for TOTAL, plus
    `Table`, `LocalSecondaryIndexes` and `GlobalSecondaryIndexes` (per index) for
    INDEXES."""
    if mode not in ("TOTAL", "INDEXES"):
        return None
    global_units = global_units or {}
    total = table_units + sum(index_units.values()) + sum(global_units.values())
    result: dict[str, Any] = {"TableName": table_name, "CapacityUnits": total, kind: total}
    if mode == "INDEXES":
        result["Table"] = {"CapacityUnits": table_units, kind: table_units}
        if index_units:
            result[LOCAL_INDEXES] = {
                name: {"CapacityUnits": units, kind: units} for name, units in index_units.items()}
        if global_units:
            result[GLOBAL_INDEXES] = {
                name: {"CapacityUnits": units, kind: units}
                for name, units in global_units.items()}
    return result
