"""Validation and resolution: syntax tree + ExpressionContext -> executable nodes.

This is the per-request step between the cached tree and execution. It
resolves #aliases and :placeholders (marking them used), checks where each
function may appear and with how many operands, and rejects :values whose
type can never work for their operator (DynamoDB's static checks). Runtime
checks on item contents are left to evaluate.py and update.py.
"""
from __future__ import annotations

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
OPERAND_COUNTS = {
    "attribute_exists": 1, "attribute_not_exists": 1, "attribute_type": 2,
    "begins_with": 2, "contains": 2, "size": 1, "if_not_exists": 2, "list_append": 2,
}


class Resolver:
    def __init__(self, ctx: ExpressionContext, kind: str) -> None:
        self.ctx = ctx
        self.kind = kind

    # -- leaves --------------------------------------------------------------
    def path(self, node: PathNode) -> tuple:
        elements = []
        for element in node.elements:
            if element.__class__ is str and element[0] == "#":
                name = self.ctx.name(element)
                if name is None:
                    raise messages.undefined_name(self.kind, element)
                element = name
            elements.append(element)
        return tuple(elements)

    def value(self, node: ValueNode) -> dict:
        value = self.ctx.value(node.name)
        if value is None:
            raise messages.undefined_value(self.kind, node.name)
        return value

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
            return ev.And(self.condition(node.left), self.condition(node.right))
        if cls is OrNode:
            return ev.Or(self.condition(node.left), self.condition(node.right))
        if cls is NotNode:
            return ev.Not(self.condition(node.operand))
        if cls is CompareNode:
            return ev.Compare(node.op, self.operand(node.left), self.operand(node.right))
        if cls is BetweenNode:
            operand, low, high = (self.operand(n) for n in (node.operand, node.low, node.high))
            if isinstance(low, ev.ValueOperand) and isinstance(high, ev.ValueOperand):
                self.check_bounds(low.value, high.value)
            return ev.Between(operand, low, high)
        if cls is InNode:
            if len(node.choices) > EXPRESSION_IN_OPERANDS_MAX:
                raise messages.invalid(
                    self.kind,
                    "The IN operator is provided with too many operands; "
                    f"number of operands: {len(node.choices)}",
                )
            return ev.In(self.operand(node.operand), tuple(self.operand(c) for c in node.choices))
        if cls is FunctionNode:
            return self.condition_function(node)
        raise AssertionError(f"parser produced {node!r} in condition position")

    def check_bounds(self, low: dict, high: dict) -> None:
        order = compare_values(low, high)
        if order is not None and order > 0:
            raise messages.invalid(
                self.kind,
                "The BETWEEN operator requires upper bound to be greater than or equal to "
                f"lower bound; lower bound operand: AttributeValue: {format_value(low)}, "
                f"upper bound operand: AttributeValue: {format_value(high)}",
            )

    def condition_function(self, node: FunctionNode):
        name = node.name
        if name not in CONDITION_FUNCTIONS:
            raise messages.function_misused(self.kind, name)
        self.check_function(node)
        target = ev.PathOperand(self.path(node.args[0]))
        if name == "attribute_exists":
            return ev.Exists(target)
        if name == "attribute_not_exists":
            return ev.NotExists(target)
        second = node.args[1]
        second_type = self.static_type(second)
        argument = self.operand(second)
        if name == "attribute_type":
            if second_type is not None:
                if second_type != "S":
                    raise messages.operand_type(self.kind, name, second_type)
                if argument.value["S"] not in ev.TYPE_NAMES:
                    raise messages.bad_attribute_type(self.kind, argument.value["S"])
            return ev.TypeIs(target, argument)
        if name == "begins_with":
            if second_type is not None and second_type not in ("S", "B"):
                raise messages.operand_type(self.kind, name, second_type)
            return ev.BeginsWith(target, argument)
        return ev.Contains(target, argument)

    def operand(self, node):
        cls = node.__class__
        if cls is PathNode:
            return ev.PathOperand(self.path(node))
        if cls is ValueNode:
            return ev.ValueOperand(self.value(node))
        if node.name != "size":
            raise messages.function_misused(self.kind, node.name)
        self.check_function(node)
        return ev.SizeOperand(ev.PathOperand(self.path(node.args[0])))

    # -- update ----------------------------------------------------------------
    def update(self, tree: UpdateTree) -> up.UpdatePlan:
        actions = []
        for action in tree.actions:
            path = self.path(action.path)
            if action.clause == "SET":
                actions.append(up.SetAction(path, self.set_operand(action.value)))
            elif action.clause == "REMOVE":
                actions.append(up.RemoveAction(path))
            elif action.clause == "ADD":
                value = self.value(action.value)
                type_name = next(iter(value))
                if type_name not in ("N", "SS", "NS", "BS"):
                    raise messages.operand_type(self.kind, "ADD", type_name)
                actions.append(up.AddAction(path, value))
            else:
                value = self.value(action.value)
                type_name = next(iter(value))
                if type_name not in ("SS", "NS", "BS"):
                    raise messages.operand_type(self.kind, "DELETE", type_name)
                actions.append(up.DeleteAction(path, value))
        check_disjoint(self.kind, [action.path for action in actions])
        return up.UpdatePlan(tuple(actions))

    def set_operand(self, node):
        cls = node.__class__
        if cls is PathNode:
            return up.Read(self.path(node))
        if cls is ValueNode:
            return up.Const(self.value(node))
        if cls is ArithmeticNode:
            for side in (node.left, node.right):
                side_type = self.static_type(side)
                if side_type is not None and side_type != "N":
                    raise messages.operand_type(self.kind, node.op, side_type)
            return up.Arithmetic(node.op, self.set_operand(node.left), self.set_operand(node.right))
        if node.name == "if_not_exists":
            self.check_function(node)
            return up.IfNotExists(self.path(node.args[0]), self.set_operand(node.args[1]))
        if node.name == "list_append":
            self.check_function(node, path_first=False)
            for argument in node.args:
                argument_type = self.static_type(argument)
                if argument_type is not None and argument_type != "L":
                    raise messages.operand_type(self.kind, "list_append", argument_type)
            return up.ListAppend(self.set_operand(node.args[0]), self.set_operand(node.args[1]))
        raise messages.function_misused(self.kind, node.name)

    # -- projection ------------------------------------------------------------
    def projection_paths(self, tree: ProjectionTree) -> list[tuple]:
        paths = [self.path(node) for node in tree.paths]
        check_disjoint(self.kind, paths)
        return paths


def format_value(value: dict) -> str:
    """DynamoDB's short rendering of a scalar in messages: {N:5}, {S:abc}."""
    for type_name, inner in value.items():
        return "{" + f"{type_name}:{inner}" + "}"
    return "{}"
