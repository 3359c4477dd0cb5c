"""CreateTable's secondary index parameters: DynamoDB's checks, then the definitions.

Two passes, as for the table's own key schema (tables.py): the service
model's constraints first (lengths, patterns, enums, nulls), reported all
at once with the other violations of the request (`add_shape_violations`);
then the rules between members (`index_definitions`), the first broken one
raised alone:
- at most 5 local and 20 global indexes, neither list empty, no two indexes
  of one table with the same name;
- a local index: the table has a sort key, the index's KeySchema is the
  table's HASH attribute then one RANGE attribute;
- a global index: HASH attributes (1 to 4) before RANGE ones (0 to 4),
  none twice (DynamoDB's multi-attribute keys, November 2025);
- every key attribute defined in AttributeDefinitions (with S, N or B,
  which the model's enum already checks), every definition used by some
  key schema (`check_definitions_used`);
- Projection: INCLUDE with NonKeyAttributes, ALL and KEYS_ONLY without,
  at most 100 NonKeyAttributes summed over the table's indexes;
- a global index's ProvisionedThroughput: required on a PROVISIONED table,
  refused on a PAY_PER_REQUEST one, within the table limits.

Messages are DynamoDB's where its wording is known; where it is not (the
multi-attribute ordering rules, INCLUDE without NonKeyAttributes) they are
ours and say what is wrong.
"""
from __future__ import annotations

from typing import Any

from triplica.engine.index_definitions import (GLOBAL, LOCAL, PROJECTION_INCLUDE, PROJECTION_TYPES,
                                               STATUS_CREATING, IndexInfo)
from triplica.engine.operations.validation import (TABLE_NAME_PATTERN, Violations, check_enum,
                                                   check_key_name_length, check_throughput_ceiling)
from triplica.errors import ValidationException
from triplica.model import java_text

INVALID = "One or more parameter values were invalid: "
LOCAL_INDEXES_MAX = 5
GLOBAL_INDEXES_MAX = 20
GLOBAL_HASH_KEYS_MAX = 4
GLOBAL_RANGE_KEYS_MAX = 4
NON_KEY_ATTRIBUTES_PER_INDEX_MAX = 20
NON_KEY_ATTRIBUTES_TOTAL_MAX = 100
INDEX_NAME_LENGTH_MIN = 3
INDEX_NAME_LENGTH_MAX = 255
KEY_TYPES = ("HASH", "RANGE")
MEMBERS = {GLOBAL: ("GlobalSecondaryIndexes", "globalSecondaryIndexes"),
           LOCAL: ("LocalSecondaryIndexes", "localSecondaryIndexes")}


def check_index_name(name: Any, path: str, violations: Violations) -> None:
    """IndexName: 3 to 255 characters of [a-zA-Z0-9_.-] (the service model)."""
    if name is None:
        violations.add(None, path, "Member must not be null")
        return
    if len(name) < INDEX_NAME_LENGTH_MIN:
        violations.add(name, path, "Member must have length greater than or equal to 3")
    if len(name) > INDEX_NAME_LENGTH_MAX:
        violations.add(name, path, "Member must have length less than or equal to 255")
    if not TABLE_NAME_PATTERN.fullmatch(name):
        violations.add(name, path, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")


# ----- pass 1: the model's constraints ------------------------------------

def add_shape_violations(request: dict[str, Any], violations: Violations) -> None:
    for kind, (member, path) in MEMBERS.items():
        indexes = request.get(member)
        for position, index in enumerate(indexes or (), 1):
            _index_shape(kind, index, f"{path}.{position}.member", violations)


def _index_shape(kind: str, index: dict[str, Any], path: str, violations: Violations) -> None:
    check_index_name(index.get("IndexName"), f"{path}.indexName", violations)
    schema = index.get("KeySchema")
    if schema is None:
        violations.add(None, f"{path}.keySchema", "Member must not be null")
    else:
        shown = java_text.structures("KeySchemaElement", schema)
        if not schema:
            violations.add(shown, f"{path}.keySchema",
                           "Member must have length greater than or equal to 1")
        if kind == LOCAL and len(schema) > 2:   # a local index keeps the table's key shape
            violations.add(shown, f"{path}.keySchema",
                           "Member must have length less than or equal to 2")
        for number, element in enumerate(schema, 1):
            element_path = f"{path}.keySchema.{number}.member"
            name = element.get("AttributeName")
            if name is None:
                violations.add(None, f"{element_path}.attributeName", "Member must not be null")
            else:
                check_key_name_length(name, f"{element_path}.attributeName", violations)
            if element.get("KeyType") is None:
                violations.add(None, f"{element_path}.keyType", "Member must not be null")
            check_enum(element.get("KeyType"), KEY_TYPES, f"{element_path}.keyType", violations)
    projection = index.get("Projection")
    if projection is None:
        violations.add(None, f"{path}.projection", "Member must not be null")
    else:
        _projection_shape(projection, f"{path}.projection", violations)
    throughput = index.get("ProvisionedThroughput") if kind == GLOBAL else None
    if throughput is not None:
        for member, field in (("ReadCapacityUnits", "readCapacityUnits"),
                              ("WriteCapacityUnits", "writeCapacityUnits")):
            value = throughput.get(member)
            if value is None:
                violations.add(None, f"{path}.provisionedThroughput.{field}",
                               "Member must not be null")
            elif value < 1:
                violations.add(value, f"{path}.provisionedThroughput.{field}",
                               "Member must have value greater than or equal to 1")


def _projection_shape(projection: dict[str, Any], path: str, violations: Violations) -> None:
    check_enum(projection.get("ProjectionType"), PROJECTION_TYPES, f"{path}.projectionType",
               violations)
    names = projection.get("NonKeyAttributes")
    if names is None:
        return
    if not names:
        violations.add(names, f"{path}.nonKeyAttributes",
                       "Member must have length greater than or equal to 1")
    if len(names) > NON_KEY_ATTRIBUTES_PER_INDEX_MAX:
        violations.add(names, f"{path}.nonKeyAttributes",
                       "Member must have length less than or equal to 20")
    for number, name in enumerate(names, 1):
        check_key_name_length(name, f"{path}.nonKeyAttributes.{number}.member", violations)


# ----- pass 2: the rules between members ----------------------------------

def index_definitions(request: dict[str, Any], types: dict[str, str], hash_key: str,
                      range_key: str | None, billing_mode: str
                      ) -> tuple[list[IndexInfo], list[IndexInfo]]:
    """(global indexes, local indexes) the request declares, checked (module docstring)."""
    local_specs = request.get("LocalSecondaryIndexes")
    global_specs = request.get("GlobalSecondaryIndexes")
    local: list[IndexInfo] = []
    if local_specs is not None:
        if not local_specs:
            raise ValidationException(INVALID + "List of LocalSecondaryIndexes is empty")
        if len(local_specs) > LOCAL_INDEXES_MAX:
            raise ValidationException(
                INVALID + f"Number of LocalSecondaryIndexes exceeds per-table limit of "
                f"{LOCAL_INDEXES_MAX}")
        if range_key is None:
            raise ValidationException(
                INVALID + "Table KeySchema does not have a range key, which is required when "
                "specifying a LocalSecondaryIndex")
        local = [_local_index(spec, types, hash_key) for spec in local_specs]
    global_: list[IndexInfo] = []
    if global_specs is not None:
        if not global_specs:
            raise ValidationException(INVALID + "List of GlobalSecondaryIndexes is empty")
        if len(global_specs) > GLOBAL_INDEXES_MAX:
            raise ValidationException(
                INVALID + "GlobalSecondaryIndex count exceeds the per-table limit of "
                f"{GLOBAL_INDEXES_MAX}")
        global_ = [_global_index(spec, types, billing_mode) for spec in global_specs]
    seen: set[str] = set()
    for index in local + global_:
        if index.name in seen:
            raise ValidationException(INVALID + f"Duplicate index name: {index.name}")
        seen.add(index.name)
    projected = sum(len(index.non_key_attributes) for index in local + global_)
    if projected > NON_KEY_ATTRIBUTES_TOTAL_MAX:
        raise ValidationException(
            INVALID + "Number of projected attributes in all indexes exceeds limit of "
            f"{NON_KEY_ATTRIBUTES_TOTAL_MAX}, number of projected attributes:{projected}")
    return global_, local


def _defined(names: list[str], types: dict[str, str]) -> None:
    missing = [name for name in names if name not in types]
    if missing:
        raise ValidationException(
            INVALID + "Some index key attributes are not defined in AttributeDefinitions. "
            f"Keys: [{', '.join(names)}], AttributeDefinitions: [{', '.join(types)}]")


def _local_index(spec: dict[str, Any], types: dict[str, str], hash_key: str) -> IndexInfo:
    name = spec["IndexName"]
    schema = spec["KeySchema"]
    if schema[0]["KeyType"] != "HASH":
        raise ValidationException("Invalid KeySchema: The first KeySchemaElement is not a HASH key type")
    if len(schema) < 2:
        raise ValidationException(INVALID + f"Index KeySchema does not have a range key for index: {name}")
    if schema[1]["KeyType"] != "RANGE":
        raise ValidationException("Invalid KeySchema: The second KeySchemaElement is not a RANGE key type")
    index_hash, index_range = schema[0]["AttributeName"], schema[1]["AttributeName"]
    if index_hash == index_range:
        raise ValidationException(
            "Both the Hash Key and the Range Key element in the KeySchema have the same name")
    _defined([index_hash, index_range], types)
    if index_hash != hash_key:
        raise ValidationException(
            INVALID + "Index KeySchema does not have the same leading hash key as table "
            f"KeySchema for index: {name}. index hash key: {index_hash}, table hash key: "
            f"{hash_key}")
    projection_type, non_key = _projection(spec["Projection"], name)
    return IndexInfo(name=name, kind=LOCAL, hash_keys=[(index_hash, types[index_hash])],
                     range_keys=[(index_range, types[index_range])],
                     projection_type=projection_type, non_key_attributes=non_key)


def _global_index(spec: dict[str, Any], types: dict[str, str], billing_mode: str) -> IndexInfo:
    name = spec["IndexName"]
    schema = spec["KeySchema"]
    if schema[0]["KeyType"] != "HASH":
        raise ValidationException("Invalid KeySchema: The first KeySchemaElement is not a HASH key type")
    kinds = [element["KeyType"] for element in schema]
    hashes = kinds.count("HASH")
    if kinds != ["HASH"] * hashes + ["RANGE"] * (len(kinds) - hashes):
        raise ValidationException(
            INVALID + "Every HASH KeySchemaElement must come before the RANGE ones in the "
            f"KeySchema of index: {name}")
    if hashes > GLOBAL_HASH_KEYS_MAX or len(kinds) - hashes > GLOBAL_RANGE_KEYS_MAX:
        raise ValidationException(
            INVALID + f"The KeySchema of a GlobalSecondaryIndex has at most "
            f"{GLOBAL_HASH_KEYS_MAX} HASH and {GLOBAL_RANGE_KEYS_MAX} RANGE key attributes; "
            f"index {name} has {hashes} HASH and {len(kinds) - hashes} RANGE")
    names = [element["AttributeName"] for element in schema]
    if len(set(names)) != len(names):
        if len(names) == 2:
            raise ValidationException(
                "Both the Hash Key and the Range Key element in the KeySchema have the same name")
        raise ValidationException(
            INVALID + f"Duplicate attribute name in the KeySchema of index: {name}")
    _defined(names, types)
    projection_type, non_key = _projection(spec["Projection"], name)
    read, write = _index_throughput(spec.get("ProvisionedThroughput"), name, billing_mode)
    return IndexInfo(name=name, kind=GLOBAL,
                     hash_keys=[(n, types[n]) for n in names[:hashes]],
                     range_keys=[(n, types[n]) for n in names[hashes:]],
                     projection_type=projection_type, non_key_attributes=non_key,
                     read_units=read, write_units=write,
                     # ACTIVE once its index table serves and its entries are complete
                     # (the control plane, docs/GLOBAL_INDEXES.md).
                     status=STATUS_CREATING, backfilling=False)


def _projection(projection: dict[str, Any], index_name: str) -> tuple[str, list[str]]:
    projection_type = projection.get("ProjectionType")
    names = projection.get("NonKeyAttributes")
    if projection_type is None:
        raise ValidationException(INVALID + "Unknown ProjectionType: null")
    if projection_type != PROJECTION_INCLUDE:
        if names is not None:
            raise ValidationException(
                INVALID + f"ProjectionType is {projection_type}, but NonKeyAttributes is specified")
        return projection_type, []
    if not names:
        raise ValidationException(
            INVALID + "NonKeyAttributes must be specified when ProjectionType is INCLUDE, "
            f"for index: {index_name}")
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise ValidationException(
            INVALID + f"Duplicate attribute name in NonKeyAttributes of index: {index_name}: "
            f"{duplicate}")
    return projection_type, list(names)


def _index_throughput(throughput: dict[str, Any] | None, name: str,
                      billing_mode: str) -> tuple[int, int]:
    if billing_mode == "PAY_PER_REQUEST":
        if throughput is not None:
            raise ValidationException(
                INVALID + f"ProvisionedThroughput should not be specified for index: {name} "
                "when BillingMode is PAY_PER_REQUEST")
        return 0, 0
    if throughput is None:
        raise ValidationException(INVALID + f"ProvisionedThroughput must be specified for index: {name}")
    read, write = throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]
    check_throughput_ceiling(read, write)
    return read, write


def check_definitions_used(types: dict[str, str], table_keys: list[str],
                           indexes: list[IndexInfo]) -> None:
    """Every AttributeDefinition names a key attribute of the table or of an index."""
    used = list(dict.fromkeys(table_keys + [n for index in indexes for n in index.key_names()]))
    if set(types) == set(used):
        return
    if not indexes:
        raise ValidationException(
            INVALID + "Number of attributes in KeySchema does not exactly match number of "
            "attributes defined in AttributeDefinitions")
    raise ValidationException(
        INVALID + f"Some AttributeDefinitions are not used. AttributeDefinitions: "
        f"[{', '.join(types)}], keys used: [{', '.join(used)}]")
