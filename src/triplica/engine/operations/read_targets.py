"""What a Query or Scan reads: the table, or one of its secondary indexes (IndexName).

`read_target` resolves IndexName with DynamoDB's errors: an unknown index
is "The table does not have the specified index"; on a global index
ConsistentRead is refused, and so is Select ALL_ATTRIBUTES unless it
projects ALL. A local secondary index is read from its partition's own LMDB
database (engine/local_indexes.py): key conditions on the table's partition
key and the index's sort key, entries in index sort key order (then table
sort key), strongly consistent when asked (the index changes in the same
transaction as its items). A global secondary index is read from its index
table's partitions (engine/index_tables.py; `source`), whose items are its
entries under engine/global_index_keys.py's keys, eventually consistent:
they follow the table by propagation. Its key may have several HASH and
RANGE attributes (`hash_keys`, `range_keys`).

`ReadPlan` is what Select, ProjectionExpression and FilterExpression ask of
an index read: which attributes come back (the entry's projected ones,
specific ones, or the whole item) and whether the items must be fetched
from the table because something asked for is not projected (a local
index only: the fetch reads the item in the same LMDB transaction as the
entry, and each fetched item is charged as a read of the table).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from typing import Mapping

from triplica.engine.database import Table
from triplica.engine.global_index_keys import GlobalIndex, index_table_name
from triplica.engine.index_definitions import IndexInfo
from triplica.engine.local_indexes import index_key
from triplica.engine.operations.item_access import key_from_request
from triplica.engine.operations.key_ranges import AFTER_EXACT, PARTITION_END
from triplica.errors import ValidationException
from triplica.model.keys import encode_storage_key, validate_key_value
from triplica.model.values import validate_value

ALL_ATTRIBUTES = "ALL_ATTRIBUTES"
ALL_PROJECTED = "ALL_PROJECTED_ATTRIBUTES"
SPECIFIC = "SPECIFIC_ATTRIBUTES"
COUNT = "COUNT"
# DynamoDB's answer for an index whose entries are still being built from the table.
BACKFILLING = "Cannot read from backfilling global secondary index: {name}"
# A table of an earlier release whose global index has no index table: nothing to read.
NO_INDEX_TABLE = ("The global secondary index {name} has no entries to read: it was created "
                  "by a triplica release that did not keep them")


@dataclass(frozen=True)
class ReadTarget:
    """The key space a read walks: the table's, a local index's or a global index's."""

    table: Table
    index: IndexInfo | None
    hash_key: str
    hash_type: str
    range_key: str | None
    range_type: str | None
    source: Table            # whose partitions hold it: the table, or the index table
    hash_keys: tuple[tuple[str, str], ...]    # every HASH attribute (several: a global index)
    range_keys: tuple[tuple[str, str], ...]   # every RANGE attribute

    @property
    def index_name(self) -> str | None:
        return None if self.index is None else self.index.name

    @property
    def is_global(self) -> bool:
        return self.index is not None and self.index.is_global

    def index_key_names(self) -> list[str]:
        """The key attributes of what is read (a Query filter may not use them)."""
        return [name for name, _ in self.hash_keys + self.range_keys]

    @property
    def after_sort_value(self) -> bytes:
        """What follows an encoded sort key value to bound every key having it: the table
        key ends there; an index key goes on with the table's sort key."""
        return AFTER_EXACT if self.index is None else PARTITION_END

    def key_names(self) -> list[str]:
        """The attributes of a LastEvaluatedKey: the table's key, then the index's."""
        info = self.table.info
        names = [info.hash_key] + ([info.range_key] if info.range_key else [])
        if self.index is not None:
            names += [name for name in self.index_key_names() if name not in names]
        return names

    def key_of(self, item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.key_names()}

    def start_key(self, request: dict[str, Any]) -> bytes | None:
        """ExclusiveStartKey as a key of this target's key space, or None."""
        start = request.get("ExclusiveStartKey")
        if start is None:
            return None
        try:
            if self.index is None:
                pk, sk = key_from_request(self.table, start)
                return encode_storage_key(pk, sk)
            if self.is_global:
                return self._global_start(start)
            return self._index_start(start)
        except ValidationException as error:
            raise ValidationException(f"The provided starting key is invalid: {error.message}")

    def _index_start(self, start: dict[str, Any]) -> bytes:
        """An index's start key: the table's key attributes and the index's, no others."""
        info = self.table.info
        assert self.range_key is not None and info.range_key is not None
        if set(start) != set(self.key_names()):
            raise ValidationException("The provided key element does not match the schema")
        pk, sk = key_from_request(self.table, {info.hash_key: start[info.hash_key],
                                               info.range_key: start[info.range_key]})
        assert sk is not None
        value = validate_value(start[self.range_key])
        if self.range_type not in value:
            raise ValidationException("The provided key element does not match the schema")
        validate_key_value(self.range_key, value, False)
        return index_key(pk, value, sk)

    def _global_start(self, start: dict[str, Any]) -> bytes:
        """A global index's start key: the table's key attributes and every key attribute
        of the index, no others; as the index key an item with them has."""
        info = self.table.info
        assert self.index is not None
        if set(start) != set(self.key_names()):
            raise ValidationException("The provided key element does not match the schema")
        table_keys = [info.hash_key] + ([info.range_key] if info.range_key else [])
        pk, sk = key_from_request(self.table, {name: start[name] for name in table_keys})
        values = {}
        for position, (name, type_name) in enumerate(self.hash_keys + self.range_keys):
            value = validate_value(start[name])
            if type_name not in value:
                raise ValidationException("The provided key element does not match the schema")
            validate_key_value(name, value, position < len(self.hash_keys))
            values[name] = value
        key = GlobalIndex.of(self.index, table_keys).key_of(values, encode_storage_key(pk, sk))
        assert key is not None
        return key


def read_target(table: Table, request: dict[str, Any],
                tables: Mapping[str, Table] | None = None) -> ReadTarget:
    """The table, or the index IndexName names (module docstring); `tables`: the node's
    tables, among which a global index's index table."""
    info = table.info
    name = request.get("IndexName")
    if name is None:
        keys = ((info.hash_key, info.hash_type),) + \
            (((info.range_key, str(info.range_type)),) if info.range_key else ())
        return ReadTarget(table, None, info.hash_key, info.hash_type, info.range_key,
                          info.range_type, table, keys[:1], keys[1:])
    index = info.index(name)
    if index is None:
        raise ValidationException(f"The table does not have the specified index: {name}")
    if index.is_global:
        return _global_target(table, index, request, tables or {})
    (hash_key, hash_type), (range_key, range_type) = index.hash_keys[0], index.range_keys[0]
    return ReadTarget(table, index, hash_key, hash_type, range_key, range_type, table,
                      tuple(index.hash_keys), tuple(index.range_keys))


def _global_target(table: Table, index: IndexInfo, request: dict[str, Any],
                   tables: Mapping[str, Table]) -> ReadTarget:
    name = index.name
    if request.get("ConsistentRead") is True:
        raise ValidationException(
            "Consistent reads are not supported on global secondary indexes")
    if request.get("Select") == ALL_ATTRIBUTES and not index.projects_all():
        raise ValidationException(
            "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not "
            f"supported for global secondary index {name} because its projection type is "
            "not ALL")
    if index.backfilling:
        raise ValidationException(BACKFILLING.format(name=name))
    source = tables.get(index_table_name(table.info.name, name))
    if source is None:
        raise ValidationException(NO_INDEX_TABLE.format(name=name))
    hash_key, hash_type = index.hash_keys[0]
    range_key, range_type = index.range_keys[0] if index.range_keys else (None, None)
    return ReadTarget(table, index, hash_key, hash_type, range_key, range_type, source,
                      tuple(index.hash_keys), tuple(index.range_keys))


@dataclass(frozen=True)
class ReadPlan:
    """What a read returns of each entry (module docstring)."""

    count_only: bool
    projection: Any          # applied to what comes back, or None
    whole_item: bool         # the table's item comes back (else the index entry)
    fetch: bool              # items are read from the table beside the entries


def read_plan(target: ReadTarget, request: dict[str, Any], projection: Any,
              filter_condition: Any) -> ReadPlan:
    """Select against the projection (DynamoDB's rules), and what the read needs."""
    select = request.get("Select")
    if select == ALL_PROJECTED and target.index is None:
        raise ValidationException(
            "One or more parameter values were invalid: Select type ALL_PROJECTED_ATTRIBUTES "
            "is supported only when using an IndexName")
    if select == SPECIFIC and projection is None:
        raise ValidationException(
            "One or more parameter values were invalid: Select type SPECIFIC_ATTRIBUTES "
            "requires AttributesToGet or ProjectionExpression")
    if select in (ALL_ATTRIBUTES, COUNT, ALL_PROJECTED) and projection is not None:
        which = "ProjectionExpression" if request.get("ProjectionExpression") else "AttributesToGet"
        raise ValidationException(f"Cannot specify the {which} when choosing to get {select}")
    count_only = select == COUNT
    if target.index is None:
        return ReadPlan(count_only, projection, True, False)
    projected = target.index.projected_names(target.key_names())
    # ALL: every attribute is in the entry. A global index never reads its table (DynamoDB:
    # only projected attributes can come back; the others are absent from the answer).
    if projected is None or target.is_global:
        return ReadPlan(count_only, projection, False, False)
    if select is None:
        select = SPECIFIC if projection is not None else ALL_PROJECTED
    wanted: set[str] = set()
    if select == SPECIFIC:
        wanted |= projection.top_level_names()
    if filter_condition is not None:
        wanted |= filter_condition.top_level_names()
    fetch = select == ALL_ATTRIBUTES or not wanted <= projected
    return ReadPlan(count_only, projection, select in (ALL_ATTRIBUTES, SPECIFIC) and fetch, fetch)


def check_filter_keys(target: ReadTarget, request: dict[str, Any], filter_condition: Any) -> None:
    """A Query filter may not use the key attributes of what it queries (the key condition
    already does)."""
    if filter_condition is None:
        return
    used = filter_condition.top_level_names()
    for key_name in target.index_key_names():
        if key_name in used:
            if request.get("FilterExpression") is not None:
                raise ValidationException(
                    "Filter Expression can only contain non-primary key attributes: "
                    f"Primary key attribute: {key_name}")
            raise ValidationException(
                "QueryFilter can only contain non-key attributes: "
                f"Primary key attribute: {key_name}")
