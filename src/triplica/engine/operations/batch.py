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
from triplica.engine.operations.index_writes import (ItemCollections, check_index_keys,
                                                    index_units)
from triplica.engine.operations.service import AfterCommit, Service, register
from triplica.engine.operations.validation import Violations, check_enum, expect_type
from triplica.errors import ValidationException
from triplica.model import java_text, limits
from triplica.model.capacity import indexed_capacity
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


def _one_write(table: Any, table_name: str,
               write: Any) -> tuple[Any, bytes, bytes | None, int, dict]:
    """Validate one WriteRequest; returns (partition, storage key, image or None, size,
    partition key value)."""
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
        check_index_keys(table.info, item)
        partition, storage_key = locate(table, pk, sk)
        return partition, storage_key, encode_image(item, size), size, pk
    expect_type(delete, dict, "DeleteRequest")
    pk, sk = key_from_request(table, delete.get("Key"))
    partition, storage_key = locate(table, pk, sk)
    return partition, storage_key, None, 0, pk


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
    tallies: dict[str, _TableWrites] = {}
    checking_only = validate_only(request)
    wants_capacity = request.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES") \
        and not checking_only
    for table_name, writes in request_items.items():
        table = table_of(service, {"TableName": table_name})
        seen: set[bytes] = set()
        tally = tallies[table_name] = _TableWrites(table)
        for write in writes:
            partition, storage_key, image, size, pk = _one_write(table, table_name, write)
            if storage_key in seen:
                raise ValidationException("Provided list of item keys contains duplicates")
            seen.add(storage_key)
            # Sizing the old image costs a read: only when asked, or for local indexes.
            if not checking_only and (wants_capacity or table.indexer is not None):
                tally.add(partition, storage_key, partition.read_latest(storage_key), image,
                          size, pk)
            by_partition.setdefault(id(partition), (partition, []))[1].append(
                (storage_key, image))
    if checking_only:
        return {}
    for partition, _ in by_partition.values():  # before any is proposed: all or none
        partition.check_index_backlog()
    futures = [partition.propose(entry) for partition, entry in by_partition.values()]
    response: dict[str, Any] = {"UnprocessedItems": {}}
    mode = request.get("ReturnConsumedCapacity")
    if wants_capacity:
        response["ConsumedCapacity"] = [tally.capacity(mode) for tally in tallies.values()]
    if request.get("ReturnItemCollectionMetrics") == "SIZE":
        collected = {name: tally.metrics for name, tally in tallies.items() if tally.metrics}
        if collected:
            response["ItemCollectionMetrics"] = collected
    return AfterCommit(futures, response)


class _TableWrites:
    """One table's share of a BatchWriteItem: its write units (per local index too) and
    its items' ItemCollectionMetrics (engine/operations/index_writes.py)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.table_units = 0.0
        self.index_units: dict[str, float] = {}
        self.global_units: dict[str, float] = {}
        self.metrics: list[dict[str, Any]] = []
        self._collections = None if table.indexer is None else \
            ItemCollections(table.info, table.indexer)

    def add(self, partition: Any, key: bytes, old: bytes | None, new: bytes | None,
            size: int, partition_value: dict) -> None:
        """Raises ItemCollectionSizeLimitExceededException for a write its collection
        can't take (the whole batch is refused)."""
        self.table_units += write_units(max(size, image_size(old)))
        for name, units in index_units(self.table.global_indexer, key, old, new).items():
            self.global_units[name] = self.global_units.get(name, 0.0) + units
        if self._collections is None:
            return
        for name, units in index_units(self.table.indexer, key, old, new).items():
            self.index_units[name] = self.index_units.get(name, 0.0) + units
        self.metrics.append(self._collections.write(partition, key, old, new, partition_value))

    def capacity(self, mode: str) -> dict[str, Any] | None:
        name = self.table.info.name
        if self._collections is None and not self.global_units:
            return consumed_capacity(mode, name, self.table_units, "WriteCapacityUnits")
        return indexed_capacity(mode, name, "WriteCapacityUnits", self.table_units,
                                self.index_units, self.global_units)
