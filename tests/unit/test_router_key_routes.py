"""Router key extraction: the partition a single-key request or a Query touches."""
from __future__ import annotations

from triplica.model.partition_map import HASH_SPACE_END, TableMap
from triplica.model.keys import partition_hash
from triplica.router.key_routes import key_hash, value_hash


def _map(range_key: str | None = "sk") -> TableMap:
    starts = tuple(HASH_SPACE_END * i // 3 for i in range(3))
    return TableMap("t", 0, "pk", "S", range_key, "N" if range_key else None, starts,
                    ("g0", "g1", "g2"), ((1, 2, 3),) * 3)


def test_item_keys_hash_like_the_storage() -> None:
    expected = partition_hash({"S": "alpha"})
    table_map = _map()
    for operation in ("GetItem", "DeleteItem", "UpdateItem"):
        assert key_hash(table_map, operation, {"Key": {"pk": {"S": "alpha"},
                                                       "sk": {"N": "1"}}}) == expected
    assert key_hash(table_map, "PutItem", {"Item": {"pk": {"S": "alpha"}, "x": {"S": "y"}}}) \
        == expected


def test_unreadable_keys_give_none() -> None:
    table_map = _map()
    for parameters in ({}, {"Key": "x"}, {"Key": {"sk": {"N": "1"}}},
                       {"Key": {"pk": {"N": "1"}}}, {"Key": {"pk": {"S": 3}}},
                       {"Key": {"pk": {"S": "a", "N": "1"}}}):
        assert key_hash(table_map, "GetItem", parameters) is None
    assert value_hash({"N": "not a number"}, "N") is None
    assert value_hash({"N": "1.0"}, "N") == value_hash({"N": "1"}, "N")


def test_query_key_from_expression_and_legacy_conditions() -> None:
    table_map = _map()
    expected = partition_hash({"S": "p"})
    assert key_hash(table_map, "Query", {
        "KeyConditionExpression": "#k = :p AND sk > :s",
        "ExpressionAttributeNames": {"#k": "pk"},
        "ExpressionAttributeValues": {":p": {"S": "p"}, ":s": {"N": "2"}}}) == expected
    assert key_hash(table_map, "Query", {"KeyConditions": {
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}]}}}) == expected
    assert key_hash(table_map, "Query", {"KeyConditionExpression": "pk = "}) is None
    assert key_hash(table_map, "Query", {"KeyConditionExpression": "pk = :p"}) is None
    assert key_hash(table_map, "Query", {}) is None
