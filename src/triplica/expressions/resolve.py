"""Validation and resolution: syntax tree + ExpressionContext -> executable nodes.

This is the step between the cached tree and execution. It resolves #aliases
and :placeholders (marking them used), checks where each function may appear
and with how many operands, and rejects :values whose type can never work for
their operator (DynamoDB's static checks). Runtime checks on item contents are
left to evaluate.py and update.py.

Resolution is compiled so that most of it runs once per expression shape, not
once per request: every static check depends only on the names map and on
which :values exist with which types, so `Resolver` turns a tree into a
*part*: either a finished node (no :value below it) or a `Late` that builds
the node from a request's values. api.py caches parts by (text, names, value
types). The few checks that read a value's contents (attribute_type's type
name, BETWEEN bounds) run during compilation, in tree order, against the
compiling request's values (so errors come in the same order as a one-pass
resolver would raise them) and again inside the Late for every later request.
"""
from __future__ import annotations

from typing import Callable

from triplica.model.limits import EXPRESSION_IN_OPERANDS_MAX
from triplica.model.values import compare_values

from . import evaluate as ev
from . import messages, update as up
from .context import ExpressionContext
from .paths import check_disjoint
from .tree import (
    AndNode, ArithmeticNode, BetweenNode, CompareNode, FunctionNode, InNode, NotNode,
    OrNode, PathNode, ProjectionTree, UpdateTree, ValueNode,
)

CONDITION_FUNCTIONS = frozenset({
    "attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains",
})
SIZED_TYPES = ("S", "B", "SS", "NS", "BS", "L", "M")
OPERAND_COUNTS = {
    "attribute_exists": 1, "attribute_not_exists": 1, "attribute_type": 2,
    "begins_with": 2, "contains": 2, "size": 1, "if_not_exists": 2, "list_append": 2,
}


# -- late binding -------------------------------------------------------------
class Late:
    """A node that needs the request's :values; make(values) builds it."""
    __slots__ = ("make",)

    def __init__(self, make: Callable[[dict], object]) -> None:
        self.make = make


def bind(part, values: dict):
    """The executable node of a part for one request's (validated) values."""
    return part.make(values) if part.__class__ is Late else part


def _maker(part) -> Callable[[dict], object]:
    if part.__class__ is Late:
        return part.make
    return lambda values: part


def build(cls, *args):
    """cls(*args) now when no argument is Late, else a Late that builds it per request."""
    late = [i for i, arg in enumerate(args) if arg.__class__ is Late]
    if not late:
        return cls(*args)
    if len(late) == 1:
        i = late[0]
        before, make, after = args[:i], args[i].make, args[i + 1:]
        return Late(lambda values: cls(*before, make(values), *after))
    makers = tuple(_maker(arg) for arg in args)
    return Late(lambda values: cls(*[make(values) for make in makers]))


def build_tuple(parts: list):
    """tuple(parts) now when none is Late, else a Late that builds the tuple."""
    if not any(part.__class__ is Late for part in parts):
        return tuple(parts)
    makers = tuple(_maker(part) for part in parts)
    return Late(lambda values: tuple([make(values) for make in makers]))


def checked(part, check: Callable[[dict], None], values_now: dict):
    """Run a check on value contents now (compilation order) and before each build."""
    check(values_now)
    make = _maker(part)

    def make_checked(values: dict):
        check(values)
        return make(values)
    return Late(make_checked)


def _value_of(name: str) -> Late:
    return Late(lambda values: values[name])


class Resolver:
    def __init__(self, ctx: ExpressionContext, kind: str) -> None:
        self.ctx = ctx
        self.kind = kind
        self.used_names: set[str] = set()
        self.used_values: set[str] = set()
        self.top_level_names: set[str] = set()  # first element of every resolved path

    # -- leaves --------------------------------------------------------------
    def path(self, node: PathNode) -> tuple:
        elements = []
        for element in node.elements:
            if element.__class__ is str and element[0] == "#":
                name = self.ctx.name(element)
                if name is None:
                    raise messages.undefined_name(self.kind, element)
                self.used_names.add(element)
                element = name
            elements.append(element)
        path = tuple(elements)
        self.top_level_names.add(path[0])
        return path

    def value(self, node: ValueNode) -> dict:
        value = self.ctx.value(node.name)
        if value is None:
            raise messages.undefined_value(self.kind, node.name)
        self.used_values.add(node.name)
        return value

    def late_value(self, node: ValueNode) -> Late:
        """Check that :value exists (marking it used); its contents are bound later."""
        self.value(node)
        return _value_of(node.name)

    def static_type(self, node) -> str | None:
        """Type of a :value operand (None for anything else)."""
        if isinstance(node, ValueNode):
            for type_name in self.value(node):
                return type_name
        return None

    def check_function(self, node: FunctionNode, path_first: bool = True) -> None:
        expected = OPERAND_COUNTS[node.name]
        if len(node.args) != expected:
            raise messages.operand_count(self.kind, node.name, len(node.args))
        if path_first and not isinstance(node.args[0], PathNode):
            raise messages.needs_path(self.kind, node.name)

    # -- conditions ----------------------------------------------------------
    def condition(self, node):
        cls = node.__class__
        if cls is AndNode:
            return build(ev.And, self.condition(node.left), self.condition(node.right))
        if cls is OrNode:
            return build(ev.Or, self.condition(node.left), self.condition(node.right))
        if cls is NotNode:
            return build(ev.Not, self.condition(node.operand))
        if cls is CompareNode:
            if node.op not in ("=", "<>"):   # ordering: a :value must be a scalar S, N or B
                self._check_static_type(node.left, node.op, ev.ORDERABLE_TYPES)
                self._check_static_type(node.right, node.op, ev.ORDERABLE_TYPES)
            return build(ev.Compare, node.op, self.operand(node.left), self.operand(node.right))
        if cls is BetweenNode:
            for bound in (node.operand, node.low, node.high):
                self._check_static_type(bound, "BETWEEN", ev.ORDERABLE_TYPES)
            operand, low, high = (self.operand(n) for n in (node.operand, node.low, node.high))
            between = build(ev.Between, operand, low, high)
            if node.low.__class__ is ValueNode and node.high.__class__ is ValueNode:
                low_name, high_name, kind = node.low.name, node.high.name, self.kind
                return checked(
                    between,
                    lambda values: check_bounds(kind, values[low_name], values[high_name]),
                    self.ctx.values,
                )
            return between
        if cls is InNode:
            if len(node.choices) > EXPRESSION_IN_OPERANDS_MAX:
                raise messages.invalid(
                    self.kind,
                    "The IN operator is provided with too many operands; "
                    f"number of operands: {len(node.choices)}",
                )
            return build(ev.In, self.operand(node.operand),
                         build_tuple([self.operand(c) for c in node.choices]))
        if cls is FunctionNode:
            return self.condition_function(node)
        raise AssertionError(f"parser produced {node!r} in condition position")

    def check_bounds(self, low: dict, high: dict) -> None:
        check_bounds(self.kind, low, high)

    def condition_function(self, node: FunctionNode):
        name = node.name
        if name not in CONDITION_FUNCTIONS:
            raise messages.function_misused(self.kind, name)
        if name == "attribute_exists" or name == "attribute_not_exists":
            self.check_function(node)
            target = ev.PathOperand(self.path(node.args[0]))
            return ev.Exists(target) if name == "attribute_exists" else ev.NotExists(target)
        # The others take a :value as their first operand too (a constant result).
        self.check_function(node, path_first=False)
        first = node.args[0]
        if first.__class__ is FunctionNode:
            raise messages.needs_path(self.kind, name)
        if name == "begins_with":
            self._check_static_type(first, name, ("S", "B"))
        target = self.operand(first)
        second = node.args[1]
        second_type = self.static_type(second)
        argument = self.operand(second)
        if name == "attribute_type":
            if second.__class__ is not ValueNode:
                raise messages.needs_value(self.kind, name)
            if second_type is not None:
                if second_type != "S":
                    raise messages.operand_type(self.kind, name, second_type)
                argument = checked(argument, self._type_name_checker(second.name),
                                   self.ctx.values)
            return build(ev.TypeIs, target, argument)
        if name == "begins_with":
            if second_type is not None and second_type not in ("S", "B"):
                raise messages.operand_type(self.kind, name, second_type)
            return build(ev.BeginsWith, target, argument)
        return build(ev.Contains, target, argument)

    def _type_name_checker(self, placeholder: str) -> Callable[[dict], None]:
        kind = self.kind  # closures must not keep the compiling request (self.ctx) alive

        def check(values: dict) -> None:
            type_name = values[placeholder]["S"]
            if type_name not in ev.TYPE_NAMES:
                raise messages.bad_attribute_type(kind, type_name)
        return check

    def operand(self, node):
        cls = node.__class__
        if cls is PathNode:
            return ev.PathOperand(self.path(node))
        if cls is ValueNode:
            return build(ev.ValueOperand, self.late_value(node))
        if node.name != "size":
            raise messages.function_misused(self.kind, node.name)
        self.check_function(node, path_first=False)
        measured = node.args[0]
        if measured.__class__ is FunctionNode:
            raise messages.needs_path(self.kind, "size")
        self._check_static_type(measured, "size", SIZED_TYPES)
        return build(ev.SizeOperand, self.operand(measured))

    def _check_static_type(self, node, name: str, allowed: tuple[str, ...]) -> None:
        """A :value whose type can never work for the function is a request error."""
        value_type = self.static_type(node)
        if value_type is not None and value_type not in allowed:
            raise messages.operand_type(self.kind, name, value_type)

    # -- update ----------------------------------------------------------------
    def update(self, tree: UpdateTree):
        actions = []
        paths = []
        for action in tree.actions:
            path = self.path(action.path)
            paths.append(path)
            if action.clause == "SET":
                actions.append(build(up.SetAction, path, self.set_operand(action.value)))
            elif action.clause == "REMOVE":
                actions.append(up.RemoveAction(path))
            elif action.clause == "ADD":
                type_name = next(iter(self.value(action.value)))
                if type_name not in ("N", "SS", "NS", "BS"):
                    raise messages.operand_type(self.kind, "ADD", type_name)
                actions.append(build(up.AddAction, path, self.late_value(action.value)))
            else:
                type_name = next(iter(self.value(action.value)))
                if type_name not in ("SS", "NS", "BS"):
                    raise messages.operand_type(self.kind, "DELETE", type_name)
                actions.append(build(up.DeleteAction, path, self.late_value(action.value)))
        check_disjoint(self.kind, paths)
        actions_part, paths = build_tuple(actions), tuple(paths)
        if actions_part.__class__ is not Late:
            return up.UpdatePlan(actions_part, paths)
        makers = tuple(_maker(action) for action in actions)
        return Late(lambda values: up.UpdatePlan(tuple([make(values) for make in makers]), paths))

    def set_operand(self, node):
        cls = node.__class__
        if cls is PathNode:
            return up.Read(self.path(node))
        if cls is ValueNode:
            return build(up.Const, self.late_value(node))
        if cls is ArithmeticNode:
            for side in (node.left, node.right):
                side_type = self.static_type(side)
                if side_type is not None and side_type != "N":
                    raise messages.operand_type(self.kind, node.op, side_type)
            return build(up.Arithmetic, node.op, self.set_operand(node.left),
                         self.set_operand(node.right))
        if node.name == "if_not_exists":
            self.check_function(node)
            return build(up.IfNotExists, self.path(node.args[0]), self.set_operand(node.args[1]))
        if node.name == "list_append":
            self.check_function(node, path_first=False)
            for argument in node.args:
                argument_type = self.static_type(argument)
                if argument_type is not None and argument_type != "L":
                    raise messages.operand_type(self.kind, "list_append", argument_type)
            return build(up.ListAppend, self.set_operand(node.args[0]),
                         self.set_operand(node.args[1]))
        raise messages.function_misused(self.kind, node.name)

    # -- projection ------------------------------------------------------------
    def projection_paths(self, tree: ProjectionTree) -> list[tuple]:
        paths = [self.path(node) for node in tree.paths]
        check_disjoint(self.kind, paths)
        return paths


def check_bounds(kind: str, low: dict, high: dict) -> None:
    if low.keys() != high.keys():
        raise messages.invalid(
            kind,
            "The BETWEEN operator requires same data type for lower and upper bounds; "
            f"lower bound operand: AttributeValue: {format_value(low)}, "
            f"upper bound operand: AttributeValue: {format_value(high)}",
        )
    order = compare_values(low, high)
    if order is not None and order > 0:
        raise messages.invalid(
            kind,
            "The BETWEEN operator requires upper bound to be greater than or equal to "
            f"lower bound; lower bound operand: AttributeValue: {format_value(low)}, "
            f"upper bound operand: AttributeValue: {format_value(high)}",
        )


def format_value(value: dict) -> str:
    """DynamoDB's short rendering of a scalar in messages: {N:5}, {S:abc}."""
    for type_name, inner in value.items():
        return "{" + f"{type_name}:{inner}" + "}"
    return "{}"
