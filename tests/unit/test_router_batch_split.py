"""Batches split by (table, partition) and their answers merged."""
from __future__ import annotations

from typing import Any

from triplica.model.partition_map import HASH_SPACE_END, TableMap
from triplica.model.keys import partition_hash
from triplica.router.batch_split import BatchMerge, merge_capacities, split_batch, sub_body

THIRD = HASH_SPACE_END // 3


def _map(name: str) -> TableMap:
    return TableMap(name, 0, "pk", "S", None, None, (0, THIRD, 2 * THIRD),
                    (f"{name}0", f"{name}1", f"{name}2"), ((1, 2, 3),) * 3)


MAPS = {"a": _map("a"), "b": _map("b")}


def _key(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{i}"}}


def _index(i: int) -> int:
    return MAPS["a"].index_of(partition_hash(_key(i)["pk"]))


def test_batch_get_groups_keys_by_table_and_partition() -> None:
    keys = [_key(i) for i in range(30)]
    parameters = {"RequestItems": {"a": {"Keys": keys, "ConsistentRead": True,
                                         "ProjectionExpression": "pk"},
                                   "b": {"Keys": keys[:3]}},
                  "ReturnConsumedCapacity": "TOTAL"}
    subs = split_batch("BatchGetItem", parameters, MAPS)
    assert subs is not None
    assert sorted(k["pk"]["S"] for s in subs if s.table == "a" for k in s.entries) == \
        sorted(k["pk"]["S"] for k in keys)
    for sub in subs:
        assert all(_index(int(k["pk"]["S"][1:])) == sub.route.index for k in sub.entries)
        assert sub.needs_leader == (sub.table == "a")
    assert len({(s.table, s.route.index) for s in subs}) == len(subs)
    body = sub_body("BatchGetItem", parameters, subs[0])
    assert body["ReturnConsumedCapacity"] == "TOTAL"
    assert body["RequestItems"]["a"]["ProjectionExpression"] == "pk"
    assert body["RequestItems"]["a"]["Keys"] == list(subs[0].entries)


def test_batch_write_groups_puts_and_deletes() -> None:
    writes = [{"PutRequest": {"Item": {**_key(i), "v": {"N": "1"}}}} for i in range(20)] + \
        [{"DeleteRequest": {"Key": _key(i)}} for i in range(20, 25)]
    subs = split_batch("BatchWriteItem", {"RequestItems": {"a": writes}}, MAPS)
    assert subs is not None and all(s.needs_leader for s in subs)
    assert sum(len(s.entries) for s in subs) == 25
    assert sub_body("BatchWriteItem", {"RequestItems": {}}, subs[0]) == {
        "RequestItems": {"a": list(subs[0].entries)}}


def test_unroutable_batches_go_whole_to_a_node() -> None:
    assert split_batch("BatchWriteItem", {"RequestItems": {"c": []}}, {"c": None}) is None
    assert split_batch("BatchWriteItem", {"RequestItems": {"a": [{"PutRequest": {
        "Item": {"x": {"S": "no key"}}}}]}}, MAPS) is None
    assert split_batch("BatchWriteItem", {"RequestItems": {"a": [{"PutRequest": {},
                                                                  "DeleteRequest": {}}]}},
                       MAPS) is None
    assert split_batch("BatchGetItem", {"RequestItems": {"a": {"Keys": "x"}}}, MAPS) is None
    assert split_batch("BatchGetItem", {}, MAPS) is None


def test_merge_puts_failed_sub_batches_in_unprocessed() -> None:
    keys = [_key(i) for i in range(12)]
    parameters = {"RequestItems": {"a": {"Keys": keys, "ConsistentRead": True}},
                  "ReturnConsumedCapacity": "TOTAL"}
    subs = split_batch("BatchGetItem", parameters, MAPS)
    assert subs is not None and len(subs) >= 2
    merge = BatchMerge("BatchGetItem", parameters)
    merge.add_answer({"Responses": {"a": [{"pk": {"S": "x"}}]}, "UnprocessedKeys": {},
                      "ConsumedCapacity": [{"TableName": "a", "CapacityUnits": 2.0}]})
    merge.add_answer({"Responses": {"a": []}, "UnprocessedKeys": {
        "a": {"ConsistentRead": True, "Keys": [_key(99)]}},
        "ConsumedCapacity": [{"TableName": "a", "CapacityUnits": 1.0}]})
    merge.add_failure(subs[1])
    response = merge.response()
    assert response["Responses"] == {"a": [{"pk": {"S": "x"}}]}
    assert response["UnprocessedKeys"]["a"]["ConsistentRead"] is True
    assert response["UnprocessedKeys"]["a"]["Keys"] == [_key(99)] + list(subs[1].entries)
    assert response["ConsumedCapacity"] == [{"TableName": "a", "CapacityUnits": 3.0}]


def test_merge_writes_and_capacities() -> None:
    merge = BatchMerge("BatchWriteItem", {"RequestItems": {"a": []}})
    merge.add_answer({"UnprocessedItems": {}})
    subs = split_batch("BatchWriteItem", {"RequestItems": {"a": [
        {"DeleteRequest": {"Key": _key(1)}}]}}, MAPS)
    assert subs is not None
    merge.add_failure(subs[0])
    assert merge.response() == {"UnprocessedItems": {"a": [{"DeleteRequest": {"Key": _key(1)}}]}}
    assert merge_capacities([
        {"TableName": "a", "CapacityUnits": 1.0, "Table": {"CapacityUnits": 1.0}},
        {"TableName": "b", "CapacityUnits": 2.0},
        {"TableName": "a", "CapacityUnits": 0.5, "Table": {"CapacityUnits": 0.5}}]) == [
        {"TableName": "a", "CapacityUnits": 1.5, "Table": {"CapacityUnits": 1.5}},
        {"TableName": "b", "CapacityUnits": 2.0}]
