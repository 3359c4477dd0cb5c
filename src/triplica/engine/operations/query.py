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
"""
from __future__ import annotations

from typing import Any, Iterator

from triplica.engine.operations import expression_params as params
from triplica.engine.operations.item_access import (consumed_capacity, decode_image, image_size,
                                      key_from_request, read_units, table_of)
from triplica.engine.operations.service import Service, register
from triplica.engine.operations.validation import (SELECT_VALUES, Violations, check_enum,
                                                   check_table_name, expect_type)
from triplica.engine.catalogue import HASH_SPACE_END
from triplica.engine.database import Table
from triplica.errors import ValidationException
from triplica.expressions import parse_key_condition
from triplica.expressions import legacy
from triplica.model import limits
from triplica.model.keys import (encode_key_value, encode_partition_prefix, encode_storage_key,
                                 partition_hash, validate_key_value)
from triplica.common.internal import BYTES_READ, INTERNAL_KEY, LAST_KEY, scan_slice

PARTITION_END = b"\xff"   # above every encoded sort key (type tags are below 0xff)
AFTER_EXACT = b"\x00"     # key + this is above key and below anything key is not a prefix of


class _Page:
    """Accumulates one page of results under DynamoDB's limits."""

    def __init__(self, limit: int | None, filter_condition: Any, projection: Any,
                 count_only: bool, bytes_max: int = limits.QUERY_PAGE_BYTES_MAX) -> None:
        self.limit = limit
        self.bytes_max = bytes_max
        self.filter = filter_condition
        self.projection = projection
        self.count_only = count_only
        self.items: list[dict[str, Any]] = []
        self.count = 0
        self.scanned = 0
        self.bytes_read = 0
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


def _select(request: dict[str, Any], projection: Any) -> bool:
    """Validate Select against the projection; True when only a count is wanted."""
    select = request.get("Select")
    if request.get("IndexName") is not None:
        raise ValidationException(
            f"The table does not have the specified index: {request['IndexName']}")
    if select == "ALL_PROJECTED_ATTRIBUTES":
        raise ValidationException(
            "One or more parameter values were invalid: Select type ALL_PROJECTED_ATTRIBUTES "
            "is supported only when using an IndexName")
    if select == "SPECIFIC_ATTRIBUTES" and projection is None:
        raise ValidationException(
            "One or more parameter values were invalid: Select type SPECIFIC_ATTRIBUTES "
            "requires AttributesToGet or ProjectionExpression")
    if select in ("ALL_ATTRIBUTES", "COUNT") and projection is not None:
        which = "ProjectionExpression" if request.get("ProjectionExpression") else "AttributesToGet"
        raise ValidationException(
            f"Cannot specify the {which} when choosing to get {select}")
    return select == "COUNT"


def _start_key(table: Table, request: dict[str, Any]) -> bytes | None:
    start = request.get("ExclusiveStartKey")
    if start is None:
        return None
    try:
        pk, sk = key_from_request(table, start)
    except ValidationException as error:
        raise ValidationException(f"The provided starting key is invalid: {error.message}")
    return encode_storage_key(pk, sk)


def _finish(table: Table, request: dict[str, Any], page: _Page, consistent: bool,
            count_only: bool) -> dict[str, Any]:
    response: dict[str, Any] = {"Count": page.count, "ScannedCount": page.scanned}
    if not count_only:
        response["Items"] = page.items
    if page.full and page.last_item is not None:
        response["LastEvaluatedKey"] = _key_of(table, page.last_item)
    capacity = consumed_capacity(request.get("ReturnConsumedCapacity"), table.info.name,
                                 read_units(page.bytes_read, consistent), "ReadCapacityUnits")
    if capacity is not None:
        response["ConsumedCapacity"] = capacity
    return response


def _key_of(table: Table, item: dict[str, Any]) -> dict[str, Any]:
    info = table.info
    key = {info.hash_key: item[info.hash_key]}
    if info.range_key is not None:
        key[info.range_key] = item[info.range_key]
    return key


def _key_condition(table: Table, request: dict[str, Any], ctx: Any) -> Any:
    info = table.info
    text = expect_type(request.get("KeyConditionExpression"), str, "KeyConditionExpression")
    if text is not None:
        condition = parse_key_condition(text, ctx, info.hash_key, info.range_key)
    elif request.get("KeyConditions") is not None:
        condition = legacy.key_condition_from_key_conditions(
            request["KeyConditions"], info.hash_key, info.range_key)
    else:
        raise ValidationException(
            "Either the KeyConditions or KeyConditionExpression parameter must be specified "
            "in the request.")
    if info.hash_type not in condition.partition_value:
        raise ValidationException(
            "One or more parameter values were invalid: Condition parameter type does not "
            "match schema type")
    for value in condition.sort_values:
        if info.range_type not in value:
            raise ValidationException(
                "One or more parameter values were invalid: Condition parameter type does not "
                "match schema type")
    # Key values beyond DynamoDB's key sizes match no item and would make storage
    # keys the store refuses (found by the fuzz run): the same errors as GetItem's.
    validate_key_value(info.hash_key, condition.partition_value, True)
    for value in condition.sort_values:
        validate_key_value(info.range_key, value, False)
    return condition


def _check_filter_keys(table: Table, request: dict[str, Any], filter_condition: Any) -> None:
    """A Query filter may not use key attributes (the key condition already does)."""
    if filter_condition is None:
        return
    used = filter_condition.top_level_names()
    for key_name in (table.info.hash_key, table.info.range_key):
        if key_name is not None and key_name in used:
            if request.get("FilterExpression") is not None:
                raise ValidationException(
                    "Filter Expression can only contain non-primary key attributes: "
                    f"Primary key attribute: {key_name}")
            raise ValidationException(
                "QueryFilter can only contain non-key attributes: "
                f"Primary key attribute: {key_name}")


def _sort_range(prefix: bytes, condition: Any) -> tuple[bytes, bytes]:
    """[start, end) of storage keys that can satisfy the sort key condition."""
    op, values = condition.sort_op, condition.sort_values
    if op is None:
        return prefix, prefix + PARTITION_END
    if op == "begins_with":
        # S and B encode as tag || escaped bytes || 00 01, and escaping maps each byte on its
        # own, so every value starting with v encodes to a key starting with this prefix.
        start = prefix + encode_key_value(values[0])[:-2]
        return start, _prefix_successor(start)
    first = prefix + encode_key_value(values[0])
    if op == "=":
        return first, first + AFTER_EXACT
    if op == "<":
        return prefix, first
    if op == "<=":
        return prefix, first + AFTER_EXACT
    if op == ">":
        return first + AFTER_EXACT, prefix + PARTITION_END
    if op == ">=":
        return first, prefix + PARTITION_END
    assert op == "BETWEEN", op
    return first, prefix + encode_key_value(values[1]) + AFTER_EXACT


def _prefix_successor(key: bytes) -> bytes:
    """The smallest byte string above every string that starts with `key`."""
    stripped = key.rstrip(b"\xff")
    assert stripped, "a storage key prefix is never all 0xff bytes"
    return stripped[:-1] + bytes((stripped[-1] + 1,))


@register("Query")
def query(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    violations = _read_violations(request, "Query")
    check_table_name(request.get("TableName"), violations)
    violations.raise_if_any()
    _check_query_limit(request)
    table = table_of(service, request)
    ctx = params.context_for(request, "Query")
    condition = _key_condition(table, request, ctx)
    filter_condition = params.read_filter(request, ctx, "QueryFilter")
    _check_filter_keys(table, request, filter_condition)
    projection = params.read_projection(request, ctx)
    count_only = _select(request, projection)
    ctx.check_unused()
    consistent = bool(expect_type(request.get("ConsistentRead"), bool, "ConsistentRead"))
    forward = expect_type(request.get("ScanIndexForward"), bool, "ScanIndexForward")
    forward = True if forward is None else forward
    start_key = _start_key(table, request)
    pk = condition.partition_value
    prefix = encode_partition_prefix(pk)
    start, end = _sort_range(prefix, condition)
    if start_key is not None and not start_key.startswith(prefix):
        raise ValidationException("The provided starting key is invalid: The provided key "
                                  "element does not match the schema")
    partition = table.partition_for_hash(partition_hash(pk))
    page = _Page(request.get("Limit"), filter_condition, projection, count_only)
    if forward:
        inclusive = True
        if start_key is not None and start_key >= start:
            start, inclusive = start_key, False
        rows = partition.scan(start, end, reverse=False, start_inclusive=inclusive,
                              consistent=consistent)
    else:
        if start_key is not None and start_key < end:
            end = start_key
        rows = partition.scan(start, end, reverse=True, consistent=consistent)
    _fill(page, rows, condition if condition.sort_op == "begins_with" else None, table)
    return _finish(table, request, page, consistent, count_only)


def _fill(page: _Page, rows: Iterator[tuple[bytes, bytes]], sort_check: Any,
          table: Table) -> None:
    range_key = table.info.range_key
    try:
        for _, stored in rows:
            item = None
            if sort_check is not None:
                item = decode_image(stored)
                if not sort_check.sort_matches(item[range_key]):
                    continue
            page.offer(stored, item)
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


@register("Scan")
def scan(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    violations = _read_violations(request)
    hash_start, hash_end = _segment_bounds(request, violations)
    segment_start, segment_end = hash_start, hash_end
    table = table_of(service, request, violations)
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
    count_only = _select(request, projection)
    ctx.check_unused()
    consistent = bool(expect_type(request.get("ConsistentRead"), bool, "ConsistentRead"))
    start_key = _start_key(table, request)
    if start_key is not None and request.get("TotalSegments") is not None \
            and not segment_start <= int.from_bytes(start_key[:8], "big") < segment_end:
        raise ValidationException(
            "The provided Exclusive start key does not map to the provided segment")
    page = _Page(request.get("Limit"), filter_condition, projection, count_only, bytes_max)
    for partition_info, partition in zip(table.info.partitions, table.partitions):
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
        _fill(page, partition.scan(start, end, reverse=False, start_inclusive=inclusive,
                                  consistent=consistent),
              None, table)
        if page.full:
            break
    response = _finish(table, request, page, consistent, count_only)
    if restriction is not None:  # the router stitches partitions' pages with these
        response[INTERNAL_KEY] = {
            LAST_KEY: None if page.last_item is None else _key_of(table, page.last_item),
            BYTES_READ: page.bytes_read}
    return response
