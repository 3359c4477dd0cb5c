"""Single-item operations: PutItem, GetItem, UpdateItem, DeleteItem.

Writes follow DESIGN.md's "the log is the truth": the handler (the leader)
reads the latest state of the item including queued writes, evaluates the
condition and the update against it, and proposes the resulting item image.
Everything up to `propose` is synchronous, so no other write to the partition
can interleave between the evaluation and the proposal. The answer is sent
only after the entry is durable in the WAL and applied.
"""
from __future__ import annotations

import asyncio
from typing import Any

from triplica.engine.operations import expression_params as params
from triplica.engine.operations.item_access import (check_common_enums, checked_item_size, consumed_capacity,
                                      decode_image, encode_image, image_size, key_attributes,
                                      key_from_item, key_from_request, locate, read_units,
                                      table_of, write_units)
from triplica.engine.operations.index_writes import (ItemCollections, check_index_keys,
                                                    index_units)
from triplica.engine.operations.service import AfterCommit, Service, register
from triplica.engine.operations.validation import (RETURN_VALUES, RETURN_VALUES_ON_CONDITION_CHECK_FAILURE,
                                     Violations, check_enum, expect_type)
from triplica.errors import (ConditionalCheckFailedException, DynamoError, InternalServerError,
                             ValidationException)
from triplica.model import limits
from triplica.model.capacity import indexed_capacity
from triplica.model.size import attribute_size_bytes, item_size_bytes
from triplica.model.values import validate_item

WRITE_UNITS = "WriteCapacityUnits"
READ_UNITS = "ReadCapacityUnits"


def _write_violations(request: dict[str, Any]) -> Violations:
    violations = Violations()
    check_common_enums(request, violations)
    check_enum(request.get("ReturnValues"), RETURN_VALUES, "returnValues", violations)
    check_enum(request.get("ReturnValuesOnConditionCheckFailure"),
               RETURN_VALUES_ON_CONDITION_CHECK_FAILURE,
               "returnValuesOnConditionCheckFailure", violations)
    check_enum(request.get("ConditionalOperator"), ("AND", "OR"), "conditionalOperator",
               violations)
    return violations


def _condition_failure(condition: Any, old: dict | None, request: dict[str, Any],
                       partition: Any, key: bytes) -> Any:
    """None when the condition holds; otherwise what the handler must answer.

    The condition was evaluated against the latest state, which may include a
    queued write that is not durable yet. Answering "condition failed" at once
    would let the client observe that write before any reader can (and before
    it is certain to happen): the failure is sent only once the queued write
    it depended on is durable, and becomes a 500 if that write fails.
    """
    if condition is None or condition.evaluate(old):
        return None
    keep_old = request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
    error = ConditionalCheckFailedException(
        "The conditional request failed", item=old if keep_old and old else None)
    return _answer_after_queued(partition, key, error)


def _answer_after_queued(partition: Any, key: bytes, error: Exception) -> Any:
    """Raise `error` now, or once the queued write to `key` it was derived from is durable."""
    queued = partition.pending_write(key)
    if queued is None:
        raise error
    return _fail_after(queued, error)


def _reply_after_queued(partition: Any, key: bytes, response: dict[str, Any]) -> Any:
    """`response` now, or once the queued write to `key` it was derived from is durable."""
    queued = partition.pending_write(key)
    if queued is None:
        return response
    return _reply_after(queued, response)


async def _reply_after(queued: Any, response: dict[str, Any]) -> Any:
    try:
        await asyncio.shield(queued)
    except Exception:
        raise InternalServerError("Internal server error") from None
    return response


async def _fail_after(queued: Any, error: Exception) -> Any:
    try:
        await asyncio.shield(queued)
    except Exception:
        raise InternalServerError("Internal server error") from None
    raise error


def _add_capacity(response: dict[str, Any], request: dict[str, Any], table_name: str,
                  units: float, kind: str) -> None:
    capacity = consumed_capacity(request.get("ReturnConsumedCapacity"), table_name, units, kind)
    if capacity is not None:
        response["ConsumedCapacity"] = capacity


class _IndexedWrite:
    """What one item's write adds to its answer on a table with secondary indexes
    (engine/operations/index_writes.py): per-index capacity, and ItemCollectionMetrics
    for local ones."""

    __slots__ = ("index_units", "global_units", "metrics")

    def __init__(self, table: Any, partition: Any, key: bytes, old: bytes | None,
                 new: bytes | None, partition_value: dict, charged: bool) -> None:
        """`charged`: capacity is reported (global indexes' units are computed only
        then). Raises ItemCollectionSizeLimitExceededException for a write the
        collection can't take."""
        indexer = table.indexer
        self.index_units = index_units(indexer, key, old, new)
        self.global_units = index_units(table.global_indexer, key, old, new) \
            if charged else {}
        self.metrics = None if indexer is None else ItemCollections(table.info, indexer).write(
            partition, key, old, new, partition_value)

    def answer(self, response: dict[str, Any], request: dict[str, Any], table_name: str,
               table_units: float) -> None:
        capacity = indexed_capacity(request.get("ReturnConsumedCapacity"), table_name,
                                    WRITE_UNITS, table_units, self.index_units,
                                    self.global_units)
        if capacity is not None:
            response["ConsumedCapacity"] = capacity
        if request.get("ReturnItemCollectionMetrics") == "SIZE" and self.metrics is not None:
            response["ItemCollectionMetrics"] = self.metrics


def _indexed_write(table: Any, partition: Any, key: bytes, old: bytes | None,
                   new: bytes | None, partition_value: dict,
                   request: dict[str, Any]) -> tuple[_IndexedWrite | None, Any]:
    """(_IndexedWrite or None when no index has a part in the answer, None), or (None,
    the error answer when the collection can't grow, sent once the queued write the
    old image came from is durable)."""
    charged = request.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES")
    if table.indexer is None and (not charged or table.global_indexer is None):
        return None, None
    try:
        return _IndexedWrite(table, partition, key, old, new, partition_value, charged), None
    except DynamoError as error:
        return None, _answer_after_queued(partition, key, error)


def _write_answer(response: dict[str, Any], request: dict[str, Any], table: Any,
                  indexed: _IndexedWrite | None, table_units: float) -> None:
    if indexed is None:
        _add_capacity(response, request, table.info.name, table_units, WRITE_UNITS)
    else:
        indexed.answer(response, request, table.info.name, table_units)


@register("PutItem")
def put_item(service: Service, request: dict[str, Any]) -> Any:
    violations = _write_violations(request)
    if request.get("Item") is None:
        violations.add(None, "item", "Member must not be null")
    table = table_of(service, request, violations)
    return_values = request.get("ReturnValues") or "NONE"
    if return_values not in ("NONE", "ALL_OLD"):
        raise ValidationException("Return values set to invalid value")
    expect_type(request["Item"], dict, "Item")
    item = validate_item(request["Item"])
    pk, sk = key_from_item(table, item)
    size = checked_item_size(item)
    check_index_keys(table.info, item)
    ctx = params.context_for(request, "PutItem")
    condition = params.write_condition(request, ctx)
    ctx.check_unused()
    partition, key = locate(table, pk, sk)
    # The old image is needed only for a condition, ALL_OLD, capacity or local indexes:
    # skip the read otherwise.
    needs_old = condition is not None or return_values == "ALL_OLD" \
        or request.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES") \
        or table.indexer is not None
    stored = partition.read_latest(key) if needs_old else None
    old = decode_image(stored)
    failure = _condition_failure(condition, old, request, partition, key)
    if failure is not None:
        return failure
    image = encode_image(item, size)
    indexed, refusal = _indexed_write(table, partition, key, stored, image, pk, request)
    if refusal is not None:
        return refusal
    future = partition.propose([(key, image)])
    response: dict[str, Any] = {}
    if return_values == "ALL_OLD" and old is not None:
        response["Attributes"] = old
    _write_answer(response, request, table, indexed, write_units(max(size, image_size(stored))))
    return AfterCommit([future], response)


@register("GetItem")
def get_item(service: Service, request: dict[str, Any]) -> Any:
    violations = Violations()
    check_enum(request.get("ReturnConsumedCapacity"), ("INDEXES", "TOTAL", "NONE"),
               "returnConsumedCapacity", violations)
    table = table_of(service, request, violations)
    pk, sk = key_from_request(table, request.get("Key"))
    ctx = params.context_for(request, "GetItem")
    projection = params.read_projection(request, ctx)
    ctx.check_unused()
    consistent = bool(expect_type(request.get("ConsistentRead"), bool, "ConsistentRead"))
    partition, key = locate(table, pk, sk)
    stored = partition.read_applied(key, consistent=consistent)
    capacity = consumed_capacity(request.get("ReturnConsumedCapacity"), table.info.name,
                                 read_units(image_size(stored), consistent), READ_UNITS)
    if stored is not None and projection is None and capacity is None:
        return b'{"Item":' + bytes(memoryview(stored)[4:]) + b"}"
    response: dict[str, Any] = {}
    if stored is not None:
        item = decode_image(stored)
        response["Item"] = projection.apply(item) if projection is not None else item
    if capacity is not None:
        response["ConsumedCapacity"] = capacity
    return response


@register("DeleteItem")
def delete_item(service: Service, request: dict[str, Any]) -> Any:
    violations = _write_violations(request)
    table = table_of(service, request, violations)
    return_values = request.get("ReturnValues") or "NONE"
    if return_values not in ("NONE", "ALL_OLD"):
        raise ValidationException("Return values set to invalid value")
    pk, sk = key_from_request(table, request.get("Key"))
    ctx = params.context_for(request, "DeleteItem")
    condition = params.write_condition(request, ctx)
    ctx.check_unused()
    partition, key = locate(table, pk, sk)
    stored = partition.read_latest(key)
    old = decode_image(stored)
    failure = _condition_failure(condition, old, request, partition, key)
    if failure is not None:
        return failure
    indexed, refusal = _indexed_write(table, partition, key, stored, None, pk, request)
    if refusal is not None:
        return refusal
    future = partition.propose([(key, None)])
    response: dict[str, Any] = {}
    if return_values == "ALL_OLD" and old is not None:
        response["Attributes"] = old
    _write_answer(response, request, table, indexed, write_units(image_size(stored)))
    return AfterCommit([future], response)


def _updated_slice(item: dict[str, Any] | None, plan: Any) -> dict[str, Any]:
    """The parts of the item at the paths the update wrote (UPDATED_OLD / UPDATED_NEW)."""
    if not item or plan is None:
        return {}
    return plan.updated_attributes(item)


def _updated_size(old: dict | None, stored: bytes | None, new: dict[str, Any],
                  written: set[str]) -> int:
    """Size of the updated item: the stored size adjusted for the attributes the update
    wrote, instead of re-measuring the whole item."""
    if old is None:
        size = item_size_bytes(new)
    else:
        size = image_size(stored)
        for name in written:
            if name in old:
                size -= attribute_size_bytes(name, old[name])
            if name in new:
                size += attribute_size_bytes(name, new[name])
        assert size >= 0, size
    if size > limits.ITEM_SIZE_BYTES_MAX:
        raise ValidationException("Item size to update has exceeded the maximum allowed size")
    return size


@register("UpdateItem")
def update_item(service: Service, request: dict[str, Any]) -> Any:
    violations = _write_violations(request)
    table = table_of(service, request, violations)
    return_values = request.get("ReturnValues") or "NONE"
    pk, sk = key_from_request(table, request.get("Key"))
    ctx = params.context_for(request, "UpdateItem")
    plan = params.update_plan(request, ctx)
    condition = params.write_condition(request, ctx)
    ctx.check_unused()
    info = table.info
    written = plan.top_level_names() if plan is not None else set()
    for key_name in (info.hash_key, info.range_key):
        if key_name is not None and key_name in written:
            raise ValidationException(
                f"One or more parameter values were invalid: Cannot update attribute "
                f"{key_name}. This attribute is part of the key")
    partition, key = locate(table, pk, sk)
    stored = partition.read_latest(key)
    old = decode_image(stored)
    failure = _condition_failure(condition, old, request, partition, key)
    if failure is not None:
        return failure
    base = old if old is not None else key_attributes(table, pk, sk)
    if old is None and plan is not None and plan.removes_only():
        # DynamoDB creates no item when an update of a missing one only removes.
        response: dict[str, Any] = {}
        _add_capacity(response, request, info.name, write_units(item_size_bytes(base)),
                      WRITE_UNITS)
        return _reply_after_queued(partition, key, response)
    try:  # errors that depend on the item's current (possibly queued) state
        new = plan.apply(base) if plan is not None else base
        size = _updated_size(old, stored, new, written)
        check_index_keys(info, new)
    except ValidationException as error:
        return _answer_after_queued(partition, key, error)
    image = encode_image(new, size)
    indexed, refusal = _indexed_write(table, partition, key, stored, image, pk, request)
    if refusal is not None:
        return refusal
    future = partition.propose([(key, image)])
    response = {}
    if return_values == "ALL_OLD" and old is not None:
        response["Attributes"] = old
    elif return_values == "ALL_NEW":
        response["Attributes"] = new
    elif return_values == "UPDATED_OLD":
        attributes = _updated_slice(old, plan)
        if attributes:
            response["Attributes"] = attributes
    elif return_values == "UPDATED_NEW":
        attributes = _updated_slice(new, plan)
        if attributes:
            response["Attributes"] = attributes
    _write_answer(response, request, table, indexed, write_units(max(size, image_size(stored))))
    return AfterCommit([future], response)
