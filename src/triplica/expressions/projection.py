"""Projections: ProjectionExpression, AttributesToGet and UPDATED_OLD/NEW.

A projection keeps the structure of the item: a.b[1] returns {"a": {"M":
{"b": {"L": [<element 1>]}}}}; parts of a path that are missing (or of the
wrong type) are simply omitted, and containers left empty by that are
omitted too. The paths are compiled once into a trie.
"""
from __future__ import annotations


class _Node:
    __slots__ = ("leaf", "names", "indexes")

    def __init__(self) -> None:
        self.leaf = False
        self.names: dict[str, _Node] = {}
        self.indexes: dict[int, _Node] = {}


def _extract(value: dict, node: _Node) -> dict | None:
    if node.leaf:
        return value
    if node.names and "M" in value:
        inner = value["M"]
        result = {}
        for name, child in node.names.items():
            member = inner.get(name)
            if member is not None:
                picked = _extract(member, child)
                if picked is not None:
                    result[name] = picked
        return {"M": result} if result else None
    if node.indexes and "L" in value:
        inner = value["L"]
        elements = []
        for index in sorted(node.indexes):
            if index < len(inner):
                picked = _extract(inner[index], node.indexes[index])
                if picked is not None:
                    elements.append(picked)
        return {"L": elements} if elements else None
    return None


class Projection:
    __slots__ = ("paths", "_root")

    def __init__(self, paths) -> None:
        self.paths: tuple[tuple, ...] = tuple(paths)
        self._root = _Node()
        for path in self.paths:
            node = self._root
            for element in path:
                children = node.indexes if element.__class__ is int else node.names
                child = children.get(element)
                if child is None:
                    child = children[element] = _Node()
                node = child
            node.leaf = True

    @classmethod
    def from_names(cls, names: list[str]) -> "Projection":
        """AttributesToGet: top-level names taken literally (no path syntax)."""
        return cls(tuple((name,) for name in dict.fromkeys(names)))

    def top_level_names(self) -> set[str]:
        return {path[0] for path in self.paths}

    def apply(self, item: dict) -> dict:
        result = {}
        for name, child in self._root.names.items():
            value = item.get(name)
            if value is not None:
                picked = _extract(value, child)
                if picked is not None:
                    result[name] = picked
        return result
