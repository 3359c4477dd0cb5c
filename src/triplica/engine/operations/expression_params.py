"""Turns a request's expression parameters (or their legacy forms) into
compiled conditions, updates and projections sharing one ExpressionContext.

DynamoDB rules enforced here: expression and non-expression parameters may not
be mixed; ExpressionAttributeNames/Values may only be given with an
expression; every name and value given must be used by some expression of the
request.
"""
from __future__ import annotations

from typing import Any

from triplica.engine.operations.validation import expect_type
from triplica.errors import ValidationException
from triplica.expressions import (ExpressionContext, parse_condition, parse_projection,
                                  parse_update)
from triplica.expressions import legacy

EXPRESSION_PARAMETERS = ("ConditionExpression", "UpdateExpression", "ProjectionExpression",
                         "KeyConditionExpression", "FilterExpression")
# Each legacy parameter beside the expression parameter family it may not be mixed with.
# KeyConditions is the exception: DynamoDB takes it with a FilterExpression or a
# ProjectionExpression, only not with a KeyConditionExpression.
LEGACY_PAIRS = (("Expected", "ConditionExpression"), ("AttributeUpdates", "UpdateExpression"),
                ("AttributesToGet", "ProjectionExpression"),
                ("KeyConditions", "KeyConditionExpression"), ("QueryFilter", "FilterExpression"),
                ("ScanFilter", "FilterExpression"), ("ConditionalOperator", "ConditionExpression"),
                ("ConditionalOperator", "FilterExpression"))
KEY_CONDITION_PAIR = (("KeyConditions", "KeyConditionExpression"),)


# The expression parameters of each operation, named when ExpressionAttributeNames
# or ExpressionAttributeValues come without any of them.
EXPRESSIONS_OF = {
    "PutItem": ("ConditionExpression",), "DeleteItem": ("ConditionExpression",),
    "UpdateItem": ("UpdateExpression", "ConditionExpression"),
    "GetItem": ("ProjectionExpression",), "BatchGetItem": ("ProjectionExpression",),
    "Query": ("KeyConditionExpression", "FilterExpression", "ProjectionExpression"),
    "Scan": ("FilterExpression", "ProjectionExpression"),
}


def _only_with_expressions(member: str, operation: str | None) -> ValidationException:
    """"ExpressionAttributeValues can only be specified when using expressions:
    ConditionExpression is null" (the operation's expression parameters)."""
    names = EXPRESSIONS_OF.get(operation or "", ())
    if not names:
        return ValidationException(f"{member} can only be specified when using expressions")
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    verb = "is" if len(names) == 1 else "are"
    return ValidationException(
        f"{member} can only be specified when using expressions: {listed} {verb} null")


def context_for(request: dict[str, Any], operation: str | None = None) -> ExpressionContext:
    names = expect_type(request.get("ExpressionAttributeNames"), dict, "ExpressionAttributeNames")
    values = expect_type(request.get("ExpressionAttributeValues"), dict,
                         "ExpressionAttributeValues")
    if "KeyConditions" in request:
        legacy.check_no_mixing(request, KEY_CONDITION_PAIR)
        legacy.check_no_mixing({name: value for name, value in request.items()
                                if name != "KeyConditions"}, LEGACY_PAIRS)
    else:
        legacy.check_no_mixing(request, LEGACY_PAIRS)
    uses_expressions = any(request.get(p) is not None for p in EXPRESSION_PARAMETERS)
    if not uses_expressions:
        if names is not None:
            raise _only_with_expressions("ExpressionAttributeNames", operation)
        if values is not None:
            raise _only_with_expressions("ExpressionAttributeValues", operation)
    return ExpressionContext(names, values)


def _text(request: dict[str, Any], name: str) -> str | None:
    return expect_type(request.get(name), str, name)


def write_condition(request: dict[str, Any], ctx: ExpressionContext) -> Any:
    """ConditionExpression, or the legacy Expected map, or None."""
    text = _text(request, "ConditionExpression")
    if text is not None:
        return parse_condition(text, ctx, "ConditionExpression")
    expected = expect_type(request.get("Expected"), dict, "Expected")
    if expected:
        return legacy.condition_from_expected(expected, request.get("ConditionalOperator"))
    legacy.check_operator_has_conditions(request.get("ConditionalOperator"))
    return None


def read_projection(request: dict[str, Any], ctx: ExpressionContext) -> Any:
    """ProjectionExpression, or the legacy AttributesToGet list, or None."""
    text = _text(request, "ProjectionExpression")
    if text is not None:
        return parse_projection(text, ctx)
    names = expect_type(request.get("AttributesToGet"), list, "AttributesToGet")
    if names is not None:
        return legacy.projection_from_attributes_to_get(names)
    return None


def update_plan(request: dict[str, Any], ctx: ExpressionContext) -> Any:
    """UpdateExpression, or the legacy AttributeUpdates map, or None."""
    text = _text(request, "UpdateExpression")
    if text is not None:
        return parse_update(text, ctx)
    updates = expect_type(request.get("AttributeUpdates"), dict, "AttributeUpdates")
    if updates:
        return legacy.update_from_attribute_updates(updates)
    return None


def read_filter(request: dict[str, Any], ctx: ExpressionContext, legacy_name: str) -> Any:
    """FilterExpression, or the legacy QueryFilter/ScanFilter map, or None."""
    text = _text(request, "FilterExpression")
    if text is not None:
        return parse_condition(text, ctx, "FilterExpression")
    filters = expect_type(request.get(legacy_name), dict, legacy_name)
    if filters:
        return legacy.condition_from_filter(filters, request.get("ConditionalOperator"),
                                            legacy_name[:1].lower() + legacy_name[1:])
    legacy.check_operator_has_conditions(request.get("ConditionalOperator"))
    return None
