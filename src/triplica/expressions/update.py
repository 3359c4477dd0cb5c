"""Executable update plans: UpdateExpression and legacy AttributeUpdates.

`UpdatePlan.apply` works in two phases so an update applies all or nothing:
1. every new value (SET operands, ADD sums and unions, DELETE differences)
   is computed against the item as it was before the update;
2. the writes are applied to a copy (containers on a written path are copied,
   the input item is never mutated): SET/ADD/DELETE first, then REMOVEs, list
   elements in descending index order so each index means what it meant in
   the original item.
Any error in phase 1 or 2 raises ValidationException and the caller keeps
the original item.
"""
from __future__ import annotations

from triplica.errors import ValidationException
from triplica.model.numbers import add_number_texts, parse_number
from triplica.model.values import decode_binary

from .messages import RUNTIME_INVALID_PATH, RUNTIME_MISSING_OPERAND, RUNTIME_WRONG_TYPE
from .paths import get_path
from .projection import Projection

SET_TYPES = ("SS", "NS", "BS")


# -- SET operands ----------------------------------------------------------------
class Read:
    __slots__ = ("path",)

    def __init__(self, path: tuple) -> None:
        self.path = path

    def compute(self, item: dict) -> dict:
        value = get_path(item, self.path)
        if value is None:
            raise ValidationException(RUNTIME_MISSING_OPERAND)
        return value


class Const:
    __slots__ = ("value",)

    def __init__(self, value: dict) -> None:
        self.value = value

    def compute(self, item: dict) -> dict:
        return self.value


class IfNotExists:
    __slots__ = ("path", "default")

    def __init__(self, path: tuple, default) -> None:
        self.path, self.default = path, default

    def compute(self, item: dict) -> dict:
        value = get_path(item, self.path)
        return value if value is not None else self.default.compute(item)


class ListAppend:
    __slots__ = ("first", "second")

    def __init__(self, first, second) -> None:
        self.first, self.second = first, second

    def compute(self, item: dict) -> dict:
        first, second = self.first.compute(item), self.second.compute(item)
        if "L" not in first or "L" not in second:
            raise ValidationException(RUNTIME_WRONG_TYPE)
        return {"L": first["L"] + second["L"]}


class Arithmetic:
    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left, right) -> None:
        self.op, self.left, self.right = op, left, right

    def compute(self, item: dict) -> dict:
        left, right = self.left.compute(item), self.right.compute(item)
        left_number, right_number = left.get("N"), right.get("N")
        if left_number is None or right_number is None:
            raise ValidationException(RUNTIME_WRONG_TYPE)
        # Stored and validated numbers are canonical text, as add_number_texts needs.
        return {"N": add_number_texts(left_number, right_number, self.op == "-")}


# -- set arithmetic --------------------------------------------------------------
def _member_key(type_name: str):
    if type_name == "NS":
        return parse_number
    if type_name == "BS":
        return decode_binary
    return lambda member: member


def add_value(existing: dict | None, addend: dict, wrong_type: str = RUNTIME_WRONG_TYPE) -> dict:
    """ADD: number sum or set union; a missing attribute becomes the addend."""
    if existing is None:
        return addend
    if "N" in addend and "N" in existing:
        return {"N": add_number_texts(existing["N"], addend["N"])}
    for type_name in SET_TYPES:
        if type_name in addend and type_name in existing:
            key = _member_key(type_name)
            seen = {key(member) for member in existing[type_name]}
            merged = list(existing[type_name])
            for member in addend[type_name]:
                if key(member) not in seen:
                    seen.add(key(member))
                    merged.append(member)
            return {type_name: merged}
    raise ValidationException(wrong_type)


def delete_value(existing: dict, removed: dict,
                 wrong_type: str = RUNTIME_WRONG_TYPE) -> dict | None:
    """DELETE: set difference; None when no member is left."""
    for type_name in SET_TYPES:
        if type_name in removed and type_name in existing:
            key = _member_key(type_name)
            gone = {key(member) for member in removed[type_name]}
            kept = [member for member in existing[type_name] if key(member) not in gone]
            return {type_name: kept} if kept else None
    raise ValidationException(wrong_type)


# -- actions -----------------------------------------------------------------------
_REMOVE = object()


class SetAction:
    __slots__ = ("path", "value")

    def __init__(self, path: tuple, value) -> None:
        self.path, self.value = path, value

    def plan(self, item: dict):
        return self.value.compute(item)


class RemoveAction:
    __slots__ = ("path",)

    def __init__(self, path: tuple) -> None:
        self.path = path

    def plan(self, item: dict):
        return _REMOVE


class AddAction:
    __slots__ = ("path", "value", "wrong_type")

    def __init__(self, path: tuple, value: dict, wrong_type: str = RUNTIME_WRONG_TYPE) -> None:
        self.path, self.value = path, value
        self.wrong_type = wrong_type   # AttributeUpdates words a mismatch differently

    def plan(self, item: dict):
        return add_value(get_path(item, self.path), self.value, self.wrong_type)


class DeleteAction:
    __slots__ = ("path", "value", "wrong_type")

    def __init__(self, path: tuple, value: dict | None,
                 wrong_type: str = RUNTIME_WRONG_TYPE) -> None:
        self.path, self.value = path, value  # value None: legacy DELETE of the attribute
        self.wrong_type = wrong_type

    def plan(self, item: dict):
        existing = get_path(item, self.path)
        if self.value is None:
            return _REMOVE
        if existing is None:
            return None
        remaining = delete_value(existing, self.value, self.wrong_type)
        return _REMOVE if remaining is None else remaining


# -- writing into a copy -----------------------------------------------------------------
def _copy_container(value: dict) -> dict:
    if "M" in value:
        return {"M": dict(value["M"])}
    if "L" in value:
        return {"L": list(value["L"])}
    return value


def _writable_parent(root: dict, prefix: tuple) -> dict | None:
    """Copy the containers along prefix into root (re-linking each copy) and
    return the copied AttributeValue at prefix, or None when a step is missing.
    A step through a value of the wrong type is an invalid path."""
    current = root.get(prefix[0])
    if current is None:
        return None
    current = _copy_container(current)
    root[prefix[0]] = current
    for element in prefix[1:]:
        if element.__class__ is int:
            inner = current.get("L")
            if inner is None:
                raise ValidationException(RUNTIME_INVALID_PATH)
            if element >= len(inner):
                return None
        else:
            inner = current.get("M")
            if inner is None:
                raise ValidationException(RUNTIME_INVALID_PATH)
            if element not in inner:
                return None
        current = _copy_container(inner[element])
        inner[element] = current
    return current


def set_path(root: dict, path: tuple, value: dict) -> None:
    if len(path) == 1:
        root[path[0]] = value
        return
    parent = _writable_parent(root, path[:-1])
    if parent is None:
        raise ValidationException(RUNTIME_INVALID_PATH)
    element = path[-1]
    if element.__class__ is int:
        inner = parent.get("L")
        if inner is None:
            raise ValidationException(RUNTIME_INVALID_PATH)
        if element >= len(inner):
            inner.append(value)  # DynamoDB appends past the end of a list
        else:
            inner[element] = value
    else:
        inner = parent.get("M")
        if inner is None:
            raise ValidationException(RUNTIME_INVALID_PATH)
        inner[element] = value


def remove_path(root: dict, path: tuple) -> None:
    if len(path) == 1:
        root.pop(path[0], None)
        return
    parent = _writable_parent(root, path[:-1])
    if parent is None:   # REMOVE c.c or b[0] with c or b absent: DynamoDB refuses the path
        raise ValidationException(RUNTIME_INVALID_PATH)
    element = path[-1]
    if element.__class__ is int:
        inner = parent.get("L")
        if inner is None:
            raise ValidationException(RUNTIME_INVALID_PATH)
        if element < len(inner):
            del inner[element]
    else:
        inner = parent.get("M")
        if inner is None:
            raise ValidationException(RUNTIME_INVALID_PATH)
        inner.pop(element, None)


def _path_of(planned: tuple) -> tuple:
    return planned[0]


class UpdatePlan:
    """A resolved update: apply it to many items (one per request in practice)."""
    __slots__ = ("actions", "paths")

    def __init__(self, actions: tuple, paths: tuple[tuple, ...] | None = None) -> None:
        self.actions = actions
        # paths: the actions' paths, when the builder already has them.
        self.paths: tuple[tuple, ...] = (
            paths if paths is not None else tuple(action.path for action in actions))

    def top_level_names(self) -> set[str]:
        return {path[0] for path in self.paths}

    def removes_only(self) -> bool:
        """Every action removes (REMOVE, DELETE): on a missing item such an
        update writes nothing. An empty plan (AttributeUpdates {}) does not."""
        return bool(self.actions) and all(
            action.__class__ is RemoveAction or action.__class__ is DeleteAction
            for action in self.actions)

    def apply(self, item: dict) -> dict:
        planned = [(action.path, action.plan(item)) for action in self.actions]
        # Writes in path order: SETs past the end of one list append in
        # ascending index order, whatever their order in the expression (as
        # DynamoDB does); other writes touch disjoint paths, so their order
        # does not matter, and disjointness makes the paths comparable.
        planned.sort(key=_path_of)
        result = dict(item)
        removals = []
        for path, value in planned:
            if value is _REMOVE:
                removals.append(path)
            elif value is not None:
                set_path(result, path, value)
        removals.sort(reverse=True)  # later list indexes first; disjointness makes tuples comparable
        for path in removals:
            remove_path(result, path)
        return result

    def updated_attributes(self, item: dict) -> dict:
        """The parts of item at the updated paths (ReturnValues UPDATED_OLD/NEW)."""
        return Projection(self.paths).apply(item)
