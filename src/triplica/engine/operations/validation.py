"""Request-shape validation shared by the operations.

DynamoDB reports violations of the service model's constraints (lengths,
patterns, enums, ranges) all at once: "2 validation errors detected: Value
'x' at 'tableName' failed to satisfy constraint: ...; Value ...". `Violations`
collects them in that format. Wrong JSON types are SerializationExceptions.
"""
from __future__ import annotations

import re
from typing import Any

from triplica.errors import LimitExceededException, SerializationException, ValidationException
from triplica.model import java_text, limits

TABLE_NAME_PATTERN = re.compile(r"[a-zA-Z0-9_.\-]+")
THROUGHPUT_UNITS_MAX = 40000
KEY_NAME_LENGTH_MAX = 255


def _show(value: Any) -> str:
    """The value as DynamoDB quotes it: Java's text (model/java_text.py)."""
    if value is None:
        return "null"
    return "'" + java_text.render(value) + "'"


class Violations:
    """Collects constraint violations and raises them as one ValidationException."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, value: Any, path: str, constraint: str) -> None:
        self.messages.append(
            f"Value {_show(value)} at '{path}' failed to satisfy constraint: {constraint}")

    def raise_if_any(self) -> None:
        count = len(self.messages)
        if count:
            noun = "error" if count == 1 else "errors"
            raise ValidationException(
                f"{count} validation {noun} detected: " + "; ".join(self.messages))


def check_table_name(name: Any, violations: Violations, path: str = "tableName") -> None:
    if name is None:
        violations.add(None, path, "Member must not be null")
        return
    if not isinstance(name, str):
        raise SerializationException(f"Unexpected value type in payload for {path}")
    if not name and path == "tableName":
        # A TableName member that may also hold an ARN is 1 to 1024 characters in
        # the model: empty is one violation, not a length and a pattern one.
        violations.add(name, path, "Member must have length greater than or equal to 1")
        return
    if len(name) < limits.TABLE_NAME_LENGTH_MIN:
        violations.add(name, path, "Member must have length greater than or equal to 3")
    if len(name) > limits.TABLE_NAME_LENGTH_MAX:
        violations.add(name, path, "Member must have length less than or equal to 255")
    if not TABLE_NAME_PATTERN.fullmatch(name):
        violations.add(name, path,
                       "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")


def check_key_name_length(name: str, path: str, violations: Violations) -> None:
    """KeySchemaAttributeName (and NonKeyAttributeName): 1 to 255 characters, reported
    before any schema rule."""
    if not name:
        violations.add(name, path, "Member must have length greater than or equal to 1")
    elif len(name) > KEY_NAME_LENGTH_MAX:
        violations.add(name, path, "Member must have length less than or equal to 255")


def check_throughput_ceiling(read: int, write: int) -> None:
    """A table's (or a global index's) provisioned throughput within the account's limit."""
    if read > THROUGHPUT_UNITS_MAX or write > THROUGHPUT_UNITS_MAX:
        raise LimitExceededException(
            "Subscriber limit exceeded: Provisioned throughput for a table cannot exceed "
            f"{THROUGHPUT_UNITS_MAX} read or write capacity units")


def check_enum(value: Any, allowed: tuple[str, ...], path: str, violations: Violations) -> None:
    if value is not None and value not in allowed:
        violations.add(value, path,
                       "Member must satisfy enum value set: [" + ", ".join(allowed) + "]")


def expect_type(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    """Raise SerializationException when a present member has the wrong JSON type."""
    if value is not None and not isinstance(value, kind):
        if kind is dict or kind == (dict,):
            raise SerializationException("Start of structure or map found where not expected.")
        raise SerializationException(
            f"Unexpected value type in payload for member {name}")
    if isinstance(value, bool) and kind in (int, (int, float)):
        raise SerializationException(f"Unexpected value type in payload for member {name}")
    return value


def table_name_only(request: dict[str, Any]) -> str:
    """Validate and return TableName for operations whose only key member it is."""
    name = request.get("TableName")
    violations = Violations()
    check_table_name(name, violations)
    violations.raise_if_any()
    return name


RETURN_CONSUMED_CAPACITY = ("INDEXES", "TOTAL", "NONE")
RETURN_ITEM_COLLECTION_METRICS = ("SIZE", "NONE")
RETURN_VALUES = ("NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW")
RETURN_VALUES_ON_CONDITION_CHECK_FAILURE = ("ALL_OLD", "NONE")
# In the order DynamoDB lists them in its enum constraint message.
SELECT_VALUES = ("SPECIFIC_ATTRIBUTES", "COUNT", "ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES")
CONDITIONAL_OPERATORS = ("AND", "OR")
