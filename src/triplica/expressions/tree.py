"""Syntax tree produced by the parser, before names and values are resolved.

These nodes hold #aliases and :placeholders as written, never a request's
values, so a tree can be cached by expression text and shared by requests.
`resolve.py` turns a tree plus an ExpressionContext into executable nodes.

Path elements: a str is an attribute name (starting with "#" when it is an
alias), an int is a list index.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True, slots=True)
class PathNode:
    elements: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ValueNode:
    name: str  # ":v"


@dataclass(frozen=True, slots=True)
class FunctionNode:
    name: str
    args: tuple["Node", ...]


@dataclass(frozen=True, slots=True)
class ArithmeticNode:
    """SET value `left + right` or `left - right`."""
    op: str
    left: "Node"
    right: "Node"


@dataclass(frozen=True, slots=True)
class CompareNode:
    op: str  # = <> < <= > >=
    left: "Node"
    right: "Node"


@dataclass(frozen=True, slots=True)
class BetweenNode:
    operand: "Node"
    low: "Node"
    high: "Node"


@dataclass(frozen=True, slots=True)
class InNode:
    operand: "Node"
    choices: tuple["Node", ...]


@dataclass(frozen=True, slots=True)
class AndNode:
    left: "Node"
    right: "Node"


@dataclass(frozen=True, slots=True)
class OrNode:
    left: "Node"
    right: "Node"


@dataclass(frozen=True, slots=True)
class NotNode:
    operand: "Node"


@dataclass(frozen=True, slots=True)
class UpdateAction:
    clause: str          # SET REMOVE ADD DELETE
    path: PathNode
    value: "Node | None"  # None for REMOVE


@dataclass(frozen=True, slots=True)
class UpdateTree:
    actions: tuple[UpdateAction, ...]


@dataclass(frozen=True, slots=True)
class ProjectionTree:
    paths: tuple[PathNode, ...]


Node = Union[
    PathNode, ValueNode, FunctionNode, ArithmeticNode, CompareNode, BetweenNode,
    InNode, AndNode, OrNode, NotNode,
]
