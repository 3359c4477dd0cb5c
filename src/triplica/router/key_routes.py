"""Which partition a single-key request touches: its partition key's hash.

The router reads the partition key value from the request (Key for
GetItem/UpdateItem/DeleteItem, Item for PutItem, the key condition for
Query) with the table's schema from its partition map, and hashes it with
the storage's own hash (model/keys.py `partition_hash`), so router and node
agree on the partition. Anything it can't read (missing, mistyped,
malformed) gives None: the router then sends the request to any node, whose
validation returns DynamoDB's exact error. Validation is the node's job;
this module never raises on bad input.
"""
from __future__ import annotations

from typing import Any

from triplica.expressions import ExpressionContext, parse_key_condition
from triplica.expressions import legacy
from triplica.model.partition_map import TableMap
from triplica.model.keys import partition_hash

KEY_PARAMETER = {"GetItem": "Key", "UpdateItem": "Key", "DeleteItem": "Key", "PutItem": "Item"}


def value_hash(value: Any, hash_type: str) -> int | None:
    """The partition hash of one attribute value of the schema's type, else None."""
    if type(value) is not dict or len(value) != 1 or type(value.get(hash_type)) is not str:
        return None
    try:
        return partition_hash(value)
    except Exception:  # a malformed number or binary: the node's validation reports it
        return None


def item_key_hash(table_map: TableMap, operation: str, parameters: dict[str, Any]) -> int | None:
    """Partition hash of a GetItem/PutItem/UpdateItem/DeleteItem, or None."""
    source = parameters.get(KEY_PARAMETER[operation])
    if type(source) is not dict:
        return None
    return value_hash(source.get(table_map.hash_key), table_map.hash_type)


def query_key_hash(table_map: TableMap, parameters: dict[str, Any]) -> int | None:
    """Partition hash of a Query's partition key (from its key condition), or None.
    A local secondary index shares the table's partition key; a global one has
    partition keys of its own (None: a node answers)."""
    range_key = table_map.range_key
    if parameters.get("IndexName") is not None:
        range_key = table_map.local_index_range_key(parameters["IndexName"])
        if range_key is None:
            return None
    try:
        text = parameters.get("KeyConditionExpression")
        if type(text) is str:
            context = ExpressionContext(parameters.get("ExpressionAttributeNames"),
                                        parameters.get("ExpressionAttributeValues"))
            condition = parse_key_condition(text, context, table_map.hash_key, range_key)
        elif type(parameters.get("KeyConditions")) is dict:
            condition = legacy.key_condition_from_key_conditions(
                parameters["KeyConditions"], table_map.hash_key, range_key)
        else:
            return None
        return value_hash(condition.partition_value, table_map.hash_type)
    except Exception:  # any malformed condition: the node's validation reports it
        return None


def key_hash(table_map: TableMap, operation: str, parameters: dict[str, Any]) -> int | None:
    if operation == "Query":
        return query_key_hash(table_map, parameters)
    return item_key_hash(table_map, operation, parameters)
