"""Index definitions in the catalogue: documents and metadata log records round-trip,
documents written before indexes load with none, routing maps name local indexes."""
from __future__ import annotations

import asyncio
from typing import Any

from triplica.engine.catalogue import Catalogue, TableInfo, table_map_of
from triplica.engine.database import Database
from triplica.engine.index_definitions import GLOBAL, LOCAL, IndexInfo
from triplica.engine.node_partition import UnhostedPartition
from triplica.engine.operations import tables  # noqa: F401  (registers the handlers)
from triplica.engine.operations.service import OPERATIONS, Service
from triplica.metadata import catalogue_log
from triplica.metadata.planning import PlanningDatabase
from triplica.model.partition_map import TableMap
from triplica.router.key_routes import query_key_hash
from triplica.model.keys import partition_hash

OLD_DOCUMENT = {   # a table as the previous release saved it: no index members
    "name": "old", "table_id": "id-1", "region": "us-east-1", "hash_key": "pk",
    "hash_type": "S", "range_key": None, "range_type": None,
    "attribute_definitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    "billing_mode": "PAY_PER_REQUEST", "read_units": 0, "write_units": 0,
    "creation_time": 1.5, "table_class": "STANDARD", "deletion_protection": False,
    "tags": {}, "status": "ACTIVE", "pay_per_request_since": 1.5,
    "throughput_increased_at": None, "throughput_decreased_at": None,
    "partitions": [{"partition_id": "p1", "hash_start": "0",
                    "hash_end": "18446744073709551616", "group": "g", "members": [1, 2, 3]}],
    "split_intent": []}


def _request() -> dict[str, Any]:
    return {"TableName": "indexed", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                          {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"}
                                     for n in ("pk", "sk", "l", "g1", "g2")],
            "LocalSecondaryIndexes": [{"IndexName": "by_l", "Projection": {
                "ProjectionType": "INCLUDE", "NonKeyAttributes": ["a"]},
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                              {"AttributeName": "l", "KeyType": "RANGE"}]}],
            "GlobalSecondaryIndexes": [{"IndexName": "by_g", "Projection": {
                "ProjectionType": "ALL"},
                "KeySchema": [{"AttributeName": "g1", "KeyType": "HASH"},
                              {"AttributeName": "g2", "KeyType": "HASH"}]}]}


def test_a_document_without_indexes_loads_with_none() -> None:
    info = TableInfo.from_json(dict(OLD_DOCUMENT))
    assert info.global_indexes == [] and info.local_indexes == [] and info.indexes() == []
    assert TableInfo.from_json(info.to_json()) == info


def test_the_metadata_log_carries_index_definitions(tmp_path) -> None:
    db = Database(str(tmp_path), lambda info, p, d: UnhostedPartition([1]))
    planning = PlanningDatabase(db, lambda group: [1, 2, 3])
    OPERATIONS["CreateTable"](Service(planning), _request())  # type: ignore[arg-type]
    # The table, and its global index's index table (engine/index_tables.py).
    [change, index_change] = planning.changes()
    decoded = catalogue_log.decode_change(catalogue_log.encode_change(change))
    info = TableInfo.from_json(decoded["info"])
    assert info.local_indexes == [IndexInfo("by_l", LOCAL, [("pk", "S")], [("l", "S")],
                                            "INCLUDE", ["a"])]
    assert info.global_indexes == [IndexInfo("by_g", GLOBAL, [("g1", "S"), ("g2", "S")], [],
                                             "ALL", status="CREATING", backfilling=False)]
    assert index_change["info"]["name"] == "indexed/by_g"
    # Saved and read back by a node's catalogue.
    db.adopt_table(info, epoch=1)
    assert Catalogue(str(tmp_path)).tables["indexed"] == info
    asyncio.run(db.close())
    # The routing map names the local index's sort key (a Query of it routes by pk).
    table_map = table_map_of(info, 1)
    assert table_map.local_indexes == (("by_l", "l"),)
    assert TableMap.from_doc(table_map.to_doc()) == table_map
    doc = table_map.to_doc()
    del doc["local_indexes"]
    assert TableMap.from_doc(doc).local_indexes == ()
    parameters = {"IndexName": "by_l", "KeyConditionExpression": "pk = :p AND l > :l",
                  "ExpressionAttributeValues": {":p": {"S": "x"}, ":l": {"S": "y"}}}
    assert query_key_hash(table_map, parameters) == partition_hash({"S": "x"})
    assert query_key_hash(table_map, {**parameters, "IndexName": "by_g"}) is None
    assert query_key_hash(TableMap.from_doc(doc), parameters) is None


def test_routing_maps_name_global_indexes_and_their_hash() -> None:
    from triplica.model.index_keys import index_hash
    from triplica.router.key_routes import index_values_hash, read_map_name
    from triplica.router.scan_pages import scan_slices
    info = TableInfo.from_json(dict(OLD_DOCUMENT))
    info.global_indexes = [IndexInfo("by_g", GLOBAL, [("g1", "S"), ("g2", "N")], [("r", "S")],
                                     "ALL")]
    table_map = table_map_of(info, 3)
    assert TableMap.from_doc(table_map.to_doc()) == table_map
    index = table_map.global_index("by_g")
    assert index is not None and index.hash_keys == (("g1", "S"), ("g2", "N"))
    assert read_map_name(table_map, {"IndexName": "by_g"}) == "old/by_g"
    assert read_map_name(table_map, {"IndexName": "other"}) == "old"
    values = {":a": {"S": "x"}, ":b": {"N": "5"}, ":r": {"S": "q"}}
    wanted = index_hash([{"S": "x"}, {"N": "5"}])
    parameters = {"IndexName": "by_g", "ExpressionAttributeValues": values,
                  "KeyConditionExpression": "g2 = :b AND g1 = :a AND r > :r"}
    assert query_key_hash(table_map, parameters) == wanted
    # A condition the node will refuse (g2 missing, or mistyped) is not routed.
    assert query_key_hash(table_map, {**parameters, "KeyConditionExpression": "g1 = :a"}) is None
    assert query_key_hash(table_map, {**parameters, "KeyConditionExpression":
                                      "g1 = :a AND g2 = :a"}) is None
    start = {"pk": {"S": "p"}, "g1": {"S": "x"}, "g2": {"N": "5"}, "r": {"S": "q"}}
    assert index_values_hash(index, start) == wanted
    assert index_values_hash(index, {**start, "g2": {"S": "5"}}) is None
    # A Scan of the index walks the index table's map from the start key's index hash.
    plans = scan_slices(table_map, {"IndexName": "by_g", "ExclusiveStartKey": start}, index)
    assert plans is not None and plans[0].hash_start == 0   # one partition: from its start
