"""Executable condition nodes: the evaluator for condition, filter and legacy
Expected/QueryFilter/ScanFilter conditions.

Nodes are built by resolve.py (from an expression) or legacy.py (from the
pre-expression parameters) with names and values already resolved, so
evaluating one never parses or looks anything up in the request. Operands
return an AttributeValue or None (missing). Semantics (DynamoDB "Comparison
operator and function reference"):
- a missing operand makes =, <, <=, >, >=, BETWEEN, IN and the functions
  false; `<>` is true unless both sides exist and are equal;
- different types are never equal and never ordered; ordering exists only
  for S, N and B.
"""
from __future__ import annotations

import re

from triplica.model.numbers import parse_number
from triplica.model.values import compare_values, decode_binary, values_equal

from .paths import get_path

ORDERABLE = frozenset({"S", "N", "B"})
ORDERABLE_TYPES = ("S", "N", "B")
TYPE_NAMES = frozenset({"S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"})


# -- operands -----------------------------------------------------------------
class PathOperand:
    __slots__ = ("path",)

    def __init__(self, path: tuple) -> None:
        self.path = path

    def get(self, item: dict) -> dict | None:
        path = self.path
        if len(path) == 1:
            return item.get(path[0])
        return get_path(item, path)


class ValueOperand:
    __slots__ = ("value",)

    def __init__(self, value: dict) -> None:
        self.value = value

    def get(self, item: dict) -> dict | None:
        return self.value


class SizeOperand:
    __slots__ = ("operand",)

    def __init__(self, operand: "PathOperand | ValueOperand") -> None:
        self.operand = operand

    def get(self, item: dict) -> dict | None:
        value = self.operand.get(item)
        if value is None:
            return None
        size = size_of(value)
        return None if size is None else {"N": str(size)}


def size_of(value: dict) -> int | None:
    """DynamoDB size(): characters of S, bytes of B, members of sets, L and M."""
    for type_name, inner in value.items():
        if type_name == "B":
            return len(decode_binary(inner))
        if type_name in ("S", "SS", "NS", "BS", "L", "M"):
            return len(inner)
        return None
    return None


# -- number fast paths ----------------------------------------------------------
# Integers below 10**18 compare exactly as Python ints; anything else goes to
# the Decimal comparison in model.values. Counters, timestamps and sort keys
# are mostly such integers, and parsing them as Decimals dominated filters.
_small_integer = re.compile(r"-?(?:0|[1-9][0-9]{0,17})").fullmatch


def order_values(left: dict, right: dict) -> int | None:
    """compare_values (-1, 0, 1 or None when unordered) with an int fast path."""
    x = left.get("N")
    if x is not None:
        y = right.get("N")
        if y is not None and _small_integer(x) and _small_integer(y):
            a, b = int(x), int(y)
            return (a > b) - (a < b)
    return compare_values(left, right)


def equal_values(left: dict, right: dict) -> bool:
    """values_equal with an int fast path for two numbers."""
    x = left.get("N")
    if x is not None:
        y = right.get("N")
        if y is not None and x != y and _small_integer(x) and _small_integer(y):
            return int(x) == int(y)
    return values_equal(left, right)


# -- value predicates shared with key conditions and legacy conditions -------
def compare(op: str, left: dict | None, right: dict | None) -> bool:
    if op == "<>":
        return left is None or right is None or not equal_values(left, right)
    if left is None or right is None:
        return False
    if op == "=":
        return equal_values(left, right)
    order = order_values(left, right)
    if order is None:
        return False
    if op == "<":
        return order < 0
    if op == "<=":
        return order <= 0
    if op == ">":
        return order > 0
    return order >= 0


def between(value: dict | None, low: dict | None, high: dict | None) -> bool:
    if value is None or low is None or high is None:
        return False
    above = order_values(value, low)
    below = order_values(value, high)
    return above is not None and below is not None and above >= 0 and below <= 0


def begins_with(value: dict | None, prefix: dict | None) -> bool:
    if value is None or prefix is None:
        return False
    if "S" in value and "S" in prefix:
        return value["S"].startswith(prefix["S"])
    if "B" in value and "B" in prefix:
        return decode_binary(value["B"]).startswith(decode_binary(prefix["B"]))
    return False


def contains(value: dict | None, member: dict | None) -> bool:
    if value is None or member is None:
        return False
    for type_name, inner in value.items():
        if type_name == "S":
            return "S" in member and member["S"] in inner
        if type_name == "B":
            return "B" in member and decode_binary(member["B"]) in decode_binary(inner)
        if type_name == "SS":
            return "S" in member and member["S"] in inner
        if type_name == "NS":
            if "N" not in member:
                return False
            wanted = parse_number(member["N"])
            return any(parse_number(n) == wanted for n in inner)
        if type_name == "BS":
            if "B" not in member:
                return False
            wanted = decode_binary(member["B"])
            return any(decode_binary(b) == wanted for b in inner)
        if type_name == "L":
            return any(values_equal(element, member) for element in inner)
        return False
    return False


# -- condition nodes ------------------------------------------------------------
class Compare:
    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left, right) -> None:
        self.op, self.left, self.right = op, left, right

    def evaluate(self, item: dict) -> bool:
        return compare(self.op, self.left.get(item), self.right.get(item))


class Between:
    __slots__ = ("operand", "low", "high")

    def __init__(self, operand, low, high) -> None:
        self.operand, self.low, self.high = operand, low, high

    def evaluate(self, item: dict) -> bool:
        return between(self.operand.get(item), self.low.get(item), self.high.get(item))


class In:
    __slots__ = ("operand", "choices")

    def __init__(self, operand, choices: tuple) -> None:
        self.operand, self.choices = operand, choices

    def evaluate(self, item: dict) -> bool:
        value = self.operand.get(item)
        if value is None:
            return False
        for choice in self.choices:
            other = choice.get(item)
            if other is not None and equal_values(value, other):
                return True
        return False


class And:
    __slots__ = ("left", "right")

    def __init__(self, left, right) -> None:
        self.left, self.right = left, right

    def evaluate(self, item: dict) -> bool:
        return self.left.evaluate(item) and self.right.evaluate(item)


class Or:
    __slots__ = ("left", "right")

    def __init__(self, left, right) -> None:
        self.left, self.right = left, right

    def evaluate(self, item: dict) -> bool:
        return self.left.evaluate(item) or self.right.evaluate(item)


class Not:
    __slots__ = ("operand",)

    def __init__(self, operand) -> None:
        self.operand = operand

    def evaluate(self, item: dict) -> bool:
        return not self.operand.evaluate(item)


class Exists:
    __slots__ = ("operand",)

    def __init__(self, operand) -> None:
        self.operand = operand

    def evaluate(self, item: dict) -> bool:
        return self.operand.get(item) is not None


class NotExists:
    __slots__ = ("operand",)

    def __init__(self, operand) -> None:
        self.operand = operand

    def evaluate(self, item: dict) -> bool:
        return self.operand.get(item) is None


class TypeIs:
    __slots__ = ("operand", "type_operand")

    def __init__(self, operand, type_operand) -> None:
        self.operand, self.type_operand = operand, type_operand

    def evaluate(self, item: dict) -> bool:
        value = self.operand.get(item)
        wanted = self.type_operand.get(item)
        if value is None or wanted is None or "S" not in wanted:
            return False
        return wanted["S"] in value


class BeginsWith:
    __slots__ = ("operand", "prefix")

    def __init__(self, operand, prefix) -> None:
        self.operand, self.prefix = operand, prefix

    def evaluate(self, item: dict) -> bool:
        return begins_with(self.operand.get(item), self.prefix.get(item))


class Contains:
    __slots__ = ("operand", "member")

    def __init__(self, operand, member) -> None:
        self.operand, self.member = operand, member

    def evaluate(self, item: dict) -> bool:
        return contains(self.operand.get(item), self.member.get(item))


class Condition:
    """A resolved condition, ready to evaluate against many items."""
    __slots__ = ("root", "names")

    def __init__(self, root, names: frozenset[str] | None = None) -> None:
        self.root = root
        self.names = names  # top-level names read, when the builder knows them

    def evaluate(self, item: dict | None) -> bool:
        return self.root.evaluate(item if item is not None else {})

    def top_level_names(self) -> set[str]:
        """Resolved top-level attribute names the condition reads (Query uses
        this to reject filters on key attributes)."""
        if self.names is not None:
            return set(self.names)
        names: set[str] = set()
        _collect_names(self.root, names)
        return names


def _collect_names(node, names: set[str]) -> None:
    """Walk condition nodes and operands through their slots; PathOperand is a leaf."""
    if isinstance(node, PathOperand):
        names.add(node.path[0])
        return
    for slot in getattr(node, "__slots__", ()):
        child = getattr(node, slot, None)
        for part in (child if isinstance(child, tuple) else (child,)):
            if hasattr(part, "__slots__") and not isinstance(part, (str, dict)):
                _collect_names(part, names)
