"""Entry points: expression text + ExpressionContext -> executable object.

Resolution is compiled (see resolve.py) and cached by (grammar, kind, text,
context shape): the shape is the names map and the type of every :value, the
only request inputs the static checks read. A cache hit skips parsing and
resolution; it marks the same names and values used as a full resolution
would and binds this request's values into the returned object. Objects that
hold no :value (projections, `attribute_exists(pk)`) are shared between
requests; executable objects are never mutated after construction.
"""
from __future__ import annotations

from typing import Callable

from .context import ExpressionContext
from .evaluate import Condition
from .grammar.parser import parse_condition_tree, parse_projection_tree, parse_update_tree
from .projection import Projection
from .resolve import Late, Resolver, build
from .update import UpdatePlan

COMPILED_ENTRIES_MAX = 4096


class _Compiled:
    __slots__ = ("part", "used_names", "used_values")

    def __init__(self, part, resolver: Resolver) -> None:
        self.part = part
        self.used_names = frozenset(resolver.used_names)
        self.used_values = frozenset(resolver.used_values)

    def bind(self, ctx: ExpressionContext):
        if self.used_names:
            ctx.used_names |= self.used_names
        if self.used_values:
            ctx.used_values |= self.used_values
        part = self.part
        return part.make(ctx.values) if part.__class__ is Late else part


_compiled: dict[tuple, _Compiled] = {}


def _resolved(grammar: str, text: str, kind: str, ctx: ExpressionContext,
              compile_tree: Callable[[Resolver, object], object], parse_tree: Callable):
    key = (grammar, kind, text, ctx.shape())
    entry = _compiled.get(key)
    if entry is None:
        resolver = Resolver(ctx, kind)
        part = compile_tree(resolver, parse_tree(text, kind))
        entry = _Compiled(part, resolver)
        if len(_compiled) >= COMPILED_ENTRIES_MAX:
            _compiled.clear()
        _compiled[key] = entry
    return entry.bind(ctx)


def _condition(resolver: Resolver, tree) -> object:
    root = resolver.condition(tree)  # collects the top-level names while resolving
    return build(Condition, root, frozenset(resolver.top_level_names))


def _update(resolver: Resolver, tree) -> object:
    return resolver.update(tree)


def _projection(resolver: Resolver, tree) -> object:
    return Projection(resolver.projection_paths(tree))


def parse_condition(text: str, ctx: ExpressionContext, kind: str = "ConditionExpression") -> Condition:
    return _resolved("condition", text, kind, ctx, _condition, parse_condition_tree)


def parse_update(text: str, ctx: ExpressionContext) -> UpdatePlan:
    return _resolved("update", text, "UpdateExpression", ctx, _update, parse_update_tree)


def parse_projection(text: str, ctx: ExpressionContext) -> Projection:
    return _resolved("projection", text, "ProjectionExpression", ctx, _projection,
                     parse_projection_tree)
