"""UpdateTable's GlobalSecondaryIndexUpdates: Create, Delete and Update of a global index.

DynamoDB's rules, checked before anything changes:
- each update holds exactly one of Create, Update, Delete;
- at most one index is created or deleted per call, and not while another
  index of the table is still being created or deleted (LimitExceededException,
  "Subscriber limit exceeded: Only 1 online index can be created or deleted
  simultaneously per table");
- Create: the index rules of CreateTable (index_rules.py) with the table's
  AttributeDefinitions merged with the request's (a redefined attribute
  must keep its type), a name no index of the table has, at most 20 global
  indexes; ProvisionedThroughput required on a PROVISIONED table and refused
  on a PAY_PER_REQUEST one;
- Delete and Update of an index the table does not have:
  ResourceNotFoundException; Update on a PAY_PER_REQUEST table, or of an
  index not ACTIVE: ValidationException / ResourceInUseException.

What happens next is the control plane's (docs/GLOBAL_INDEXES.md): a created
index is CREATING with Backfilling true and gets its index table; a deleted
one is DELETING until every base partition dropped it.
"""
from __future__ import annotations

from typing import Any

from triplica.engine.catalogue import TableInfo
from triplica.engine.index_definitions import ACTIVE, CREATING, DELETING, IndexInfo
from triplica.engine.operations.index_rules import (GLOBAL_INDEXES_MAX, INVALID,
                                                    add_shape_violations, check_index_name,
                                                    index_definitions)
from triplica.engine.operations.validation import Violations, check_throughput_ceiling
from triplica.errors import (LimitExceededException, ResourceInUseException,
                             ResourceNotFoundException, ValidationException)

ACTIONS = ("Create", "Update", "Delete")
ONE_AT_A_TIME = ("Subscriber limit exceeded: Only 1 online index can be created or deleted "
                 "simultaneously per table")


def check_update_shapes(updates: list[dict[str, Any]], violations: Violations) -> None:
    """The model's constraints of each update's members (pass 1, with the request's)."""
    creates = [u["Create"] for u in updates if isinstance(u.get("Create"), dict)]
    add_shape_violations({"GlobalSecondaryIndexes": creates}, violations)
    for position, update in enumerate(updates, 1):
        for action in ("Update", "Delete"):
            body = update.get(action)
            if isinstance(body, dict):
                check_index_name(body.get("IndexName"),
                                 f"globalSecondaryIndexUpdates.{position}.member."
                                 f"{action.lower()}.indexName", violations)


def apply_index_updates(info: TableInfo, request: dict[str, Any],
                        billing_mode: str) -> list[IndexInfo]:
    """Change `info`'s global indexes as the request asks (module docstring), for a
    table whose billing mode is (becoming) `billing_mode`; the indexes created (the
    caller gives each its index table)."""
    updates = request["GlobalSecondaryIndexUpdates"]
    for update in updates:
        given = [action for action in ACTIONS if update.get(action) is not None]
        if len(given) != 1:
            raise ValidationException(
                INVALID + "One of GlobalSecondaryIndexUpdate.Create, "
                "GlobalSecondaryIndexUpdate.Update or GlobalSecondaryIndexUpdate.Delete must "
                "be specified")
    changing = [u for u in updates if u.get("Create") is not None or u.get("Delete") is not None]
    in_progress = any(i.status != ACTIVE for i in info.global_indexes)
    if len(changing) > 1 or (changing and in_progress):
        raise LimitExceededException(ONE_AT_A_TIME)
    names = [next(u[a] for a in ACTIONS if u.get(a) is not None)["IndexName"] for u in updates]
    if len(set(names)) != len(names):
        raise ValidationException(
            INVALID + "Only one global secondary index update per index is allowed "
            f"simultaneously. Index: {next(n for n in names if names.count(n) > 1)}")
    created: list[IndexInfo] = []
    for update in updates:
        if update.get("Create") is not None:
            created.append(_create(info, update["Create"], request, billing_mode))
        elif update.get("Delete") is not None:
            _delete(info, update["Delete"]["IndexName"])
        else:
            _update(info, update["Update"], billing_mode)
    return created


def _existing(info: TableInfo, name: str) -> IndexInfo:
    index = next((i for i in info.global_indexes if i.name == name), None)
    if index is None:
        raise ResourceNotFoundException(
            f"Requested resource not found: Requested index {name} not found for table "
            f"{info.name}")
    return index


def _merged_types(info: TableInfo, request: dict[str, Any]) -> dict[str, str]:
    types = {d["AttributeName"]: d["AttributeType"] for d in info.attribute_definitions}
    for definition in request.get("AttributeDefinitions") or ():
        name, kind = definition.get("AttributeName"), definition.get("AttributeType")
        if name is None or kind not in ("S", "N", "B"):
            raise ValidationException(
                INVALID + "AttributeDefinitions need an AttributeName and an AttributeType "
                "of S, N or B")
        if types.get(name, kind) != kind:
            raise ValidationException(
                INVALID + f"Cannot change the type of existing attribute {name} from "
                f"{types[name]} to {kind}")
        types[name] = kind
    return types


def _create(info: TableInfo, spec: dict[str, Any], request: dict[str, Any],
            billing_mode: str) -> IndexInfo:
    name = spec["IndexName"]
    if info.index(name) is not None:
        raise ValidationException(INVALID + f"Attempting to create an index which already "
                                  f"exists: {name}")
    if len(info.global_indexes) >= GLOBAL_INDEXES_MAX:
        raise LimitExceededException(
            f"Subscriber limit exceeded: GlobalSecondaryIndex count exceeds the per-table "
            f"limit of {GLOBAL_INDEXES_MAX}")
    types = _merged_types(info, request)
    [index], _ = index_definitions({"GlobalSecondaryIndexes": [spec]}, types, info.hash_key,
                                   info.range_key, billing_mode)
    projected = sum(len(i.non_key_attributes) for i in info.indexes()) + \
        len(index.non_key_attributes)
    if projected > 100:
        raise ValidationException(
            INVALID + "Number of projected attributes in all indexes exceeds limit of 100, "
            f"number of projected attributes:{projected}")
    index.status, index.backfilling = CREATING, True
    info.global_indexes.append(index)
    used = {n for i in info.indexes() for n in i.key_names()} | \
        {info.hash_key} | ({info.range_key} if info.range_key else set())
    info.attribute_definitions = [{"AttributeName": n, "AttributeType": t}
                                  for n, t in types.items() if n in used]
    return index


def _delete(info: TableInfo, name: str) -> None:
    index = _existing(info, name)
    if index.status != ACTIVE:
        raise ResourceInUseException(
            f"Attempt to change a resource which is still in use: Index {name} is being "
            f"{'created' if index.status == CREATING else 'deleted'}")
    index.status = DELETING


def _update(info: TableInfo, spec: dict[str, Any], billing_mode: str) -> None:
    index = _existing(info, spec["IndexName"])
    if billing_mode == "PAY_PER_REQUEST":
        raise ValidationException(
            INVALID + "ProvisionedThroughput cannot be updated for an index of a table whose "
            "BillingMode is PAY_PER_REQUEST")
    throughput = spec.get("ProvisionedThroughput")
    if throughput is None:
        raise ValidationException(
            INVALID + f"ProvisionedThroughput must be specified for index: {index.name}")
    read, write = throughput.get("ReadCapacityUnits"), throughput.get("WriteCapacityUnits")
    if not isinstance(read, int) or not isinstance(write, int) or read < 1 or write < 1:
        raise ValidationException(
            INVALID + "ReadCapacityUnits and WriteCapacityUnits must both be at least 1 for "
            f"index: {index.name}")
    check_throughput_ceiling(read, write)
    index.read_units, index.write_units = read, write
