"""Control-plane operations: CreateTable, DescribeTable, ListTables, DeleteTable,
UpdateTable, tags, DescribeLimits and DescribeEndpoints.

Table status follows DynamoDB: CreateTable answers CREATING and the table is
ACTIVE by the next request (the single partition is opened before the answer);
DeleteTable answers DELETING and the table is gone once its partitions have
drained; UpdateTable answers UPDATING and the table is ACTIVE again at once.

A table's global secondary indexes each have an index table
(engine/index_tables.py): CreateTable makes them and DeleteTable deletes
them in the same operation (one control-plane operation, so one set of
catalogue changes). Users never see an index table: its name holds a
slash, which no table name a request may give does (DynamoDB's name
pattern, so naming one is a ValidationException like any invalid name),
and ListTables and the per-account table count skip it.
"""
from __future__ import annotations

import uuid
from typing import Any

from triplica.engine.index_definitions import DELETING
from triplica.engine.operations.index_updates import apply_index_updates, check_update_shapes
from triplica.engine.global_index_keys import is_index_table
from triplica.engine.operations.tag_rules import TAG_PATTERN, tag_text_allowed
from triplica.engine.operations.service import Service, register
from triplica.engine.operations.index_rules import (add_shape_violations, check_definitions_used,
                                                   index_definitions)
from triplica.engine.operations.validation import (THROUGHPUT_UNITS_MAX, Violations, check_enum,
                                                   check_key_name_length, check_table_name,
                                                   check_throughput_ceiling, expect_type,
                                                   table_name_only)
from triplica.engine.operations.table_descriptions import describe, describe_deleting
from triplica.engine.catalogue import ACCOUNT_ID, TableInfo
from triplica.engine.database import Table
from triplica.engine.global_index_keys import is_index_table
from triplica.engine.index_tables import index_table_info, index_table_names
from triplica.errors import (AccessDeniedException, LimitExceededException, ResourceInUseException,
                             ResourceNotFoundException, ValidationException)
from triplica.model import java_text, limits

KEY_TYPES = ("HASH", "RANGE")
ATTRIBUTE_TYPES = ("B", "N", "S")
BILLING_MODES = ("PROVISIONED", "PAY_PER_REQUEST")
TABLE_CLASSES = ("STANDARD", "STANDARD_INFREQUENT_ACCESS")
TAG_KEY_LENGTH_MAX = 128
TAG_VALUE_LENGTH_MAX = 256
MESSAGE_TOO_MANY_TAGS = ("One or more parameter values were invalid: The number of tags exceeds "
                         "the limit of 50")
MESSAGE_THROUGHPUT_ON_DEMAND = (
    "One or more parameter values were invalid: Neither ReadCapacityUnits nor "
    "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST")


def _check_throughput(throughput: Any, violations: Violations, path: str) -> None:
    expect_type(throughput, dict, "ProvisionedThroughput")
    for member, field in (("ReadCapacityUnits", "readCapacityUnits"),
                          ("WriteCapacityUnits", "writeCapacityUnits")):
        value = throughput.get(member)
        expect_type(value, int, member)
        if value is None:
            violations.add(None, f"{path}.{field}", "Member must not be null")
        elif value < 1:
            violations.add(value, f"{path}.{field}",
                           "Member must have value greater than or equal to 1")


def _validate_key_schema(request: dict[str, Any], violations: Violations) -> None:
    schema = expect_type(request.get("KeySchema"), list, "KeySchema")
    definitions = expect_type(request.get("AttributeDefinitions"), list, "AttributeDefinitions")
    if schema is None:
        violations.add(None, "keySchema", "Member must not be null")
    else:
        for position, element in enumerate(schema, 1):
            expect_type(element, dict, "KeySchemaElement")
            name = element.get("AttributeName")
            if name is None:
                violations.add(None, f"keySchema.{position}.member.attributeName",
                               "Member must not be null")
            else:
                check_key_name_length(name, f"keySchema.{position}.member.attributeName",
                                       violations)
            if element.get("KeyType") is None:
                violations.add(None, f"keySchema.{position}.member.keyType",
                               "Member must not be null")
            check_enum(element.get("KeyType"), KEY_TYPES,
                       f"keySchema.{position}.member.keyType", violations)
        shown = java_text.structures("KeySchemaElement", schema)
        if not schema:
            violations.add(shown, "keySchema", "Member must have length greater than or equal to 1")
        if len(schema) > 2:
            violations.add(shown, "keySchema", "Member must have length less than or equal to 2")
    if definitions is None:
        violations.add(None, "attributeDefinitions", "Member must not be null")
    else:
        for position, definition in enumerate(definitions, 1):
            expect_type(definition, dict, "AttributeDefinition")
            name = definition.get("AttributeName")
            if name is None:
                violations.add(None, f"attributeDefinitions.{position}.member.attributeName",
                               "Member must not be null")
            else:
                check_key_name_length(name, f"attributeDefinitions.{position}.member.attributeName",
                                       violations)
            if definition.get("AttributeType") is None:
                violations.add(None, f"attributeDefinitions.{position}.member.attributeType",
                               "Member must not be null")
            check_enum(definition.get("AttributeType"), ATTRIBUTE_TYPES,
                       f"attributeDefinitions.{position}.member.attributeType", violations)


def _attribute_types(request: dict[str, Any]) -> dict[str, str]:
    """AttributeDefinitions as name -> type, each name once."""
    types: dict[str, str] = {}
    for definition in request["AttributeDefinitions"]:
        name = definition["AttributeName"]
        if name in types:
            raise ValidationException(
                "One or more parameter values were invalid: Duplicate AttributeName found in "
                "AttributeDefinitions: " + name)
        types[name] = definition["AttributeType"]
    return types


def _key_attributes(request: dict[str, Any],
                    types: dict[str, str]) -> tuple[str, str, str | None, str | None]:
    """Semantic key-schema rules, checked after the shape constraints."""
    schema = request["KeySchema"]
    if schema[0]["KeyType"] != "HASH":
        raise ValidationException("Invalid KeySchema: The first KeySchemaElement is not a HASH key type")
    if len(schema) == 2:
        if schema[1]["KeyType"] != "RANGE":
            raise ValidationException(
                "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type")
        if schema[0]["AttributeName"] == schema[1]["AttributeName"]:
            if len(types) < 2:   # the range element finds no definition of its own
                raise ValidationException(
                    "Invalid KeySchema: Some index key attribute have no definition")
            raise ValidationException(
                "Both the Hash Key and the Range Key element in the KeySchema have the same name")
    key_names = [element["AttributeName"] for element in schema]
    missing = [name for name in key_names if name not in types]
    if missing:
        raise ValidationException(
            "One or more parameter values were invalid: Some index key attributes are not "
            f"defined in AttributeDefinitions. Keys: [{', '.join(key_names)}], "
            f"AttributeDefinitions: [{', '.join(types)}]")
    hash_key = key_names[0]
    range_key = key_names[1] if len(key_names) == 2 else None
    return hash_key, types[hash_key], range_key, types[range_key] if range_key else None


def _billing(request: dict[str, Any]) -> tuple[str, int, int]:
    mode = request.get("BillingMode") or "PROVISIONED"
    throughput = request.get("ProvisionedThroughput")
    if mode == "PAY_PER_REQUEST":
        if throughput is not None:
            raise ValidationException(MESSAGE_THROUGHPUT_ON_DEMAND)
        return mode, 0, 0
    if throughput is None:
        raise ValidationException(
            "One or more parameter values were invalid: ReadCapacityUnits and "
            "WriteCapacityUnits must both be specified when BillingMode is PROVISIONED")
    read, write = throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]
    check_throughput_ceiling(read, write)
    return mode, read, write


def _validate_tags(tags: Any, violations: Violations, path: str = "tags") -> dict[str, str]:
    expect_type(tags, list, "Tags")
    result: dict[str, str] = {}
    for position, tag in enumerate(tags or [], 1):
        expect_type(tag, dict, "Tag")
        key, value = tag.get("Key"), tag.get("Value")
        if key is None:
            violations.add(None, f"{path}.{position}.member.key", "Member must not be null")
        elif not key:
            violations.add(key, f"{path}.{position}.member.key",
                           "Member must have length greater than or equal to 1")
        elif len(key) > TAG_KEY_LENGTH_MAX:
            violations.add(key, f"{path}.{position}.member.key",
                           "Member must have length less than or equal to 128")
        if key and not tag_text_allowed(key):
            violations.add(key, f"{path}.{position}.member.key",
                           f"Member must satisfy regular expression pattern: {TAG_PATTERN}")
        if value is None:
            violations.add(None, f"{path}.{position}.member.value", "Member must not be null")
        elif len(value) > TAG_VALUE_LENGTH_MAX:
            violations.add(value, f"{path}.{position}.member.value",
                           "Member must have length less than or equal to 256")
        if value and not tag_text_allowed(value):
            violations.add(value, f"{path}.{position}.member.value",
                           f"Member must satisfy regular expression pattern: {TAG_PATTERN}")
        if key is not None and value is not None:
            result[key] = value
    return result


@register("CreateTable")
def create_table(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    violations = Violations()
    name = request.get("TableName")
    if name is None:
        raise ValidationException(
            "The parameter 'TableName' is required but was not present in the request")
    check_table_name(name, violations)
    _validate_key_schema(request, violations)
    check_enum(request.get("BillingMode"), BILLING_MODES, "billingMode", violations)
    check_enum(request.get("TableClass"), TABLE_CLASSES, "tableClass", violations)
    if request.get("ProvisionedThroughput") is not None:
        _check_throughput(request["ProvisionedThroughput"], violations, "provisionedThroughput")
    tags = _validate_tags(request.get("Tags"), violations)
    add_shape_violations(request, violations)
    violations.raise_if_any()
    if len(request.get("Tags") or ()) > limits.TAGS_PER_RESOURCE_MAX:
        raise ValidationException(MESSAGE_TOO_MANY_TAGS)
    types = _attribute_types(request)
    hash_key, hash_type, range_key, range_type = _key_attributes(request, types)
    table_keys = [hash_key] + ([range_key] if range_key else [])
    declares_indexes = any(request.get(member) is not None
                           for member in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"))
    if not declares_indexes:
        check_definitions_used(types, table_keys, [])
    mode, read, write = _billing(request)
    global_indexes, local_indexes = index_definitions(request, types, hash_key, range_key, mode)
    check_definitions_used(types, table_keys, local_indexes + global_indexes)
    stream = request.get("StreamSpecification")
    if isinstance(stream, dict) and stream.get("StreamEnabled"):
        raise ValidationException(
            "One or more parameter values were invalid: DynamoDB Streams are not supported by "
            "this triplica release")
    if name in service.db.tables:
        raise ResourceInUseException(f"Table already exists: {name}")
    if len(_user_tables(service)) >= limits.TABLES_PER_ACCOUNT_MAX:
        raise LimitExceededException(
            f"Subscriber limit exceeded: There is a limit of {limits.TABLES_PER_ACCOUNT_MAX} "
            "tables per account")
    now = service.now()
    info = TableInfo(
        name=name, table_id=str(uuid.uuid4()), region=service.region_of_request(),
        hash_key=hash_key, hash_type=hash_type, range_key=range_key, range_type=range_type,
        attribute_definitions=[{"AttributeName": d["AttributeName"],
                                "AttributeType": d["AttributeType"]}
                               for d in request["AttributeDefinitions"]],
        billing_mode=mode, read_units=read, write_units=write, creation_time=now,
        table_class=request.get("TableClass") or "STANDARD",
        deletion_protection=bool(request.get("DeletionProtectionEnabled")),
        tags=tags, pay_per_request_since=now if mode == "PAY_PER_REQUEST" else None,
        global_indexes=global_indexes, local_indexes=local_indexes)
    table = service.db.create_table(info)
    for index in info.global_indexes:
        service.db.create_table(index_table_info(info, index))
    return {"TableDescription": describe(table, service.db.tables, status="CREATING")}


def _user_tables(service: Service) -> list[str]:
    """The tables a user sees (not the index tables), sorted by name."""
    return sorted(name for name in service.db.tables if not is_index_table(name))


@register("DescribeTable")
def describe_table(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    name = table_name_only(request)
    table = service.db.tables.get(name)
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    return {"Table": describe(table, service.db.tables)}


@register("DeleteTable")
async def delete_table(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    name = table_name_only(request)
    table = service.db.tables.get(name)
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    if table.info.deletion_protection:
        raise ValidationException(
            "Resource cannot be deleted as it is currently protected against deletion. "
            "Disable deletion protection first.")
    description = describe_deleting(table)
    for index_table in index_table_names(table.info):
        if index_table in service.db.tables:
            await service.db.delete_table(index_table)
    await service.db.delete_table(name)
    return {"TableDescription": description}


@register("ListTables")
def list_tables(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    violations = Violations()
    start = expect_type(request.get("ExclusiveStartTableName"), str, "ExclusiveStartTableName")
    if start is not None:
        check_table_name(start, violations, "exclusiveStartTableName")
    limit = expect_type(request.get("Limit"), int, "Limit")
    if limit is not None and limit < 1:
        violations.add(limit, "limit", "Member must have value greater than or equal to 1")
    if limit is not None and limit > limits.LIST_TABLES_LIMIT_MAX:
        violations.add(limit, "limit", "Member must have value less than or equal to 100")
    violations.raise_if_any()
    names = _user_tables(service)
    if start is not None:
        names = [n for n in names if n > start]
    page_size = limit or limits.LIST_TABLES_LIMIT_MAX
    result: dict[str, Any] = {"TableNames": names[:page_size]}
    if len(names) > page_size:
        result["LastEvaluatedTableName"] = names[page_size - 1]
    return result


@register("UpdateTable")
def update_table(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    violations = Violations()
    name = request.get("TableName")
    check_table_name(name, violations)
    check_enum(request.get("BillingMode"), BILLING_MODES, "billingMode", violations)
    check_enum(request.get("TableClass"), TABLE_CLASSES, "tableClass", violations)
    throughput = request.get("ProvisionedThroughput")
    if throughput is not None:
        _check_throughput(throughput, violations, "provisionedThroughput")
    index_updates = request.get("GlobalSecondaryIndexUpdates")
    if index_updates:
        check_update_shapes(index_updates, violations)
    violations.raise_if_any()
    table = service.db.tables.get(name)
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    info = table.info
    mode = request.get("BillingMode")
    protection = request.get("DeletionProtectionEnabled")
    table_class = request.get("TableClass")
    if request.get("ReplicaUpdates"):
        raise ValidationException(
            "One or more parameter values were invalid: ReplicaUpdates (global tables) are not "
            "supported by this triplica release")
    if mode is None and throughput is None and protection is None and table_class is None \
            and not index_updates and request.get("StreamSpecification") is None \
            and request.get("SSESpecification") is None:
        raise ValidationException(
            "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, "
            "GlobalSecondaryIndexUpdates or SSESpecification or ReplicaUpdates is required")
    if index_updates and info.status != "ACTIVE":
        raise ResourceInUseException(
            f"Attempt to change a resource which is still in use: Table is being "
            f"{'created' if info.status == 'CREATING' else 'updated'}: {name}")
    _check_changes_something(info, request)
    new_mode = mode or info.billing_mode
    if index_updates:
        for index in apply_index_updates(info, request, new_mode):
            service.db.create_table(index_table_info(info, index))
    now = service.now()
    if new_mode == "PAY_PER_REQUEST":
        if throughput is not None:
            raise ValidationException(MESSAGE_THROUGHPUT_ON_DEMAND)
        if info.billing_mode != "PAY_PER_REQUEST":
            info.pay_per_request_since = now
        info.read_units = info.write_units = 0
        for index in info.global_indexes:   # on demand: no index throughput either
            index.read_units = index.write_units = 0
    else:
        if throughput is None and info.billing_mode == "PAY_PER_REQUEST":
            raise ValidationException(
                "One or more parameter values were invalid: ProvisionedThroughput must be "
                "specified when BillingMode is PROVISIONED")
        if info.billing_mode == "PAY_PER_REQUEST":
            # Each global index needs its throughput, given in GlobalSecondaryIndexUpdates.
            for index in info.global_indexes:
                if index.status != DELETING and index.read_units < 1:
                    raise ValidationException(
                        "One or more parameter values were invalid: ProvisionedThroughput "
                        f"must be specified for index: {index.name}")
        if throughput is not None:
            read, write = throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]
            check_throughput_ceiling(read, write)
            if read > info.read_units or write > info.write_units:
                info.throughput_increased_at = now
            if read < info.read_units or write < info.write_units:
                info.throughput_decreased_at = now
            info.read_units, info.write_units = read, write
    info.billing_mode = new_mode
    if protection is not None:
        info.deletion_protection = bool(protection)
    if table_class is not None:
        info.table_class = table_class
    service.db.save_catalogue()
    return {"TableDescription": describe(table, service.db.tables, status="UPDATING")}


def _check_changes_something(info: TableInfo, request: dict[str, Any]) -> None:
    """A provisioned table asked for the throughput (and mode) it has, with every
    other setting given equal to the current one too: DynamoDB refuses it."""
    if info.billing_mode != "PROVISIONED" or request.get("BillingMode") not in (None, "PROVISIONED"):
        return
    throughput = request.get("ProvisionedThroughput")
    if throughput is None and request.get("BillingMode") is None:
        return   # no throughput asked for: other settings only
    read, write = info.read_units, info.write_units
    if throughput is not None:
        read, write = throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]
    protection = request.get("DeletionProtectionEnabled")
    table_class = request.get("TableClass")
    if (read, write) != (info.read_units, info.write_units) \
            or (protection is not None and bool(protection) != info.deletion_protection) \
            or (table_class is not None and table_class != info.table_class) \
            or request.get("StreamSpecification") is not None \
            or request.get("SSESpecification") is not None:
        return
    raise ValidationException(
        "The provisioned throughput for the table will not change. The requested "
        "value equals the current value. Current ReadCapacityUnits provisioned for "
        f"the table: {info.read_units}. Requested ReadCapacityUnits: {read}. Current "
        "WriteCapacityUnits provisioned for the table: "
        f"{info.write_units}. Requested WriteCapacityUnits: {write}. Refer to the "
        "Amazon DynamoDB Developer Guide for current limits and how to request "
        "higher limits.")


def _table_for_arn(service: Service, arn: Any, operation: str) -> Table:
    violations = Violations()
    if arn is None:
        violations.add(None, "resourceArn", "Member must not be null")
    violations.raise_if_any()
    expect_type(arn, str, "ResourceArn")
    if not arn.startswith("arn:"):
        raise ValidationException("ARNs must start with 'arn:'")
    prefix, _, name = arn.partition(":table/")
    parts = prefix.split(":")
    if len(parts) != 5 or parts[0] != "arn" or parts[2] != "dynamodb" or not name:
        raise ValidationException(f"Invalid TableArn: Invalid ResourceArn provided as input {arn}")
    if parts[4] != ACCOUNT_ID:   # a table of another account: not ours to show or change
        raise AccessDeniedException(
            f"User: anonymous is not authorized to perform: dynamodb:{operation} on resource: "
            f"{arn}")
    # An index table is no resource of the user's (the module docstring).
    table = None if is_index_table(name) else service.db.tables.get(name)
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: ResourcArn: {arn} not found")
    return table


@register("TagResource")
def tag_resource(service: Service, request: dict[str, Any]) -> bytes:
    table = _table_for_arn(service, request.get("ResourceArn"), "TagResource")
    violations = Violations()
    if request.get("Tags") is None:
        violations.add(None, "tags", "Member must not be null")
    tags = _validate_tags(request.get("Tags"), violations)
    violations.raise_if_any()
    if not tags:
        raise ValidationException("Atleast one Tag needs to be provided as Input.")
    merged = dict(table.info.tags)
    merged.update(tags)
    if len(merged) > limits.TAGS_PER_RESOURCE_MAX:
        raise ValidationException(MESSAGE_TOO_MANY_TAGS)
    table.info.tags = merged
    service.db.save_catalogue()
    return b""   # DynamoDB answers TagResource and UntagResource with an empty body


@register("UntagResource")
def untag_resource(service: Service, request: dict[str, Any]) -> bytes:
    table = _table_for_arn(service, request.get("ResourceArn"), "UntagResource")
    keys = expect_type(request.get("TagKeys"), list, "TagKeys")
    if keys is None:
        violations = Violations()
        violations.add(None, "tagKeys", "Member must not be null")
        violations.raise_if_any()
    for key in keys:
        table.info.tags.pop(key, None)
    service.db.save_catalogue()
    return b""


@register("ListTagsOfResource")
def list_tags_of_resource(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    table = _table_for_arn(service, request.get("ResourceArn"), "ListTagsOfResource")
    tags = [{"Key": k, "Value": v} for k, v in sorted(table.info.tags.items())]
    return {"Tags": tags}


@register("DescribeLimits")
def describe_limits(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    return {"AccountMaxReadCapacityUnits": 80000, "AccountMaxWriteCapacityUnits": 80000,
            "TableMaxReadCapacityUnits": THROUGHPUT_UNITS_MAX,
            "TableMaxWriteCapacityUnits": THROUGHPUT_UNITS_MAX}


@register("DescribeEndpoints")
def describe_endpoints(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    return {"Endpoints": [{"Address": service.host_of_request(), "CachePeriodInMinutes": 1440}]}
