"""Which partition a single-key request touches: its partition key's hash.

The router reads the partition key value from the request (Key for
GetItem/UpdateItem/DeleteItem, Item for PutItem, the key condition for
Query) with the table's schema from its partition map, and hashes it with
the storage's own hash (model/keys.py `partition_hash`), so router and node
agree on the partition. A Query or Scan of a global secondary index reads
its index table instead (`global_index_of`): the hash is then the index's
(engine/global_index_keys.py `index_hash` of its HASH values), to look up
in the index table's map. Anything it can't read (missing, mistyped,
malformed) gives None: the router then sends the request to any node, whose
validation returns DynamoDB's exact error. Validation is the node's job;
this module never raises on bad input.
"""
from __future__ import annotations

from typing import Any

from triplica.model.index_keys import index_hash, index_table_name
from triplica.expressions import ExpressionContext, parse_index_key_condition, parse_key_condition
from triplica.expressions import legacy
from triplica.model.partition_map import GlobalIndexRoute, TableMap
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


def global_index_of(table_map: TableMap, parameters: dict[str, Any]) -> GlobalIndexRoute | None:
    """The global secondary index a Query or Scan names (IndexName), or None."""
    name = parameters.get("IndexName")
    return table_map.global_index(name) if type(name) is str else None


def read_map_name(table_map: TableMap, parameters: dict[str, Any]) -> str:
    """The table whose partitions a Query or Scan reads: the table, or a global index's
    index table."""
    index = global_index_of(table_map, parameters)
    return table_map.name if index is None else index_table_name(table_map.name, index.name)


def index_values_hash(index: GlobalIndexRoute, item: Any) -> int | None:
    """The index hash of an item's (or a start key's) HASH values, else None."""
    if type(item) is not dict:
        return None
    values = []
    for name, type_name in index.hash_keys:
        value = item.get(name)
        if value_hash(value, type_name) is None:  # missing, mistyped or malformed
            return None
        values.append(value)
    return index_hash(values)


def _global_query_hash(index: GlobalIndexRoute, parameters: dict[str, Any]) -> int | None:
    hash_names = tuple(name for name, _ in index.hash_keys)
    text = parameters.get("KeyConditionExpression")
    if type(text) is str:
        context = ExpressionContext(parameters.get("ExpressionAttributeNames"),
                                    parameters.get("ExpressionAttributeValues"))
        condition = parse_index_key_condition(text, context, hash_names, index.range_keys)
    elif type(parameters.get("KeyConditions")) is dict:
        condition = legacy.index_key_condition_from_key_conditions(
            parameters["KeyConditions"], hash_names, index.range_keys)
    else:
        return None
    return index_values_hash(index, dict(zip(hash_names, condition.hash_values)))


def query_key_hash(table_map: TableMap, parameters: dict[str, Any]) -> int | None:
    """Partition hash of a Query's partition key (from its key condition), or None.
    A local secondary index shares the table's partition key; a global one has
    partition keys of its own, hashed into its index table's hash space."""
    range_key = table_map.range_key
    index = global_index_of(table_map, parameters)
    if index is not None:
        try:
            return _global_query_hash(index, parameters)
        except Exception:  # any malformed condition: the node's validation reports it
            return None
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
