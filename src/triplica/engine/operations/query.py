"""Query and Scan: ordered reads over storage-key ranges, paged like DynamoDB.

Storage keys are `hash(pk) || enc(pk) || enc(sk)` (model/keys.py), so one
partition key's items are contiguous and ordered by sort key, and a Scan
segment is a contiguous range of the hash space. A page ends after `Limit`
items were evaluated or after 1 MB of item data was read (before any filter),
whichever comes first; LastEvaluatedKey is then the key of the last item
evaluated, so paging resumes exactly after it.

In a cluster the router runs a Scan as one sub-request per partition; the
node then keeps to the sub-request's hash range and byte budget and reports
its last evaluated key and bytes read (router/internal.py).

With IndexName they read a secondary index instead (read_targets.py): a
local one's key space in the table's partitions (its entries, items
fetched from the table when something asked for is not projected), or a
global one's index table partitions (global_reads.py: its possibly
multi-attribute key; never a fetch). The 1 MB and Limit rules count the
index entries read, and LastEvaluatedKey holds the table's key and the
index's. A global index read is charged to the index (the table's units
are 0).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from triplica.engine.operations import expression_params as params
from triplica.engine.operations.index_rules import check_index_name
from triplica.engine.operations.item_access import (consumed_capacity, decode_image, image_size,
                                      read_units, table_of)
from triplica.engine.operations.global_reads import (QueryKeys, global_key_condition,
                                                     global_query_keys)
from triplica.engine.operations.key_ranges import sort_range
from triplica.engine.operations.read_targets import (ReadPlan, ReadTarget, check_filter_keys,
                                                     read_plan, read_target)
from triplica.engine.operations.service import Service, register
from triplica.engine.operations.validation import (SELECT_VALUES, Violations, check_enum,
                                                   check_table_name, expect_type)
from triplica.engine.catalogue import HASH_SPACE_END
from triplica.errors import ValidationException
from triplica.expressions import parse_key_condition
from triplica.expressions import legacy
from triplica.model import limits
from triplica.model.capacity import indexed_capacity
from triplica.model.keys import (encode_partition_prefix, partition_hash,
                                 validate_key_value)
from triplica.common.internal import BYTES_READ, FETCH_UNITS, INTERNAL_KEY, LAST_KEY, scan_slice
from triplica.common.redirects import PartitionMovedError


class _Page:
    """Accumulates one page of results under DynamoDB's limits."""

    def __init__(self, limit: int | None, filter_condition: Any, plan: ReadPlan,
                 consistent: bool, bytes_max: int = limits.QUERY_PAGE_BYTES_MAX) -> None:
        self.limit = limit
        self.bytes_max = bytes_max
        self.filter = filter_condition
        self.plan = plan
        self.projection = plan.projection
        self.count_only = plan.count_only
        self.consistent = consistent
        self.items: list[dict[str, Any]] = []
        self.count = 0
        self.scanned = 0
        self.bytes_read = 0
        self.fetch_units = 0.0   # reads of the table for items an index read fetched
        self.last_item: dict[str, Any] | None = None
        self.full = False

    def offer(self, stored: bytes, item: dict[str, Any] | None = None) -> None:
        if item is None:
            item = decode_image(stored)
        self.scanned += 1
        self.bytes_read += image_size(stored)
        self.last_item = item
        if self.filter is None or self.filter.evaluate(item):
            self.count += 1
            if not self.count_only:
                self.items.append(self.projection.apply(item) if self.projection else item)
        if (self.limit is not None and self.scanned >= self.limit) \
                or self.bytes_read >= self.bytes_max:
            self.full = True

    def offer_entry(self, entry: bytes, item: dict[str, Any], stored: bytes | None) -> None:
        """An index entry (decoded: `item`) and, when the plan fetches, the table's image
        of its item."""
        self.scanned += 1
        self.bytes_read += image_size(entry)
        self.last_item = item
        whole = item
        if self.plan.fetch:
            self.fetch_units += read_units(image_size(stored), self.consistent)
            whole = decode_image(stored) or item
        if self.filter is None or self.filter.evaluate(whole):
            self.count += 1
            if not self.count_only:
                shown = whole if self.plan.whole_item else item
                self.items.append(self.projection.apply(shown) if self.projection else shown)
        if (self.limit is not None and self.scanned >= self.limit) \
                or self.bytes_read >= self.bytes_max:
            self.full = True


def _check_query_limit(request: dict[str, Any]) -> None:
    """Query reports a Limit below 1 in its own words (after the model's checks)."""
    limit = request.get("Limit")
    if type(limit) is int and limit < 1:
        raise ValidationException(
            "1 validation error detected: Value at 'Limit' failed to satisfy constraint: "
            "Member must have value greater than or equal to 1")


def _read_violations(request: dict[str, Any], operation: str = "Scan") -> Violations:
    violations = Violations()
    check_enum(request.get("Select"), SELECT_VALUES, "select", violations)
    check_enum(request.get("ReturnConsumedCapacity"), ("INDEXES", "TOTAL", "NONE"),
               "returnConsumedCapacity", violations)
    check_enum(request.get("ConditionalOperator"), ("AND", "OR"), "conditionalOperator",
               violations)
    limit = expect_type(request.get("Limit"), int, "Limit")
    if limit is not None and limit < 1 and operation == "Scan":
        violations.add(limit, "limit", "Member must have value greater than or equal to 1")
    return violations


def _index_name_violations(request: dict[str, Any], violations: Violations) -> None:
    if request.get("IndexName") is not None:
        check_index_name(expect_type(request["IndexName"], str, "IndexName"), "indexName",
                         violations)


def _finish(target: ReadTarget, request: dict[str, Any], page: _Page,
            consistent: bool) -> dict[str, Any]:
    response: dict[str, Any] = {"Count": page.count, "ScannedCount": page.scanned}
    if not page.count_only:
        response["Items"] = page.items
    if page.full and page.last_item is not None:
        response["LastEvaluatedKey"] = target.key_of(page.last_item)
    capacity = _capacity(target, request, page, consistent)
    if capacity is not None:
        response["ConsumedCapacity"] = capacity
    return response


def _capacity(target: ReadTarget, request: dict[str, Any], page: _Page,
              consistent: bool) -> dict[str, Any] | None:
    mode, name = request.get("ReturnConsumedCapacity"), target.table.info.name
    units = read_units(page.bytes_read, consistent)
    if target.index_name is None:
        return consumed_capacity(mode, name, units, "ReadCapacityUnits")
    if target.is_global:
        return indexed_capacity(mode, name, "ReadCapacityUnits", 0.0, {},
                                {target.index_name: units})
    return indexed_capacity(mode, name, "ReadCapacityUnits", page.fetch_units,
                            {target.index_name: units})


def _key_condition(target: ReadTarget, request: dict[str, Any], ctx: Any) -> Any:
    """The key condition on the target's keys (the table's, or a local index's)."""
    text = expect_type(request.get("KeyConditionExpression"), str, "KeyConditionExpression")
    if text is not None:
        condition = parse_key_condition(text, ctx, target.hash_key, target.range_key)
    elif request.get("KeyConditions") is not None:
        condition = legacy.key_condition_from_key_conditions(
            request["KeyConditions"], target.hash_key, target.range_key)
    else:
        raise ValidationException(
            "Either the KeyConditions or KeyConditionExpression parameter must be specified "
            "in the request.")
    if target.hash_type not in condition.partition_value:
        raise ValidationException(
            "One or more parameter values were invalid: Condition parameter type does not "
            "match schema type")
    for value in condition.sort_values:
        if target.range_type not in value:
            raise ValidationException(
                "One or more parameter values were invalid: Condition parameter type does not "
                "match schema type")
    # Key values beyond DynamoDB's key sizes match no item and would make storage
    # keys the store refuses (found by the fuzz run): the same errors as GetItem's.
    validate_key_value(target.hash_key, condition.partition_value, True)
    for value in condition.sort_values:
        validate_key_value(target.range_key, value, False)
    return condition


@register("Query")
def query(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    violations = _read_violations(request, "Query")
    check_table_name(request.get("TableName"), violations)
    _index_name_violations(request, violations)
    violations.raise_if_any()
    _check_query_limit(request)
    table = table_of(service, request)
    target = read_target(table, request, service.db.tables)
    ctx = params.context_for(request, "Query")
    if target.is_global:
        keys = global_query_keys(global_key_condition(target, request, ctx))
    else:
        keys = _table_query_keys(target, _key_condition(target, request, ctx))
    filter_condition = params.read_filter(request, ctx, "QueryFilter")
    check_filter_keys(target, request, filter_condition)
    projection = params.read_projection(request, ctx)
    plan = read_plan(target, request, projection, filter_condition)
    ctx.check_unused()
    consistent = bool(expect_type(request.get("ConsistentRead"), bool, "ConsistentRead"))
    forward = expect_type(request.get("ScanIndexForward"), bool, "ScanIndexForward")
    forward = True if forward is None else forward
    start_key = target.start_key(request)
    start, end = keys.start, keys.end
    if start_key is not None and not start_key.startswith(keys.partition_prefix):
        raise ValidationException("The provided starting key is invalid: The provided key "
                                  "element does not match the schema")
    partition = target.source.partition_for_hash(keys.key_hash)
    page = _Page(request.get("Limit"), filter_condition, plan, consistent)
    if forward:
        inclusive = True
        if start_key is not None and start_key >= start:
            start, inclusive = start_key, False
        rows = _rows(target, plan, partition, start, end, False, inclusive, consistent)
    else:
        if start_key is not None and start_key < end:
            end = start_key
        rows = _rows(target, plan, partition, start, end, True, True, consistent)
    _fill(page, rows, keys.check, target)
    return _finish(target, request, page, consistent)


def _table_query_keys(target: ReadTarget, condition: Any) -> QueryKeys:
    """Where a Query of the table or of a local index reads (its partition key's items)."""
    pk = condition.partition_value
    prefix = encode_partition_prefix(pk)
    start, end = sort_range(prefix, condition.sort_op, condition.sort_values,
                            target.after_sort_value)
    check = None
    if condition.sort_op == "begins_with":  # the key range is a superset (sort_range)
        range_key = target.range_key
        check = lambda item: condition.sort_matches(item[range_key])  # noqa: E731
    return QueryKeys(partition_hash(pk), prefix, start, end, check)


def _rows(target: ReadTarget, plan: ReadPlan, partition: Any, start: bytes, end: bytes | None,
          reverse: bool, inclusive: bool, consistent: bool) -> Iterator[tuple]:
    """The (key, value) rows of the table or of a global index's index table (its
    entries), or a local index's (key, entry, item) rows."""
    if target.index_name is None or target.is_global:
        return partition.scan(start, end, reverse=reverse, start_inclusive=inclusive,
                              consistent=consistent)
    return partition.scan_index(target.index_name, start, end, reverse=reverse,
                                start_inclusive=inclusive, consistent=consistent,
                                fetch=plan.fetch)


def _fill(page: _Page, rows: Iterator[tuple], sort_check: Callable[[dict[str, Any]], bool] | None,
          target: ReadTarget) -> None:
    indexed = target.index_name is not None
    try:
        for row in rows:
            item = None
            if sort_check is not None or indexed:
                item = decode_image(row[1])
                if sort_check is not None and not sort_check(item):
                    continue
            if indexed:
                # A global index's rows are its index table's (key, entry): nothing fetched.
                page.offer_entry(row[1], item, row[2] if len(row) > 2 else None)
            else:
                page.offer(row[1], item)
            if page.full:
                break
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()


def _segment_bounds(request: dict[str, Any], violations: Violations) -> tuple[int, int]:
    segment = expect_type(request.get("Segment"), int, "Segment")
    total = expect_type(request.get("TotalSegments"), int, "TotalSegments")
    if segment is not None and segment < 0:
        violations.add(segment, "segment", "Member must have value greater than or equal to 0")
    if segment is not None and segment > 999999:
        violations.add(segment, "segment", "Member must have value less than or equal to 999999")
    if total is not None and total < 1:
        violations.add(total, "totalSegments",
                       "Member must have value greater than or equal to 1")
    if total is not None and total > limits.SCAN_TOTAL_SEGMENTS_MAX:
        violations.add(total, "totalSegments",
                       "Member must have value less than or equal to 1000000")
    violations.raise_if_any()
    if segment is None and total is None:
        return 0, HASH_SPACE_END
    if total is None:
        raise ValidationException(
            "The TotalSegments parameter is required but was not present in the request when "
            "Segment parameter is present")
    if segment is None:
        raise ValidationException(
            "The Segment parameter is required but was not present in the request when "
            "parameter TotalSegments is present")
    if segment >= total:
        raise ValidationException(
            "The Segment parameter is zero-based and must be less than parameter "
            f"TotalSegments: Segment: {segment} is not less than TotalSegments: {total}")
    return segment * HASH_SPACE_END // total, (segment + 1) * HASH_SPACE_END // total


def _hash_key_bytes(value: int) -> bytes | None:
    return None if value >= HASH_SPACE_END else value.to_bytes(8, "big")


def _one_partition_or_moved(partitions: list[Any], hash_start: int, hash_end: int) -> None:
    """A router's strongly consistent sub-request must fall in one partition here. One
    that spans several was planned on a map from before their split: each child may
    have its leader on another node, and each node would name the other's leader
    (the router followed them back and forth, then answered 500). Moved tells the
    router to refresh its map and plan again."""
    overlapping = sum(1 for info in partitions
                      if max(hash_start, info.hash_start) < min(hash_end, info.hash_end))
    if overlapping > 1:
        raise PartitionMovedError()


@register("Scan")
def scan(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    violations = _read_violations(request)
    _index_name_violations(request, violations)
    hash_start, hash_end = _segment_bounds(request, violations)
    segment_start, segment_end = hash_start, hash_end
    table = table_of(service, request, violations)
    target = read_target(table, request, service.db.tables)
    # A router's sub-request covers one partition of its map (router/internal.py).
    restriction = scan_slice(request)
    bytes_max = limits.QUERY_PAGE_BYTES_MAX
    if restriction is not None:
        hash_start = max(hash_start, restriction.hash_start)
        hash_end = min(hash_end, restriction.hash_end)
        bytes_max = restriction.bytes_max
    ctx = params.context_for(request, "Scan")
    filter_condition = params.read_filter(request, ctx, "ScanFilter")
    projection = params.read_projection(request, ctx)
    plan = read_plan(target, request, projection, filter_condition)
    ctx.check_unused()
    consistent = bool(expect_type(request.get("ConsistentRead"), bool, "ConsistentRead"))
    start_key = target.start_key(request)
    if start_key is not None and request.get("TotalSegments") is not None \
            and not segment_start <= int.from_bytes(start_key[:8], "big") < segment_end:
        raise ValidationException(
            "The provided Exclusive start key does not map to the provided segment")
    if restriction is not None and consistent:
        _one_partition_or_moved(table.info.partitions, hash_start, hash_end)
    page = _Page(request.get("Limit"), filter_condition, plan, consistent, bytes_max)
    source = target.source   # the table, or a global index's index table
    for partition_info, partition in zip(source.info.partitions, source.partitions):
        low = max(hash_start, partition_info.hash_start)
        high = min(hash_end, partition_info.hash_end)
        if low >= high:
            continue
        start, end = low.to_bytes(8, "big"), _hash_key_bytes(high)
        inclusive = True
        if start_key is not None:
            if end is not None and start_key >= end:
                continue
            if start_key >= start:
                start, inclusive = start_key, False
        _fill(page, _rows(target, plan, partition, start, end, False, inclusive, consistent),
              None, target)
        if page.full:
            break
    response = _finish(target, request, page, consistent)
    if restriction is not None:  # the router stitches partitions' pages with these
        internal = response[INTERNAL_KEY] = {
            LAST_KEY: None if page.last_item is None else target.key_of(page.last_item),
            BYTES_READ: page.bytes_read}
        if target.index_name is not None:
            internal[FETCH_UNITS] = page.fetch_units
    return response
