"""A Query of a global secondary index: its key condition and the keys it reads.

The index's key may have up to four HASH and four RANGE attributes
(expressions/key_condition.py `IndexKeyCondition` has the rules). The
entries of one index partition key value (its HASH values) sit under
`index_prefix(HASH values)` in the index table partition that holds
`index_hash(HASH values)` (engine/global_index_keys.py), ordered by the
RANGE values left to right, then by the table key. So equalities on the
leading RANGE attributes extend the prefix, and the last RANGE attribute
named bounds a range of keys under it like a table's sort key condition
(key_ranges.py), with more encoded values after it (PARTITION_END).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from triplica.engine.global_index_keys import index_hash, index_prefix
from triplica.engine.operations.key_ranges import PARTITION_END, sort_range
from triplica.engine.operations.read_targets import ReadTarget
from triplica.engine.operations.validation import expect_type
from triplica.errors import ValidationException
from triplica.expressions import (ExpressionContext, IndexKeyCondition,
                                  index_key_condition_from_key_conditions,
                                  parse_index_key_condition)
from triplica.model.keys import encode_key_value, validate_key_value

TYPE_MISMATCH = ("One or more parameter values were invalid: Condition parameter type does not "
                 "match schema type")


@dataclass(frozen=True)
class QueryKeys:
    """Where a global index Query reads: the index partition key's hash and key prefix,
    the [start, end) of keys the condition allows, and the check that the key range
    alone can't make (begins_with on the last RANGE attribute)."""

    key_hash: int
    partition_prefix: bytes
    start: bytes
    end: bytes
    check: Callable[[dict[str, Any]], bool] | None


def global_key_condition(target: ReadTarget, request: dict[str, Any],
                         ctx: ExpressionContext) -> IndexKeyCondition:
    """The Query's key condition on the index's key, its values checked against the
    attributes' types and DynamoDB's key sizes."""
    hash_names = tuple(name for name, _ in target.hash_keys)
    range_names = tuple(name for name, _ in target.range_keys)
    text = expect_type(request.get("KeyConditionExpression"), str, "KeyConditionExpression")
    if text is not None:
        condition = parse_index_key_condition(text, ctx, hash_names, range_names)
    elif request.get("KeyConditions") is not None:
        condition = index_key_condition_from_key_conditions(request["KeyConditions"],
                                                            hash_names, range_names)
    else:
        raise ValidationException(
            "Either the KeyConditions or KeyConditionExpression parameter must be specified "
            "in the request.")
    types = dict(target.hash_keys + target.range_keys)
    checked = [(name, value, True) for name, value in zip(hash_names, condition.hash_values)]
    checked += [(name, value, False) for name, _, values in condition.range_conditions
                for value in values]
    for name, value, _ in checked:
        if types[name] not in value:
            raise ValidationException(TYPE_MISMATCH)
    # Values beyond DynamoDB's key sizes match nothing: the same errors as a table's keys.
    for name, value, is_hash in checked:
        validate_key_value(name, value, is_hash)
    return condition


def global_query_keys(condition: IndexKeyCondition) -> QueryKeys:
    hash_values = list(condition.hash_values)
    partition_prefix = index_prefix(hash_values)
    prefix = partition_prefix + b"".join(encode_key_value(value)
                                         for value in condition.range_equalities())
    last = condition.last
    op, values = (None, ()) if last is None else (last[1], last[2])
    start, end = sort_range(prefix, op, values, PARTITION_END)
    check = condition.last_matches if op == "begins_with" else None
    return QueryKeys(index_hash(hash_values), partition_prefix, start, end, check)
