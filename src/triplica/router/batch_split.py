"""BatchGetItem and BatchWriteItem split by partition, and their answers merged
(pure parts; the router sends the sub-batches).

A batch's keys (BatchGetItem) or write requests (BatchWriteItem) are grouped
by (table, partition of the key's hash) in request order; each group becomes
one sub-batch with the table's other parameters (ProjectionExpression,
ConsistentRead, ...) and the request's ReturnConsumedCapacity. Anything the
router can't route (an unknown table, a malformed key) makes the split
return None, and the router hands the whole batch to a node, whose
validation answers with DynamoDB's error.

Merging follows DynamoDB: Responses and ConsumedCapacity add up per table
(per local secondary index too), ItemCollectionMetrics are gathered per table;
a sub-batch that failed (its partition unreachable within the deadline, an
outcome unknown, a throttle) goes back to the client as UnprocessedKeys /
UnprocessedItems, which it resends; only when no sub-batch succeeded does
the client get the error itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from triplica.model.partition_map import Route, TableMap
from triplica.router.key_routes import value_hash

CAPACITY_FIELDS = ("CapacityUnits", "ReadCapacityUnits", "WriteCapacityUnits")


@dataclass(frozen=True)
class SubBatch:
    table: str
    route: Route
    entries: tuple[Any, ...]   # keys (BatchGetItem) or write requests (BatchWriteItem)
    spec: Mapping[str, Any]    # BatchGetItem: the table's KeysAndAttributes minus Keys
    needs_leader: bool


def _write_key(write: Any) -> Any:
    if type(write) is not dict:
        return None
    put, delete = write.get("PutRequest"), write.get("DeleteRequest")
    if type(put) is dict and delete is None:
        return put.get("Item")
    if type(delete) is dict and put is None:
        return delete.get("Key")
    return None


def _group(table: str, table_map: TableMap, entries: list[Any], keys: list[Any],
           spec: Mapping[str, Any], needs_leader: bool) -> list[SubBatch] | None:
    by_index: dict[int, list[Any]] = {}
    for entry, key in zip(entries, keys):
        key_hash = value_hash(key.get(table_map.hash_key), table_map.hash_type) \
            if type(key) is dict else None
        if key_hash is None:
            return None
        by_index.setdefault(table_map.index_of(key_hash), []).append(entry)
    return [SubBatch(table, table_map.route(index), tuple(grouped), spec, needs_leader)
            for index, grouped in sorted(by_index.items())]


def split_batch(operation: str, parameters: dict[str, Any],
                maps: Mapping[str, TableMap | None]) -> list[SubBatch] | None:
    """Sub-batches in (table, hash) order; None when anything can't be routed."""
    request_items = parameters.get("RequestItems")
    if type(request_items) is not dict or not request_items:
        return None
    subs: list[SubBatch] = []
    for table, value in request_items.items():
        table_map = maps.get(table)
        if table_map is None:
            return None
        if operation == "BatchGetItem":
            if type(value) is not dict or type(value.get("Keys")) is not list:
                return None
            keys = value["Keys"]
            spec = {name: v for name, v in value.items() if name != "Keys"}
            grouped = _group(table, table_map, keys, keys, spec,
                             value.get("ConsistentRead") is True)
        else:
            if type(value) is not list:
                return None
            grouped = _group(table, table_map, value, [_write_key(w) for w in value], {}, True)
        if grouped is None:
            return None
        subs.extend(grouped)
    return subs


def sub_body(operation: str, parameters: dict[str, Any], sub: SubBatch) -> dict[str, Any]:
    """The request a node runs for one sub-batch."""
    body = {name: value for name, value in parameters.items()
            if name in ("ReturnConsumedCapacity", "ReturnItemCollectionMetrics")}
    if operation == "BatchGetItem":
        body["RequestItems"] = {sub.table: {**sub.spec, "Keys": list(sub.entries)}}
    else:
        body["RequestItems"] = {sub.table: list(sub.entries)}
    return body


def merge_capacities(capacities: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """ConsumedCapacity entries summed per table (nested `Table` and each local
    secondary index's too), first-seen order."""
    merged: dict[str, dict[str, Any]] = {}
    for capacity in capacities:
        name = capacity.get("TableName")
        total = merged.setdefault(str(name), {"TableName": name})
        _add_units(total, capacity)
        if type(capacity.get("Table")) is dict:
            _add_units(total.setdefault("Table", {}), capacity["Table"])
        indexes = capacity.get("LocalSecondaryIndexes")
        if type(indexes) is dict:
            into = total.setdefault("LocalSecondaryIndexes", {})
            for index, units in indexes.items():
                _add_units(into.setdefault(index, {}), units)
    return list(merged.values())


def _add_units(total: dict[str, Any], part: Mapping[str, Any]) -> None:
    for field in CAPACITY_FIELDS:
        if field in part:
            total[field] = total.get(field, 0.0) + float(part[field])


class BatchMerge:
    """One client answer from sub-batch answers (module docstring)."""

    def __init__(self, operation: str, parameters: dict[str, Any]) -> None:
        assert operation in ("BatchGetItem", "BatchWriteItem"), operation
        self.operation = operation
        self.wants_capacity = parameters.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES")
        self.responses: dict[str, list[Any]] = {}
        if operation == "BatchGetItem":
            self.responses = {table: [] for table in parameters.get("RequestItems", {})}
        self.unprocessed: dict[str, Any] = {}
        self.capacities: list[Mapping[str, Any]] = []
        self.collection_metrics: dict[str, list[Any]] = {}
        self.succeeded = 0

    def add_answer(self, answer: dict[str, Any]) -> None:
        self.succeeded += 1
        for table, items in (answer.get("Responses") or {}).items():
            self.responses.setdefault(table, []).extend(items)
        leftovers = answer.get("UnprocessedKeys" if self.operation == "BatchGetItem"
                               else "UnprocessedItems") or {}
        for table, value in leftovers.items():
            if self.operation == "BatchGetItem":
                spec = {name: v for name, v in value.items() if name != "Keys"}
                self._unprocessed_keys(table, spec, value.get("Keys", []))
            else:
                self.unprocessed.setdefault(table, []).extend(value)
        self.capacities.extend(answer.get("ConsumedCapacity") or ())
        for table, metrics in (answer.get("ItemCollectionMetrics") or {}).items():
            self.collection_metrics.setdefault(table, []).extend(metrics)

    def add_failure(self, sub: SubBatch) -> None:
        if self.operation == "BatchGetItem":
            self._unprocessed_keys(sub.table, sub.spec, sub.entries)
        else:
            self.unprocessed.setdefault(sub.table, []).extend(sub.entries)

    def _unprocessed_keys(self, table: str, spec: Mapping[str, Any], keys: Any) -> None:
        pending = self.unprocessed.setdefault(table, {**spec, "Keys": []})
        pending["Keys"].extend(keys)

    def response(self) -> dict[str, Any]:
        response: dict[str, Any] = {}
        if self.operation == "BatchGetItem":
            response["Responses"] = self.responses
            response["UnprocessedKeys"] = self.unprocessed
        else:
            response["UnprocessedItems"] = self.unprocessed
        if self.wants_capacity:
            response["ConsumedCapacity"] = merge_capacities(self.capacities)
        if self.collection_metrics:
            response["ItemCollectionMetrics"] = self.collection_metrics
        return response
