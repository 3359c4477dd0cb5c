"""A cluster Scan page stitched from per-partition sub-requests (pure parts).

The router walks the table's partitions in hash order, within the request's
segment ([segment * 2**64 // total, (segment + 1) * 2**64 // total)), from
the partition holding ExclusiveStartKey's hash (or the segment's first). Each
sub-request is the client's Scan restricted to one partition's share of the
segment, with the Limit and byte budget that are left (router/internal.py);
the node answers with its page plus its last evaluated key and bytes read.

The page ends, as DynamoDB's does, once Limit items were evaluated or 1 MB
of item data was read: exactly when a node's sub-page comes back full (it
had the whole remaining budget). LastEvaluatedKey is then the last evaluated
item's key. A sub-page that is not full means its partition is done, and
the walk moves to the next; after the last one there is no
LastEvaluatedKey. Keys, not partition numbers, carry the position, so a
LastEvaluatedKey stays valid when partitions split between pages: the next
page starts at whichever partition then holds its hash.

A Scan of a global secondary index walks its index table's map the same
way; ExclusiveStartKey's hash is then the index hash of its HASH values
(router/key_routes.py), and the page's units are charged to the index.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from triplica.model.capacity import (GLOBAL_INDEXES, LOCAL_INDEXES, consumed_capacity,
                                     indexed_capacity, read_units)
from triplica.model.partition_map import HASH_SPACE_END, GlobalIndexRoute, Route, TableMap
from triplica.model import limits
from triplica.common.internal import (BYTES_READ, FETCH_UNITS, INTERNAL_KEY, LAST_KEY,
                                      encode_scan_slice)
from triplica.router.key_routes import index_values_hash, value_hash


@dataclass(frozen=True)
class ScanSlicePlan:
    """One sub-request's target: a partition and its share [hash_start, hash_end)."""

    route: Route
    hash_start: int
    hash_end: int


def segment_range(parameters: dict[str, Any]) -> tuple[int, int] | None:
    """The request's segment of the hash space; None when Segment/TotalSegments are
    malformed (the router then lets a node report the error)."""
    segment, total = parameters.get("Segment"), parameters.get("TotalSegments")
    if segment is None and total is None:
        return 0, HASH_SPACE_END
    if type(segment) is not int or type(total) is not int:
        return None
    if not 0 <= segment < total <= limits.SCAN_TOTAL_SEGMENTS_MAX:
        return None
    return segment * HASH_SPACE_END // total, (segment + 1) * HASH_SPACE_END // total


def scan_slices(table_map: TableMap, parameters: dict[str, Any],
                global_index: GlobalIndexRoute | None = None) -> list[ScanSlicePlan] | None:
    """The partitions a Scan page walks, in hash order; None when the router can't
    plan it (malformed segment, start key or Limit: a node reports the error). A global
    index's Scan walks `table_map`, its index table's map."""
    segment = segment_range(parameters)
    if segment is None or not _usable_limit(parameters.get("Limit")):
        return None
    segment_start, segment_end = segment
    walk_from = segment_start
    start_key = parameters.get("ExclusiveStartKey")
    if start_key is not None:
        if type(start_key) is not dict:
            return None
        if global_index is not None:
            key_hash = index_values_hash(global_index, start_key)
        else:
            key_hash = value_hash(start_key.get(table_map.hash_key), table_map.hash_type)
        if key_hash is None or not segment_start <= key_hash < segment_end:
            return None
        walk_from = key_hash
    plans = []
    for index in table_map.indexes_overlapping(walk_from, segment_end):
        route = table_map.route(index)
        plans.append(ScanSlicePlan(route, max(segment_start, route.hash_start),
                                   min(segment_end, route.hash_end)))
    return plans


def _usable_limit(limit: Any) -> bool:
    """A Limit the stitch can count down: absent, or a positive Java int. Any other
    value must reach a node whole, whose validation refuses it (never dropped)."""
    return limit is None or (type(limit) is int and 1 <= limit <= limits.REQUEST_LIMIT_MAX)


def sub_request(parameters: dict[str, Any], plan: ScanSlicePlan, first: bool,
                limit_left: int | None, bytes_left: int) -> dict[str, Any]:
    """The client's Scan restricted to one slice; the start key only on the first."""
    body = {name: value for name, value in parameters.items()
            if name not in ("Limit", "ExclusiveStartKey", INTERNAL_KEY)}
    if limit_left is not None:
        body["Limit"] = limit_left
    if first and "ExclusiveStartKey" in parameters:
        body["ExclusiveStartKey"] = parameters["ExclusiveStartKey"]
    body[INTERNAL_KEY] = encode_scan_slice(plan.hash_start, plan.hash_end, bytes_left)
    return body


class ScanStitch:
    """Merges sub-pages into one client page (module docstring)."""

    def __init__(self, parameters: dict[str, Any], global_index: bool = False) -> None:
        """`global_index`: the Scan reads a global secondary index (charged to it)."""
        limit = parameters.get("Limit")
        self.limit: int | None = limit if type(limit) is int else None
        self.count_only = parameters.get("Select") == "COUNT"
        self.consistent = parameters.get("ConsistentRead") is True
        self.capacity_mode = parameters.get("ReturnConsumedCapacity")
        self.table = str(parameters.get("TableName"))
        index = parameters.get("IndexName")
        self.index: str | None = index if type(index) is str else None
        self.index_member = GLOBAL_INDEXES if global_index else LOCAL_INDEXES
        self.fetch_units = 0.0   # a local index Scan's reads of the table
        self.items: list[Any] = []
        self.count = 0
        self.scanned = 0
        self.bytes_read = 0
        self.last_key: dict[str, Any] | None = None
        self.full = False

    @property
    def limit_left(self) -> int | None:
        return None if self.limit is None else self.limit - self.scanned

    @property
    def bytes_left(self) -> int:
        return max(1, limits.QUERY_PAGE_BYTES_MAX - self.bytes_read)

    def add(self, answer: dict[str, Any]) -> bool:
        """Take one node's sub-page; True once the client's page is full."""
        assert not self.full, "no sub-request after a full page"
        internal = answer.get(INTERNAL_KEY)
        assert type(internal) is dict, "a node answered a sliced Scan without its internals"
        self.items.extend(answer.get("Items", ()))
        self.count += int(answer.get("Count", 0))
        self.scanned += int(answer.get("ScannedCount", 0))
        self.bytes_read += int(internal.get(BYTES_READ, 0))
        self.fetch_units += float(internal.get(FETCH_UNITS, 0.0))
        if internal.get(LAST_KEY) is not None:
            self.last_key = internal[LAST_KEY]
        # The node's page is full exactly when it used up the budget it was given.
        self.full = "LastEvaluatedKey" in answer
        assert self.limit is None or self.scanned <= self.limit, (self.scanned, self.limit)
        return self.full

    def response(self) -> dict[str, Any]:
        response: dict[str, Any] = {"Count": self.count, "ScannedCount": self.scanned}
        if not self.count_only:
            response["Items"] = self.items
        if self.full and self.last_key is not None:
            response["LastEvaluatedKey"] = self.last_key
        # One page is one read: its units come from all the bytes it read.
        units = read_units(self.bytes_read, self.consistent)
        if self.index is None:
            capacity = consumed_capacity(self.capacity_mode, self.table, units,
                                         "ReadCapacityUnits")
        else:
            by_index = {self.index: units}
            local = self.index_member == LOCAL_INDEXES
            capacity = indexed_capacity(self.capacity_mode, self.table, "ReadCapacityUnits",
                                        self.fetch_units, by_index if local else {},
                                        None if local else by_index)
        if capacity is not None:
            response["ConsumedCapacity"] = capacity
        return response
