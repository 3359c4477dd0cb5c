"""DynamoDB's error texts for expressions, built in one place.

Every function returns a ValidationException; callers `raise` it. `kind` is
the request parameter being reported (ConditionExpression, UpdateExpression,
ProjectionExpression, KeyConditionExpression, FilterExpression).
"""
from __future__ import annotations

from triplica.errors import ValidationException

# DynamoDB's long type names, used in "operand type: ..." messages.
TYPE_LONG_NAMES = {
    "S": "STRING", "N": "NUMBER", "B": "BINARY", "BOOL": "BOOLEAN", "NULL": "NULL",
    "M": "MAP", "L": "LIST", "SS": "STRING SET", "NS": "NUMBER SET", "BS": "BINARY SET",
}

RUNTIME_MISSING_OPERAND = (
    "The provided expression refers to an attribute that does not exist in the item"
)
RUNTIME_INVALID_PATH = "The document path provided in the update expression is invalid for update"
RUNTIME_WRONG_TYPE = "An operand in the update expression has an incorrect data type"


def invalid(kind: str, detail: str) -> ValidationException:
    return ValidationException(f"Invalid {kind}: {detail}")


def syntax_error(kind: str, token: str, near: str) -> ValidationException:
    return invalid(kind, f'Syntax error; token: "{token}", near: "{near}"')


def empty_expression(kind: str) -> ValidationException:
    return invalid(kind, "The expression can not be empty;")


def too_large(kind: str, size_bytes: int) -> ValidationException:
    return invalid(
        kind,
        f"Expression size has exceeded the maximum allowed size; expression size: {size_bytes}")


def too_many_operators(kind: str, count: int) -> ValidationException:
    return invalid(kind, f"The expression contains too many operators; operator count: {count}")


def redundant_parentheses(kind: str) -> ValidationException:
    return invalid(kind, "The expression has redundant parentheses;")


def reserved_keyword(kind: str, word: str) -> ValidationException:
    return invalid(kind, f"Attribute name is a reserved keyword; reserved keyword: {word}")


def undefined_name(kind: str, name: str) -> ValidationException:
    return invalid(
        kind,
        "An expression attribute name used in the document path is not defined; "
        f"attribute name: {name}",
    )


def undefined_value(kind: str, name: str) -> ValidationException:
    return invalid(
        kind,
        f"An expression attribute value used in expression is not defined; attribute value: {name}",
    )


def invalid_function(kind: str, name: str) -> ValidationException:
    return invalid(kind, f"Invalid function name; function: {name}")


def function_misused(kind: str, name: str) -> ValidationException:
    return invalid(
        kind, f"The function is not allowed to be used this way in an expression; function: {name}"
    )


def operand_count(kind: str, name: str, count: int) -> ValidationException:
    return invalid(
        kind,
        "Incorrect number of operands for operator or function; "
        f"operator or function: {name}, number of operands: {count}",
    )


def needs_path(kind: str, name: str) -> ValidationException:
    return invalid(
        kind, f"Operator or function requires a document path; operator or function: {name}"
    )


def needs_value(kind: str, name: str) -> ValidationException:
    return invalid(
        kind, "Operator or function requires an expression attribute value; "
        f"operator or function: {name}")


def operand_type(kind: str, name: str, type_code: str) -> ValidationException:
    return invalid(
        kind,
        "Incorrect operand type for operator or function; "
        f"operator or function: {name}, operand type: {TYPE_LONG_NAMES.get(type_code, type_code)}",
    )


def bad_attribute_type(kind: str, type_name: str) -> ValidationException:
    return invalid(
        kind,
        f"Invalid attribute type name found; type: {type_name}, "
        "valid types: {B,NULL,SS,BOOL,L,BS,N,NS,S,M}",
    )


def format_path(elements: tuple[str | int, ...]) -> str:
    """DynamoDB prints document paths as [a, b, [0]]."""
    parts = [f"[{e}]" if isinstance(e, int) else e for e in elements]
    return "[" + ", ".join(parts) + "]"


def paths_overlap(kind: str, one: tuple, two: tuple) -> ValidationException:
    return invalid(
        kind,
        "Two document paths overlap with each other; must remove or rewrite one of these "
        f"paths; path one: {format_path(one)}, path two: {format_path(two)}",
    )


def paths_conflict(kind: str, one: tuple, two: tuple) -> ValidationException:
    return invalid(
        kind,
        "Two document paths conflict with each other; must remove or rewrite one of these "
        f"paths; path one: {format_path(one)}, path two: {format_path(two)}",
    )
