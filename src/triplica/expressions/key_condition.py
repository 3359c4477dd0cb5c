"""Key conditions: KeyConditionExpression and legacy KeyConditions.

A key condition is `hash = :v` optionally ANDed (either order) with one
sort-key condition: = < <= > >= BETWEEN or begins_with. The result exposes
the values so the caller can check them against the key schema's types and
pick the partition and the sort-key range to read.

A global secondary index may have a multi-attribute key (DynamoDB,
November 2025: up to four HASH and four RANGE attributes). Its key
condition (`IndexKeyCondition`) is a conjunction: equality on every HASH
attribute, then RANGE attributes constrained left to right without
skipping, all by equality but the last one named, which may use any
sort-key operator. An index with one HASH and at most one RANGE attribute
keeps the table's rules and messages exactly. For the multi-attribute
rules DynamoDB's exact words are not known to us: a missing or skipped
attribute is DynamoDB's "Query condition missed key schema element: X",
a non-equality on a HASH attribute its "Query key condition not
supported", and an inequality before the last RANGE attribute named says
so in our words (INEQUALITY_NOT_LAST).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from triplica.errors import ValidationException

from . import evaluate as ev
from . import messages
from .context import ExpressionContext
from .grammar.parser import parse_condition_tree
from .resolve import Resolver, check_bounds
from .tree import AndNode, BetweenNode, CompareNode, FunctionNode, InNode, NotNode, OrNode, PathNode, ValueNode

KIND = "KeyConditionExpression"
SORT_OPERATORS = frozenset({"=", "<", "<=", ">", ">=", "BETWEEN", "begins_with"})
_FLIPPED = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
NOT_SUPPORTED = "Query key condition not supported"
INEQUALITY_NOT_LAST = ("Query key condition not supported: only the last sort key attribute the "
                       "condition names may use {op}; {name} is followed by {next_name}")


@dataclass(frozen=True)
class KeyCondition:
    hash_key: str
    partition_value: dict
    range_key: str | None
    sort_op: str | None
    sort_values: tuple[dict, ...]

    def sort_matches(self, value: dict | None) -> bool:
        op = self.sort_op
        if op is None:
            return True
        if op == "BETWEEN":
            return ev.between(value, self.sort_values[0], self.sort_values[1])
        if op == "begins_with":
            return ev.begins_with(value, self.sort_values[0])
        return ev.compare(op, value, self.sort_values[0])


# (attribute name, operator, values): one comparison of a key condition.
KeyComparison = tuple[str, str, tuple[dict, ...]]


@dataclass(frozen=True)
class IndexKeyCondition:
    """A key condition on a global index's key (module docstring)."""

    hash_values: tuple[dict, ...]            # one per HASH attribute, key schema order
    range_conditions: tuple[KeyComparison, ...]  # a prefix of the RANGE attributes, in order

    @property
    def last(self) -> KeyComparison | None:
        """The last RANGE attribute named (the only one that may be an inequality)."""
        return self.range_conditions[-1] if self.range_conditions else None

    def range_equalities(self) -> tuple[dict, ...]:
        """The values of the RANGE attributes before the last one named."""
        return tuple(values[0] for _, _, values in self.range_conditions[:-1])

    def last_matches(self, item: dict) -> bool:
        last = self.last
        if last is None:
            return True
        name, op, values = last
        return KeyCondition("", {}, name, op, values).sort_matches(item.get(name))


def missed(name: str) -> ValidationException:
    return ValidationException(f"Query condition missed key schema element: {name}")


def build_key_condition(
    conditions: list[tuple[str, str, tuple[dict, ...]]], hash_key: str, range_key: str | None
) -> KeyCondition:
    """conditions: (attribute name, operator, values) triples, already resolved."""
    if len(conditions) > 2:
        raise ValidationException("Conditions can be of length 1 or 2 only")
    by_name: dict[str, tuple[str, tuple[dict, ...]]] = {}
    for name, op, values in conditions:
        if name in by_name:
            raise messages.invalid(
                KIND, "KeyConditionExpressions must only contain one condition per key"
            )
        by_name[name] = (op, values)
    if hash_key not in by_name:
        raise missed(hash_key)
    hash_op, hash_values = by_name.pop(hash_key)
    if hash_op != "=":
        raise ValidationException(NOT_SUPPORTED)
    sort_op, sort_values = None, ()
    if by_name:
        name, (sort_op, sort_values) = next(iter(by_name.items()))
        if name != range_key:
            raise missed(range_key) if range_key else ValidationException(NOT_SUPPORTED)
        if sort_op not in SORT_OPERATORS:
            raise ValidationException(NOT_SUPPORTED)
    return KeyCondition(hash_key, hash_values[0], range_key, sort_op, tuple(sort_values))


def build_index_key_condition(conditions: list[KeyComparison], hash_keys: tuple[str, ...],
                              range_keys: tuple[str, ...]) -> IndexKeyCondition:
    """A global index's key condition (module docstring); `conditions` resolved."""
    if len(hash_keys) == 1 and len(range_keys) <= 1:
        single = build_key_condition(conditions, hash_keys[0], range_keys[0] if range_keys else None)
        ranges = () if single.sort_op is None else \
            ((str(single.range_key), single.sort_op, single.sort_values),)
        return IndexKeyCondition((single.partition_value,), ranges)
    by_name: dict[str, tuple[str, tuple[dict, ...]]] = {}
    for name, op, values in conditions:
        if name in by_name:
            raise messages.invalid(
                KIND, "KeyConditionExpressions must only contain one condition per key")
        by_name[name] = (op, values)
    hash_values = []
    for name in hash_keys:
        if name not in by_name:
            raise missed(name)
        op, values = by_name[name]
        if op != "=":
            raise ValidationException(NOT_SUPPORTED)
        hash_values.append(values[0])
    named = [name for name in range_keys if name in by_name]
    unnamed = [name for name in range_keys if name not in by_name]
    if any(name not in hash_keys and name not in range_keys for name in by_name):
        raise missed(unnamed[0]) if unnamed else ValidationException(NOT_SUPPORTED)
    if named:
        skipped = [n for n in range_keys[:range_keys.index(named[-1])] if n not in by_name]
        if skipped:
            raise missed(skipped[0])
    ranges = []
    for position, name in enumerate(named):
        op, values = by_name[name]
        if op not in SORT_OPERATORS:
            raise ValidationException(NOT_SUPPORTED)
        if op != "=" and position + 1 < len(named):
            raise ValidationException(INEQUALITY_NOT_LAST.format(
                op=op, name=name, next_name=named[position + 1]))
        ranges.append((name, op, values))
    return IndexKeyCondition(tuple(hash_values), tuple(ranges))


def _flatten(node, out: list) -> None:
    if isinstance(node, AndNode):
        _flatten(node.left, out)
        _flatten(node.right, out)
    else:
        out.append(node)


def _operator_name(node) -> str | None:
    if isinstance(node, OrNode):
        return "OR"
    if isinstance(node, NotNode):
        return "NOT"
    if isinstance(node, InNode):
        return "IN"
    if isinstance(node, CompareNode) and node.op == "<>":
        return "<>"
    if isinstance(node, FunctionNode) and node.name != "begins_with":
        return node.name
    for child in (getattr(node, "left", None), getattr(node, "right", None),
                  getattr(node, "operand", None)):
        if isinstance(child, FunctionNode):
            return child.name
    return None


def _invalid_operator(name: str) -> ValidationException:
    return messages.invalid(KIND, f"Invalid operator used in KeyConditionExpression: {name}")


def _one_condition(node, resolver: Resolver) -> tuple[str, str, tuple[str, ...]]:
    """Check one ANDed condition; return (attribute name, operator, :placeholders)."""
    operator = _operator_name(node)
    if operator is not None:
        raise _invalid_operator(operator)
    if isinstance(node, CompareNode):
        op, left, right = node.op, node.left, node.right
        if isinstance(left, ValueNode) and isinstance(right, PathNode):
            op, left, right = _FLIPPED[op], right, left
        path_node, value_nodes = left, (right,)
    elif isinstance(node, BetweenNode):
        op, path_node, value_nodes = "BETWEEN", node.operand, (node.low, node.high)
    else:  # begins_with
        resolver.check_function(node)
        op, path_node, value_nodes = "begins_with", node.args[0], (node.args[1],)
    if not isinstance(path_node, PathNode) or not all(isinstance(v, ValueNode) for v in value_nodes):
        raise ValidationException(NOT_SUPPORTED)
    path = resolver.path(path_node)
    values = tuple(resolver.value(v) for v in value_nodes)
    if len(path) != 1:
        raise messages.invalid(
            KIND, "KeyConditionExpressions cannot have conditions on nested attributes")
    if op == "begins_with":
        type_name = next(iter(values[0]))
        if type_name not in ("S", "B"):
            raise messages.operand_type(KIND, "begins_with", type_name)
    if op == "BETWEEN":
        resolver.check_bounds(values[0], values[1])
    return path[0], op, tuple(v.name for v in value_nodes)


def _bind(shapes: tuple, values: dict) -> list[KeyComparison]:
    conditions = []
    for name, op, placeholders in shapes:
        bound = tuple([values[placeholder] for placeholder in placeholders])
        if op == "BETWEEN":
            check_bounds(KIND, bound[0], bound[1])
        conditions.append((name, op, bound))
    return conditions


# (text, key names, context shape) -> (condition shapes, names used, values used).
# Every check but BETWEEN's bounds depends only on the key; see resolve.py.
_compiled: dict[tuple, tuple] = {}
COMPILED_ENTRIES_MAX = 4096


def _comparisons(text: str, ctx: ExpressionContext, keys: tuple,
                 check: Callable[[list[KeyComparison]], Any]) -> list[KeyComparison]:
    """The resolved comparisons of `text`; `check` (the key schema's rules) runs on them
    before the compiled shapes are kept, so a cached entry is always a valid one."""
    key = (text, keys, ctx.shape())
    entry = _compiled.get(key)
    if entry is None:
        tree = parse_condition_tree(text, KIND)
        resolver = Resolver(ctx, KIND)
        nodes: list = []
        _flatten(tree, nodes)
        shapes = tuple(_one_condition(node, resolver) for node in nodes)
        conditions = _bind(shapes, ctx.values)
        check(conditions)
        if len(_compiled) >= COMPILED_ENTRIES_MAX:
            _compiled.clear()
        _compiled[key] = (shapes, frozenset(resolver.used_names), frozenset(resolver.used_values))
        return conditions
    shapes, used_names, used_values = entry
    ctx.used_names |= used_names
    ctx.used_values |= used_values
    return _bind(shapes, ctx.values)


def parse_key_condition(
    text: str, ctx: ExpressionContext, hash_key: str, range_key: str | None
) -> KeyCondition:
    def build(conditions: list[KeyComparison]) -> KeyCondition:
        return build_key_condition(conditions, hash_key, range_key)
    return build(_comparisons(text, ctx, (hash_key, range_key), build))


def parse_index_key_condition(text: str, ctx: ExpressionContext, hash_keys: tuple[str, ...],
                              range_keys: tuple[str, ...]) -> IndexKeyCondition:
    """A global index's KeyConditionExpression (module docstring)."""
    def build(conditions: list[KeyComparison]) -> IndexKeyCondition:
        return build_index_key_condition(conditions, hash_keys, range_keys)
    return build(_comparisons(text, ctx, ("global", hash_keys, range_keys), build))
