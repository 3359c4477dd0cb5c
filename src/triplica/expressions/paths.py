"""Document paths after alias resolution: lookup and overlap checks.

A resolved path is a tuple whose str elements are attribute names and whose
int elements are list indexes, e.g. ("a", "b", 0) for a.b[0].
"""
from __future__ import annotations

from . import messages

Path = tuple  # tuple[str | int, ...]


def get_path(item: dict, path: Path) -> dict | None:
    """The AttributeValue at path, or None when any step is missing."""
    value = item.get(path[0])
    for element in path[1:]:
        if value is None:
            return None
        if element.__class__ is int:
            inner = value.get("L")
            if inner is None or element >= len(inner):
                return None
            value = inner[element]
        else:
            inner = value.get("M")
            if inner is None:
                return None
            value = inner.get(element)
    return value


def check_disjoint(kind: str, paths: list[Path]) -> None:
    """Reject two paths where one is a prefix of the other (overlap) or that
    reach the same spot once as a map key and once as a list index (conflict)."""
    for i, one in enumerate(paths):
        for two in paths[:i]:
            _check_pair(kind, two, one)


def _check_pair(kind: str, one: Path, two: Path) -> None:
    for left, right in zip(one, two):
        if left == right and left.__class__ is right.__class__:
            continue
        if left.__class__ is not right.__class__:
            raise messages.paths_conflict(kind, one, two)
        return
    raise messages.paths_overlap(kind, one, two)
