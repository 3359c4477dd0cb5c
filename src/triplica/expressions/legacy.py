"""Pre-expression request parameters, turned into the expression engine's objects.

Expected (Value/Exists or ComparisonOperator + AttributeValueList),
QueryFilter/ScanFilter, KeyConditions, AttributeUpdates and AttributesToGet
build the same Condition, KeyCondition, UpdatePlan and Projection objects as
the expression parser, by constructing executable nodes directly. Rules and
messages follow the "Legacy conditional parameters" appendix of the DynamoDB
Developer Guide.
"""
from __future__ import annotations

from typing import Iterable

from triplica.errors import SerializationException, ValidationException
from triplica.model.values import check_attribute_name, compare_values, validate_value

from . import evaluate as ev
from . import update as up
from .key_condition import (IndexKeyCondition, KeyCondition, build_index_key_condition,
                            build_key_condition)
from .projection import Projection

INVALID = "One or more parameter values were invalid: "
LEGACY_TYPE_MISMATCH = INVALID + "Type mismatch for attribute to update"
ARGUMENT_COUNTS = {
    "EQ": 1, "NE": 1, "LE": 1, "LT": 1, "GE": 1, "GT": 1, "CONTAINS": 1, "NOT_CONTAINS": 1,
    "BEGINS_WITH": 1, "NULL": 0, "NOT_NULL": 0, "BETWEEN": 2, "IN": None,
}
ALLOWED_TYPES = {
    "LE": ("S", "N", "B"), "LT": ("S", "N", "B"), "GE": ("S", "N", "B"),
    "GT": ("S", "N", "B"), "BETWEEN": ("S", "N", "B"), "IN": ("S", "N", "B"),
    "CONTAINS": ("S", "N", "B"), "NOT_CONTAINS": ("S", "N", "B"), "BEGINS_WITH": ("S", "B"),
}
COMPARES = {"EQ": "=", "NE": "<>", "LE": "<=", "LT": "<", "GE": ">=", "GT": ">"}
KEY_OPERATORS = {
    "EQ": "=", "LE": "<=", "LT": "<", "GE": ">=", "GT": ">", "BEGINS_WITH": "begins_with",
    "BETWEEN": "BETWEEN",
}


class _Always:
    __slots__ = ()

    def evaluate(self, item: dict) -> bool:
        return True


def _type_of(value: dict) -> str:
    return next(iter(value))


def _arguments(operator: str, values: list, path: str) -> list[dict]:
    """Validated AttributeValueList of one condition; `path` names its
    ComparisonOperator member (keyConditions.pk.member.comparisonOperator)."""
    if operator is None:
        raise ValidationException(
            f"1 validation error detected: Value null at '{path}' failed to satisfy "
            "constraint: Member must not be null")
    if operator not in ARGUMENT_COUNTS:   # an enum member: case-sensitive
        raise ValidationException(
            f"1 validation error detected: Value '{operator}' at '{path}' failed to satisfy "
            "constraint: Member must satisfy enum value set: [" + ", ".join(ARGUMENT_COUNTS)
            + "]")
    expected = ARGUMENT_COUNTS[operator]
    if (expected is None and not values) or (expected is not None and len(values) != expected):
        raise ValidationException(
            INVALID + f"Invalid number of argument(s) for the {operator} ComparisonOperator"
        )
    values = [validate_value(value) for value in values]
    allowed = ALLOWED_TYPES.get(operator)
    for value in values:
        if allowed is not None and _type_of(value) not in allowed:
            raise ValidationException(
                INVALID
                + f"ComparisonOperator {operator} is not valid for {_type_of(value)} AttributeValue type"
            )
    if operator == "IN" and len({_type_of(value) for value in values}) > 1:
        raise ValidationException(
            INVALID + "AttributeValues inside AttributeValueList must be of same type")
    if operator == "BETWEEN":
        if _type_of(values[0]) != _type_of(values[1]):
            raise ValidationException(
                INVALID + "AttributeValues inside AttributeValueList must be of same type"
            )
        if compare_values(values[0], values[1]) > 0:
            raise ValidationException(
                "The BETWEEN condition was provided a range where the lower bound is greater "
                "than the upper bound"
            )
    return values


def _node(name: str, operator: str, values: list[dict]):
    target = ev.PathOperand((name,))
    consts = [ev.ValueOperand(value) for value in values]
    if operator in COMPARES:
        return ev.Compare(COMPARES[operator], target, consts[0])
    if operator == "NOT_NULL":
        return ev.Exists(target)
    if operator == "NULL":
        return ev.NotExists(target)
    if operator == "CONTAINS":
        return ev.Contains(target, consts[0])
    if operator == "NOT_CONTAINS":
        return ev.And(ev.Exists(target), ev.Not(ev.Contains(target, consts[0])))
    if operator == "BEGINS_WITH":
        return ev.BeginsWith(target, consts[0])
    if operator == "IN":
        return ev.In(target, tuple(consts))
    return ev.Between(target, consts[0], consts[1])


def _combine(nodes: list, operator: str | None) -> ev.Condition:
    if not nodes:
        return ev.Condition(_Always())
    joiner = ev.Or if (operator or "AND").upper() == "OR" else ev.And
    root = nodes[0]
    for node in nodes[1:]:
        root = joiner(root, node)
    return ev.Condition(root)


def _expected_node(name: str, spec: dict):
    operator = spec.get("ComparisonOperator")
    value = spec.get("Value")
    value_list = spec.get("AttributeValueList")
    exists = spec.get("Exists")
    if operator is not None:
        if exists is not None:
            raise ValidationException(
                INVALID + f"Exists and ComparisonOperator cannot be used together for Attribute: {name}"
            )
        if value is not None and value_list is not None:
            raise ValidationException(
                INVALID + f"Value and AttributeValueList cannot be used together for Attribute: {name}"
            )
        values = value_list if value_list is not None else ([value] if value is not None else [])
        return _node(name, operator, _arguments(operator, values, _member_path("expected", name)))
    if value_list is not None:
        raise ValidationException(
            INVALID + f"AttributeValueList can only be used with a ComparisonOperator for Attribute: {name}"
        )
    if exists is None or exists:
        if value is None:
            raise ValidationException(
                INVALID + f"Value must be provided when Exists is true for Attribute: {name}"
            )
        return _node(name, "EQ", [validate_value(value)])
    if value is not None:
        raise ValidationException(
            INVALID + f"Value cannot be used when Exists is false for Attribute: {name}"
        )
    return _node(name, "NULL", [])


def check_operator_has_conditions(operator: str | None) -> None:
    """ConditionalOperator joins the conditions of Expected, QueryFilter or
    ScanFilter: given without any, it is a request error."""
    if operator is not None:
        raise ValidationException(
            INVALID + "ConditionalOperator can only be used when Filter or Expected has two or "
            "more elements")


def condition_from_expected(expected: dict, operator: str | None) -> ev.Condition:
    return _combine([_expected_node(name, spec) for name, spec in expected.items()], operator)


def condition_from_filter(filter: dict, operator: str | None,
                          member: str = "queryFilter") -> ev.Condition:
    """QueryFilter / ScanFilter (`member` in the request, lower camel case):
    ComparisonOperator + AttributeValueList per attribute."""
    nodes = []
    for name, spec in filter.items():
        comparison = spec.get("ComparisonOperator")
        if comparison is None:
            raise ValidationException(
                INVALID + f"ComparisonOperator must be provided for Attribute: {name}"
            )
        values = _arguments(comparison, spec.get("AttributeValueList") or [],
                            _member_path(member, name))
        nodes.append(_node(name, comparison, values))
    return _combine(nodes, operator)


def _member_path(member: str, name: str) -> str:
    return f"{member}.{name}.member.comparisonOperator"


def _key_comparisons(key_conditions: dict) -> list[tuple[str, str, tuple[dict, ...]]]:
    conditions = []
    for name, spec in key_conditions.items():
        comparison = spec.get("ComparisonOperator")
        values = _arguments(comparison, spec.get("AttributeValueList") or [],
                            _member_path("keyConditions", name))
        if comparison not in KEY_OPERATORS:
            raise ValidationException(
                "Attempted conditional constraint is not an indexable operation"
            )
        conditions.append((name, KEY_OPERATORS[comparison], tuple(values)))
    return conditions


def key_condition_from_key_conditions(
    key_conditions: dict, hash_key: str, range_key: str | None
) -> KeyCondition:
    return build_key_condition(_key_comparisons(key_conditions), hash_key, range_key)


def index_key_condition_from_key_conditions(
    key_conditions: dict, hash_keys: tuple[str, ...], range_keys: tuple[str, ...]
) -> IndexKeyCondition:
    """KeyConditions on a global index's (possibly multi-attribute) key."""
    return build_index_key_condition(_key_comparisons(key_conditions), hash_keys, range_keys)


def update_from_attribute_updates(updates: dict) -> up.UpdatePlan:
    actions = []
    for name, spec in updates.items():
        check_attribute_name(name)
        action = (spec.get("Action") or "PUT").upper()
        value = spec.get("Value")
        if value is None:
            if action != "DELETE":
                raise ValidationException(
                    INVALID + "Only DELETE action is allowed when no attribute value is specified"
                )
            actions.append(up.DeleteAction((name,), None))
            continue
        value = validate_value(value)
        type_name = _type_of(value)
        if action == "PUT":
            actions.append(up.SetAction((name,), up.Const(value)))
        elif action == "ADD":
            if type_name not in ("N", "SS", "NS", "BS"):
                raise ValidationException(
                    INVALID + f"ADD action is not supported for the type {type_name}"
                )
            actions.append(up.AddAction((name,), value, LEGACY_TYPE_MISMATCH))
        elif action == "DELETE":
            if type_name not in ("SS", "NS", "BS"):
                raise ValidationException(
                    INVALID + f"DELETE action with value is not supported for the type {type_name}"
                )
            actions.append(up.DeleteAction((name,), value, LEGACY_TYPE_MISMATCH))
        else:
            raise ValidationException(INVALID + f"Unsupported Action: {action}")
    return up.UpdatePlan(tuple(actions))


def projection_from_attributes_to_get(names: list[str]) -> Projection:
    if not names:
        raise ValidationException(
            "1 validation error detected: Value '[]' at 'attributesToGet' failed to satisfy "
            "constraint: Member must have length greater than or equal to 1")
    for position, name in enumerate(names, 1):
        if name is None:
            raise ValidationException(
                f"1 validation error detected: Value null at 'attributesToGet.{position}.member' "
                "failed to satisfy constraint: Member must not be null")
        if type(name) is not str:
            raise SerializationException("Unexpected value type in payload for member "
                                         "AttributesToGet")
        check_attribute_name(name)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValidationException(INVALID + f"Duplicate value in attribute name: {name}")
        seen.add(name)
    return Projection.from_names(names)


def check_no_mixing(request: dict, pairs: Iterable[tuple[str, str]]) -> None:
    """pairs: (non-expression parameter, expression parameter) names to check,
    e.g. [("Expected", "ConditionExpression"), ("AttributesToGet", "ProjectionExpression")].
    Raises when the request uses parameters of both families."""
    cacheable = pairs.__class__ is tuple and len(_families) < _FAMILIES_ENTRIES_MAX
    families = _families.get(pairs) if pairs.__class__ is tuple else None
    if families is None:
        families = _split_families(pairs)
        if cacheable:
            _families[pairs] = families
    legacy_names, expression_names = families
    # Every request passes through here: look for a legacy parameter first,
    # since requests using one are rare.
    legacy = [name for name in legacy_names if request.get(name) is not None]
    if not legacy:
        return
    modern = [name for name in expression_names if request.get(name) is not None]
    if modern:
        raise ValidationException(
            "Can not use both expression and non-expression parameters in the same request: "
            "Non-expression parameters: {" + ", ".join(legacy) + "} "
            "Expression parameters: {" + ", ".join(modern) + "}"
        )


# pairs tuple -> (legacy names, expression names), each without repeats, in
# order of first appearance (the order the error message lists them in).
# Callers pass a module constant, so a handful of entries is plenty.
_families: dict[tuple, tuple[tuple[str, ...], tuple[str, ...]]] = {}
_FAMILIES_ENTRIES_MAX = 64


def _split_families(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    pairs = list(pairs)
    return (tuple(dict.fromkeys(legacy for legacy, _ in pairs)),
            tuple(dict.fromkeys(modern for _, modern in pairs)))
