"""ExpressionAttributeNames / ExpressionAttributeValues of one request.

Validates both maps once, resolves #aliases and :placeholders for every
expression of the request, and remembers which ones were used so that
`check_unused` can reject leftovers after all expressions are resolved.
"""
from __future__ import annotations

import re

from triplica.errors import ValidationException
from triplica.model.values import check_attribute_name, validate_value

_NAME_KEY_RE = re.compile(r"#[A-Za-z0-9_]+")
_VALUE_KEY_RE = re.compile(r":[A-Za-z0-9_]+")


class ExpressionContext:
    def __init__(self, names: dict | None = None, values: dict | None = None) -> None:
        if names is not None:
            if not names:
                raise ValidationException("ExpressionAttributeNames must not be empty")
            for key, name in names.items():
                if _NAME_KEY_RE.fullmatch(key) is None:
                    raise ValidationException(
                        f'ExpressionAttributeNames contains invalid key: Syntax error; key: "{key}"'
                    )
                try:
                    check_attribute_name(name)
                except ValidationException as error:
                    raise ValidationException(
                        f"ExpressionAttributeNames contains invalid value: {error.message} "
                        f"for key {key}") from None
        validated: dict | None = None
        if values is not None:
            if not values:
                raise ValidationException("ExpressionAttributeValues must not be empty")
            validated = {}
            for key, value in values.items():
                if _VALUE_KEY_RE.fullmatch(key) is None:
                    raise ValidationException(
                        f'ExpressionAttributeValues contains invalid key: Syntax error; key: "{key}"'
                    )
                try:
                    validated[key] = validate_value(value)
                except ValidationException as error:
                    raise ValidationException(
                        "ExpressionAttributeValues contains invalid value: "
                        f"{error.message} for key {key}"
                    ) from None
        self.names: dict[str, str] = dict(names or {})
        self.values: dict[str, dict] = validated or {}
        self.used_names: set[str] = set()
        self.used_values: set[str] = set()
        self._shape: tuple | None = None

    def shape(self) -> tuple:
        """What static resolution depends on: the names map and each :value's type
        (a validated value has exactly one type key). Compiled expressions are
        cached by it."""
        shape = self._shape
        if shape is None:
            types = tuple([(key, next(iter(value))) for key, value in self.values.items()])
            shape = self._shape = (tuple(self.names.items()), types)
        return shape

    def name(self, alias: str) -> str | None:
        """Resolve #alias; None when undefined (the caller reports it with its kind)."""
        resolved = self.names.get(alias)
        if resolved is not None:
            self.used_names.add(alias)
        return resolved

    def value(self, placeholder: str) -> dict | None:
        resolved = self.values.get(placeholder)
        if resolved is not None:
            self.used_values.add(placeholder)
        return resolved

    def check_unused(self) -> None:
        # used_* only ever hold keys of names/values, so equal sizes mean all used.
        if len(self.used_names) == len(self.names) and len(self.used_values) == len(self.values):
            return
        unused_names = sorted(set(self.names) - self.used_names)
        if unused_names:
            raise ValidationException(
                "Value provided in ExpressionAttributeNames unused in expressions: "
                "keys: {" + ", ".join(unused_names) + "}"
            )
        unused_values = sorted(set(self.values) - self.used_values)
        if unused_values:
            raise ValidationException(
                "Value provided in ExpressionAttributeValues unused in expressions: "
                "keys: {" + ", ".join(unused_values) + "}"
            )
