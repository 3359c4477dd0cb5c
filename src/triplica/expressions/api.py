"""Entry points: expression text + ExpressionContext -> executable object.

Each call parses (through the tree cache) and resolves against the request's
context; the returned object evaluates or applies without re-parsing.
"""
from __future__ import annotations

from .context import ExpressionContext
from .evaluate import Condition
from .grammar.parser import parse_condition_tree, parse_projection_tree, parse_update_tree
from .projection import Projection
from .resolve import Resolver
from .update import UpdatePlan


def parse_condition(text: str, ctx: ExpressionContext, kind: str = "ConditionExpression") -> Condition:
    tree = parse_condition_tree(text, kind)
    return Condition(Resolver(ctx, kind).condition(tree))


def parse_update(text: str, ctx: ExpressionContext) -> UpdatePlan:
    kind = "UpdateExpression"
    return Resolver(ctx, kind).update(parse_update_tree(text, kind))


def parse_projection(text: str, ctx: ExpressionContext) -> Projection:
    kind = "ProjectionExpression"
    return Projection(Resolver(ctx, kind).projection_paths(parse_projection_tree(text, kind)))
