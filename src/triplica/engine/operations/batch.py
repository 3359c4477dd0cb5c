"""BatchGetItem and BatchWriteItem.

Every request of a batch is validated before anything is read or written, so a
bad request changes nothing. BatchWriteItem then proposes one log entry per
partition touched (the puts and deletes of that partition together) and
answers once all are durable. A router splitting a batch over partitions
first sends the whole batch with the internal "validate only" parameter
(router/internal.py): every check runs, nothing is read or written, so a bad
request in one partition's share still changes nothing anywhere. BatchGetItem stops adding items once the 16 MB
response bound would be crossed and returns the rest as UnprocessedKeys.
"""
from __future__ import annotations

from typing import Any

from triplica.engine.operations import expression_params as params
from triplica.engine.operations.item_access import (checked_item_size, consumed_capacity, encode_image,
                                      image_size, decode_image, key_from_item, key_from_request,
                                      locate, read_units, table_of, write_units)
from triplica.engine.operations.service import AfterCommit, Service, register
from triplica.engine.operations.validation import Violations, check_enum, expect_type
from triplica.errors import ValidationException
from triplica.model import java_text, limits
from triplica.model.values import validate_item
from triplica.common.internal import validate_only


def _request_items(request: dict[str, Any], violations: Violations,
                   operation: str) -> dict[str, Any]:
    check_enum(request.get("ReturnConsumedCapacity"), ("INDEXES", "TOTAL", "NONE"),
               "returnConsumedCapacity", violations)
    items = expect_type(request.get("RequestItems"), dict, "RequestItems")
    if items is None:
        violations.add(None, "requestItems", "Member must not be null")
    elif not items:
        raise ValidationException(f"The requestItems parameter is required for {operation}")
    return items or {}


@register("BatchGetItem")
def batch_get_item(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    violations = Violations()
    request_items = _request_items(request, violations, "BatchGetItem")
    violations.raise_if_any()
    for table_name, spec in request_items.items():
        if isinstance(spec, dict) and isinstance(spec.get("Keys"), list) \
                and len(spec["Keys"]) > limits.BATCH_GET_KEYS_MAX:
            raise ValidationException(
                "1 validation error detected: Value at "
                f"'RequestItems.{table_name}.member.Keys' failed to satisfy constraint: "
                f"Member must have length less than or equal to {limits.BATCH_GET_KEYS_MAX}")
    total_keys = sum(len(spec.get("Keys") or []) for spec in request_items.values()
                     if isinstance(spec, dict))
    if total_keys > limits.BATCH_GET_KEYS_MAX:
        raise ValidationException("Too many items requested for the BatchGetItem call")
    for table_name, spec in request_items.items():
        if spec is None:
            violations.add(None, f"requestItems.{table_name}.member", "Member must not be null")
    violations.raise_if_any()
    plans = []
    for table_name, spec in request_items.items():
        expect_type(spec, dict, "KeysAndAttributes")
        table = table_of(service, {"TableName": table_name})
        keys = expect_type(spec.get("Keys"), list, "Keys")
        if not keys:
            raise ValidationException(
                "1 validation error detected: Value null at "
                f"'requestItems.{table_name}.member.keys' failed to satisfy constraint: "
                "Member must have length greater than or equal to 1")
        ctx = params.context_for(spec, "BatchGetItem")
        projection = params.read_projection(spec, ctx)
        ctx.check_unused()
        located = []
        seen: set[bytes] = set()
        for key in keys:
            pk, sk = key_from_request(table, key)
            partition, storage_key = locate(table, pk, sk)
            if storage_key in seen:
                raise ValidationException("Provided list of item keys contains duplicates")
            seen.add(storage_key)
            located.append((key, partition, storage_key))
        plans.append((table_name, table, spec, projection, located))
    if validate_only(request):
        return {}
    responses: dict[str, list] = {}
    unprocessed: dict[str, Any] = {}
    capacities = []
    bytes_total = 0
    full = False
    for table_name, table, spec, projection, located in plans:
        consistent = bool(spec.get("ConsistentRead"))
        found = responses.setdefault(table_name, [])
        units = 0.0
        for key, partition, storage_key in located:
            stored = None if full else partition.read_applied(storage_key, consistent=consistent)
            if full or bytes_total + image_size(stored) > limits.BATCH_GET_RESPONSE_BYTES_MAX:
                full = True  # the answer is full: this key and the rest are unprocessed
                pending = unprocessed.setdefault(
                    table_name, {k: v for k, v in spec.items() if k != "Keys"})
                pending.setdefault("Keys", []).append(key)
                continue
            units += read_units(image_size(stored), consistent)
            if stored is not None:
                bytes_total += image_size(stored)
                item = decode_image(stored)
                found.append(projection.apply(item) if projection is not None else item)
        capacity = consumed_capacity(request.get("ReturnConsumedCapacity"), table_name, units,
                                     "ReadCapacityUnits")
        if capacity is not None:
            capacities.append(capacity)
    response: dict[str, Any] = {"Responses": responses, "UnprocessedKeys": unprocessed}
    if request.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES"):
        response["ConsumedCapacity"] = capacities
    return response


def _one_write(table: Any, table_name: str, write: Any) -> tuple[Any, bytes, bytes | None, int]:
    """Validate one WriteRequest; returns (partition, storage key, image or None, size)."""
    expect_type(write, dict, "WriteRequest")
    put, delete = write.get("PutRequest"), write.get("DeleteRequest")
    if (put is None) == (delete is None):
        raise ValidationException(
            "One or more parameter values were invalid: A WriteRequest must contain exactly "
            "one of PutRequest or DeleteRequest")
    if put is not None:
        expect_type(put, dict, "PutRequest")
        item = validate_item(put.get("Item"))
        pk, sk = key_from_item(table, item)
        size = checked_item_size(item)
        partition, storage_key = locate(table, pk, sk)
        return partition, storage_key, encode_image(item, size), size
    expect_type(delete, dict, "DeleteRequest")
    pk, sk = key_from_request(table, delete.get("Key"))
    partition, storage_key = locate(table, pk, sk)
    return partition, storage_key, None, 0


@register("BatchWriteItem")
def batch_write_item(service: Service, request: dict[str, Any]) -> Any:
    violations = Violations()
    request_items = _request_items(request, violations, "BatchWriteItem")
    check_enum(request.get("ReturnItemCollectionMetrics"), ("SIZE", "NONE"),
               "returnItemCollectionMetrics", violations)
    for table_name, writes in request_items.items():
        expect_type(writes, list, "WriteRequests")
        if writes is None:
            violations.add(None, f"requestItems.{table_name}.member", "Member must not be null")
            break
        for position, write in enumerate(writes, 1):
            if write is None:
                violations.add(None, f"requestItems.{table_name}.member.{position}.member",
                               "Member must not be null")
        if not 1 <= len(writes) <= limits.BATCH_WRITE_REQUESTS_MAX:
            shown = {name: [java_text.Opaque("WriteRequest", write) for write in table_writes]
                     if isinstance(table_writes, list) else table_writes
                     for name, table_writes in request_items.items()}
            violations.add(shown, "requestItems",
                           "Map value must satisfy constraint: [Member must have length less "
                           "than or equal to 25, Member must have length greater than or "
                           "equal to 1]")
            break
    violations.raise_if_any()
    if sum(len(writes) for writes in request_items.values()) > limits.BATCH_WRITE_REQUESTS_MAX:
        raise ValidationException(
            "Too many items requested for the BatchWriteItem call")
    by_partition: dict[int, tuple[Any, list]] = {}
    units_by_table: dict[str, float] = {}
    checking_only = validate_only(request)
    wants_capacity = request.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES") \
        and not checking_only
    for table_name, writes in request_items.items():
        table = table_of(service, {"TableName": table_name})
        seen: set[bytes] = set()
        for write in writes:
            partition, storage_key, image, size = _one_write(table, table_name, write)
            if storage_key in seen:
                raise ValidationException("Provided list of item keys contains duplicates")
            seen.add(storage_key)
            if wants_capacity:  # sizing the old image costs a read: only when asked
                old_size = image_size(partition.read_latest(storage_key))
                units_by_table[table_name] = units_by_table.get(table_name, 0.0) + \
                    write_units(max(size, old_size))
            by_partition.setdefault(id(partition), (partition, []))[1].append(
                (storage_key, image))
    if checking_only:
        return {}
    futures = [partition.propose(entry) for partition, entry in by_partition.values()]
    response: dict[str, Any] = {"UnprocessedItems": {}}
    if wants_capacity:
        response["ConsumedCapacity"] = [
            consumed_capacity(request["ReturnConsumedCapacity"], name, units,
                              "WriteCapacityUnits")
            for name, units in units_by_table.items()]
    return AfterCommit(futures, response)
