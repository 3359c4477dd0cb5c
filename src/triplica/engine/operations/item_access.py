"""What item operations share: table lookup, keys, stored images, capacity.

Stored item images are engine/item_images.py's.
"""
from __future__ import annotations

from typing import Any

from triplica.engine.item_images import SIZE_PREFIX, decode_image, encode_image, image_size  # noqa: F401
from triplica.engine.operations.service import Service
from triplica.engine.operations.validation import Violations, check_enum, check_table_name, expect_type
from triplica.engine.database import Table
from triplica.errors import ResourceNotFoundException, ValidationException
from triplica.model import limits
from triplica.model.capacity import consumed_capacity, read_units, write_units  # noqa: F401
from triplica.model.keys import encode_storage_key, validate_key_value
from triplica.model.size import item_size_bytes
from triplica.model.values import validate_value

TYPE_NAMES = ("S", "N", "B")


def table_of(service: Service, request: dict[str, Any],
             violations: Violations | None = None) -> Table:
    """Validate TableName (with any other collected violations) and find the table."""
    violations = violations or Violations()
    name = request.get("TableName")
    check_table_name(name, violations)
    violations.raise_if_any()
    table = service.db.tables.get(name)
    if table is None:
        raise ResourceNotFoundException("Requested resource not found")
    return table


def check_common_enums(request: dict[str, Any], violations: Violations) -> None:
    check_enum(request.get("ReturnConsumedCapacity"), ("INDEXES", "TOTAL", "NONE"),
               "returnConsumedCapacity", violations)
    check_enum(request.get("ReturnItemCollectionMetrics"), ("SIZE", "NONE"),
               "returnItemCollectionMetrics", violations)


# ----- keys ---------------------------------------------------------------

def key_from_request(table: Table, key: Any) -> tuple[dict, dict | None]:
    """The (partition key, sort key) values of a Key parameter, validated."""
    info = table.info
    if key is None:
        violations = Violations()
        violations.add(None, "key", "Member must not be null")
        violations.raise_if_any()
    expect_type(key, dict, "Key")
    expected = 2 if info.range_key is not None else 1
    if len(key) != expected or info.hash_key not in key \
            or (info.range_key is not None and info.range_key not in key):
        raise ValidationException("The provided key element does not match the schema")
    pk = validate_value(key[info.hash_key])
    if info.hash_type not in pk:
        raise ValidationException("The provided key element does not match the schema")
    validate_key_value(info.hash_key, pk, True)
    sk = None
    if info.range_key is not None:
        sk = validate_value(key[info.range_key])
        if info.range_type not in sk:
            raise ValidationException("The provided key element does not match the schema")
        validate_key_value(info.range_key, sk, False)
    return pk, sk


def key_from_item(table: Table, item: dict[str, Any]) -> tuple[dict, dict | None]:
    """The key of a full item (PutItem): missing or mistyped key attributes are errors."""
    info = table.info
    pk = _key_attribute(item, info.hash_key, info.hash_type, True)
    sk = None
    if info.range_key is not None:
        sk = _key_attribute(item, info.range_key, info.range_type, False)
    return pk, sk


def _key_attribute(item: dict[str, Any], name: str, type_name: str, is_hash: bool) -> dict:
    value = item.get(name)
    if value is None:
        raise ValidationException(
            f"One or more parameter values were invalid: Missing the key {name} in the item")
    if type_name not in value:
        actual = next(iter(value))
        raise ValidationException(
            "One or more parameter values were invalid: Type mismatch for key "
            f"{name} expected: {type_name} actual: {actual}")
    validate_key_value(name, value, is_hash)
    return value


def key_attributes(table: Table, pk: dict, sk: dict | None) -> dict[str, Any]:
    info = table.info
    key = {info.hash_key: pk}
    if sk is not None:
        key[info.range_key] = sk
    return key


def locate(table: Table, pk: dict, sk: dict | None) -> tuple[Any, bytes]:
    storage_key = encode_storage_key(pk, sk)
    # The storage key starts with the 8-byte big-endian partition hash: hash once.
    return table.partition_for_hash(int.from_bytes(storage_key[:8], "big")), storage_key


# ----- stored images ------------------------------------------------------

def checked_item_size(item: dict[str, Any],
                      message: str = "Item size has exceeded the maximum allowed size") -> int:
    size = item_size_bytes(item)
    if size > limits.ITEM_SIZE_BYTES_MAX:
        raise ValidationException(message)
    return size


# ----- consumed capacity --------------------------------------------------
