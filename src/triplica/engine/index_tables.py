"""A global secondary index's table in the catalogue: its definition from its index's.

docs/GLOBAL_INDEXES.md "An index is a table of its own": each global index
G of table T is an index table named `index_table_name(T, G)`
(engine/global_index_keys.py), a TableInfo with its own table id,
partitions, groups and placement, made and deleted in the same
control-plane operation as its index. Its partitions are planned from the
index's throughput like a table's from the table's (at least one).

Its key schema is for display and routing maps only: `hash_key` /
`hash_type` are the index's first HASH attribute, `range_key` /
`range_type` its first RANGE attribute or None. Entries are stored under
the index key of engine/global_index_keys.py, which holds every key
attribute of the index and the base table's key.
"""
from __future__ import annotations

import uuid

from triplica.engine.catalogue import TableInfo
from triplica.engine.global_index_keys import index_table_name
from triplica.engine.index_definitions import IndexInfo


def index_table_info(base: TableInfo, index: IndexInfo) -> TableInfo:
    """The index table of `base`'s global index `index`, without partitions (placement
    cuts them, metadata/planning.py)."""
    assert index.is_global and base.index(index.name) is index, index.name
    hash_key, hash_type = index.hash_keys[0]
    range_key, range_type = index.range_keys[0] if index.range_keys else (None, None)
    return TableInfo(
        name=index_table_name(base.name, index.name), table_id=str(uuid.uuid4()),
        region=base.region, hash_key=hash_key, hash_type=hash_type, range_key=range_key,
        range_type=range_type,
        attribute_definitions=[{"AttributeName": name, "AttributeType": type_name}
                               for name, type_name in index.key_attributes()],
        billing_mode=base.billing_mode, read_units=index.read_units,
        write_units=index.write_units, creation_time=base.creation_time,
        table_class=base.table_class, pay_per_request_since=base.pay_per_request_since)


def index_table_names(base: TableInfo) -> list[str]:
    """The names of `base`'s index tables, one per global index."""
    return [index_table_name(base.name, index.name) for index in base.global_indexes]
