"""Key conditions: KeyConditionExpression and legacy KeyConditions.

A key condition is `hash = :v` optionally ANDed (either order) with one
sort-key condition: = < <= > >= BETWEEN or begins_with. The result exposes
the values so the caller can check them against the key schema's types and
pick the partition and the sort-key range to read.
"""
from __future__ import annotations

from dataclasses import dataclass

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


def _bind(shapes: tuple, values: dict, hash_key: str, range_key: str | None) -> KeyCondition:
    conditions = []
    for name, op, placeholders in shapes:
        bound = tuple([values[placeholder] for placeholder in placeholders])
        if op == "BETWEEN":
            check_bounds(KIND, bound[0], bound[1])
        conditions.append((name, op, bound))
    return build_key_condition(conditions, hash_key, range_key)


# (text, hash key, range key, context shape) -> (condition shapes, names used, values used).
# Every check but BETWEEN's bounds depends only on the key; see resolve.py.
_compiled: dict[tuple, tuple] = {}
COMPILED_ENTRIES_MAX = 4096


def parse_key_condition(
    text: str, ctx: ExpressionContext, hash_key: str, range_key: str | None
) -> KeyCondition:
    key = (text, hash_key, range_key, ctx.shape())
    entry = _compiled.get(key)
    if entry is None:
        tree = parse_condition_tree(text, KIND)
        resolver = Resolver(ctx, KIND)
        nodes: list = []
        _flatten(tree, nodes)
        shapes = tuple(_one_condition(node, resolver) for node in nodes)
        condition = _bind(shapes, ctx.values, hash_key, range_key)
        if len(_compiled) >= COMPILED_ENTRIES_MAX:
            _compiled.clear()
        _compiled[key] = (shapes, frozenset(resolver.used_names), frozenset(resolver.used_values))
        return condition
    shapes, used_names, used_values = entry
    ctx.used_names |= used_names
    ctx.used_values |= used_values
    return _bind(shapes, ctx.values, hash_key, range_key)
