"""Local secondary indexes through boto3 against a real server: Query and Scan with
IndexName, projections and Select, fetches from the table, filters, paging, parallel
Scan, consistency, capacity, item collections and the index key checks on writes."""
from __future__ import annotations

import os
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import unique_name
from tests.integration.index_checker import check_through_api, order_key, scan_all
from tests.integration.server import ServerProcess

S, N, B = "S", "N", "B"


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    error = info.value.response["Error"]
    return error["Code"], error["Message"]


def create_lsi_table(ddb: Any, name: str | None = None) -> str:
    """pk S / sk S, with three local indexes: by_n (N, ALL), by_s (S, KEYS_ONLY) and by_b
    (B, INCLUDE x); and a global index by_g (its key type S)."""
    name = name or unique_name("lsi")
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in
                              (("pk", S), ("sk", S), ("n", N), ("s", S), ("b", B), ("g", S))],
        LocalSecondaryIndexes=[
            {"IndexName": "by_n", "Projection": {"ProjectionType": "ALL"},
             "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                           {"AttributeName": "n", "KeyType": "RANGE"}]},
            {"IndexName": "by_s", "Projection": {"ProjectionType": "KEYS_ONLY"},
             "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                           {"AttributeName": "s", "KeyType": "RANGE"}]},
            {"IndexName": "by_b", "Projection": {"ProjectionType": "INCLUDE",
                                                 "NonKeyAttributes": ["x"]},
             "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                           {"AttributeName": "b", "KeyType": "RANGE"}]}],
        GlobalSecondaryIndexes=[
            {"IndexName": "by_g", "Projection": {"ProjectionType": "KEYS_ONLY"},
             "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}]}])
    return name


def put(ddb: Any, table: str, pk: str, sk: str, **attributes: Any) -> None:
    ddb.put_item(TableName=table, Item={"pk": {S: pk}, "sk": {S: sk}, **attributes})


def query(ddb: Any, table: str, index: str, condition: str, values: dict, **extra: Any) -> dict:
    return ddb.query(TableName=table, IndexName=index, KeyConditionExpression=condition,
                     ExpressionAttributeValues=values, **extra)


@pytest.fixture(scope="module")
def numbers(ddb: Any) -> str:
    """Partition "p": sk s00..s11 with n = 11 - i (s05 has none), and a few others."""
    table = create_lsi_table(ddb)
    for i in range(12):
        attributes: dict[str, Any] = {"x": {S: f"x{i}"}, "y": {S: f"y{i}"}}
        if i != 5:
            attributes["n"] = {N: str(11 - i)}
        if i % 3 == 0:
            attributes["s"] = {S: f"s{i % 2}"}
        if i % 4 == 0:
            attributes["b"] = {B: bytes([i])}
        put(ddb, table, "p", f"s{i:02d}", **attributes)
    put(ddb, table, "q", "a", n={N: "1"})
    put(ddb, table, "q", "b", n={N: "1"})
    return table


def sks(answer: dict) -> list[str]:
    return [item["sk"][S] for item in answer["Items"]]


def test_query_orders_by_the_index_sort_key_and_skips_items_without_it(ddb, numbers):
    everything = query(ddb, numbers, "by_n", "pk = :p", {":p": {S: "p"}})
    assert sks(everything) == [f"s{i:02d}" for i in range(11, -1, -1) if i != 5]
    assert query(ddb, numbers, "by_n", "pk = :p", {":p": {S: "p"}},
                 ScanIndexForward=False)["Items"] == everything["Items"][::-1]
    assert sks(query(ddb, numbers, "by_n", "pk = :p AND n BETWEEN :a AND :b",
                     {":p": {S: "p"}, ":a": {N: "2"}, ":b": {N: "4"}})) == ["s09", "s08", "s07"]
    for condition, expected in (("n = :v", ["s08"]), ("n < :v", ["s11", "s10", "s09"]),
                                ("n <= :v", ["s11", "s10", "s09", "s08"]),
                                ("n > :v", [f"s{i:02d}" for i in range(7, -1, -1) if i != 5]),
                                ("n >= :v", [f"s{i:02d}" for i in range(8, -1, -1) if i != 5])):
        answer = query(ddb, numbers, "by_n", f"pk = :p AND {condition}",
                       {":p": {S: "p"}, ":v": {N: "3"}})
        assert sks(answer) == expected, condition
    # Equal index sort keys come in table sort key order.
    assert sks(query(ddb, numbers, "by_n", "pk = :p AND n = :v",
                     {":p": {S: "q"}, ":v": {N: "1"}})) == ["a", "b"]
    assert sks(query(ddb, numbers, "by_s", "pk = :p AND begins_with(s, :v)",
                     {":p": {S: "p"}, ":v": {S: "s1"}})) == ["s03", "s09"]


def test_legacy_key_conditions_and_key_condition_errors(ddb, numbers):
    answer = ddb.query(TableName=numbers, IndexName="by_n", KeyConditions={
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{S: "p"}]},
        "n": {"ComparisonOperator": "GT", "AttributeValueList": [{N: "9"}]}})
    assert sks(answer) == ["s01", "s00"]
    assert error_of(ddb.query, TableName=numbers, IndexName="by_n",
                    KeyConditionExpression="pk = :p AND sk = :v",
                    ExpressionAttributeValues={":p": {S: "p"}, ":v": {S: "s01"}}) == \
        ("ValidationException", "Query condition missed key schema element: n")
    assert error_of(ddb.query, TableName=numbers, IndexName="by_n",
                    KeyConditionExpression="pk = :p AND n = :v",
                    ExpressionAttributeValues={":p": {S: "p"}, ":v": {S: "1"}}) == \
        ("ValidationException", "One or more parameter values were invalid: Condition "
                                "parameter type does not match schema type")


def test_projections_and_select(ddb, numbers):
    values = {":p": {S: "p"}, ":v": {S: "s0"}}
    keys_only = query(ddb, numbers, "by_s", "pk = :p AND s = :v", values)
    assert keys_only["Items"] == [{"pk": {S: "p"}, "sk": {S: f"s{i:02d}"}, "s": {S: "s0"}}
                                  for i in (0, 6)]
    assert query(ddb, numbers, "by_s", "pk = :p AND s = :v", values,
                 Select="ALL_PROJECTED_ATTRIBUTES")["Items"] == keys_only["Items"]
    whole = query(ddb, numbers, "by_s", "pk = :p AND s = :v", values, Select="ALL_ATTRIBUTES")
    assert whole["Items"][0]["y"] == {S: "y0"} and whole["Items"][0]["n"] == {N: "11"}
    counted = query(ddb, numbers, "by_s", "pk = :p AND s = :v", values, Select="COUNT")
    assert (counted["Count"], counted["ScannedCount"], "Items" in counted) == (2, 2, False)
    assert "Items" not in query(ddb, numbers, "by_s", "pk = :p", {":p": {S: "p"}},
                                Select="COUNT")
    specific = query(ddb, numbers, "by_s", "pk = :p AND s = :v", values,
                     ProjectionExpression="y, s")
    assert specific["Items"] == [{"y": {S: "y0"}, "s": {S: "s0"}}, {"y": {S: "y6"}, "s": {S: "s0"}}]
    include = query(ddb, numbers, "by_b", "pk = :p", {":p": {S: "p"}})
    assert include["Items"][0] == {"pk": {S: "p"}, "sk": {S: "s00"}, "b": {B: bytes([0])},
                                   "x": {S: "x0"}}
    for select in ("ALL_PROJECTED_ATTRIBUTES", "ALL_ATTRIBUTES", "COUNT"):
        assert error_of(ddb.query, TableName=numbers, IndexName="by_s",
                        KeyConditionExpression="pk = :p", ProjectionExpression="y",
                        ExpressionAttributeValues={":p": {S: "p"}}, Select=select) == \
            ("ValidationException", f"Cannot specify the ProjectionExpression when choosing "
                                    f"to get {select}")
    assert error_of(ddb.query, TableName=numbers, IndexName="by_s",
                    KeyConditionExpression="pk = :p", Select="SPECIFIC_ATTRIBUTES",
                    ExpressionAttributeValues={":p": {S: "p"}})[1] == (
        "One or more parameter values were invalid: Select type SPECIFIC_ATTRIBUTES requires "
        "AttributesToGet or ProjectionExpression")
    assert error_of(ddb.query, TableName=numbers, KeyConditionExpression="pk = :p",
                    Select="ALL_PROJECTED_ATTRIBUTES",
                    ExpressionAttributeValues={":p": {S: "p"}})[1] == (
        "One or more parameter values were invalid: Select type ALL_PROJECTED_ATTRIBUTES is "
        "supported only when using an IndexName")


def test_fetching_from_the_table_is_charged_to_it(ddb, numbers):
    values = {":p": {S: "p"}, ":v": {S: "s0"}}
    projected = query(ddb, numbers, "by_s", "pk = :p AND s = :v", values,
                      ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    assert projected == {"TableName": numbers, "CapacityUnits": 0.5, "ReadCapacityUnits": 0.5,
                         "Table": {"CapacityUnits": 0.0, "ReadCapacityUnits": 0.0},
                         "LocalSecondaryIndexes": {"by_s": {"CapacityUnits": 0.5,
                                                            "ReadCapacityUnits": 0.5}}}
    fetched = query(ddb, numbers, "by_s", "pk = :p AND s = :v", values, ConsistentRead=True,
                    Select="ALL_ATTRIBUTES", ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    assert fetched["Table"]["CapacityUnits"] == 2.0       # two items, one strong read each
    assert fetched["LocalSecondaryIndexes"]["by_s"]["CapacityUnits"] == 1.0
    assert fetched["CapacityUnits"] == 3.0
    total = query(ddb, numbers, "by_s", "pk = :p AND s = :v", values,
                  ProjectionExpression="y", ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]
    assert total == {"TableName": numbers, "CapacityUnits": 1.5, "ReadCapacityUnits": 1.5}
    # An index projecting everything never fetches.
    every = query(ddb, numbers, "by_n", "pk = :p", {":p": {S: "p"}}, Select="ALL_ATTRIBUTES",
                  ReturnConsumedCapacity="INDEXES")["ConsumedCapacity"]
    assert every["Table"]["CapacityUnits"] == 0.0


def test_filters_on_projected_and_fetched_attributes(ddb, numbers):
    values = {":p": {S: "p"}, ":y": {S: "y3"}}
    answer = query(ddb, numbers, "by_s", "pk = :p", values, FilterExpression="y = :y")
    assert answer["Count"] == 1 and answer["ScannedCount"] == 4
    assert answer["Items"] == [{"pk": {S: "p"}, "sk": {S: "s03"}, "s": {S: "s1"}}]
    legacy = ddb.query(TableName=numbers, IndexName="by_n", KeyConditions={
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{S: "p"}]}},
                       QueryFilter={"x": {"ComparisonOperator": "EQ",
                                          "AttributeValueList": [{S: "x2"}]}})
    assert sks(legacy) == ["s02"]
    assert error_of(ddb.query, TableName=numbers, IndexName="by_n",
                    KeyConditionExpression="pk = :p", FilterExpression="n > :v",
                    ExpressionAttributeValues={":p": {S: "p"}, ":v": {N: "1"}}) == \
        ("ValidationException", "Filter Expression can only contain non-primary key "
                                "attributes: Primary key attribute: n")
    # The table's sort key is no key of the index: an index query may filter on it.
    assert sks(query(ddb, numbers, "by_n", "pk = :p", {":p": {S: "p"}, ":k": {S: "s10"}},
                     FilterExpression="sk >= :k")) == ["s11", "s10"]


def test_pages_hold_the_table_and_index_keys(ddb, numbers):
    for forward in (True, False):
        seen, start, pages = [], None, 0
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            page = query(ddb, numbers, "by_n", "pk = :p", {":p": {S: "p"}}, Limit=3,
                         ScanIndexForward=forward, **extra)
            pages += 1
            seen += sks(page)
            start = page.get("LastEvaluatedKey")
            if start is None:
                break
            assert set(start) == {"pk", "sk", "n"}
        expected = [f"s{i:02d}" for i in range(11, -1, -1) if i != 5]
        assert seen == (expected if forward else expected[::-1])
        assert pages == 4     # 11 items, 3 a page: the 4th page ends it
    code, message = error_of(ddb.query, TableName=numbers, IndexName="by_n",
                             KeyConditionExpression="pk = :p",
                             ExpressionAttributeValues={":p": {S: "p"}},
                             ExclusiveStartKey={"pk": {S: "p"}, "sk": {S: "s01"}})
    assert (code, message) == ("ValidationException", "The provided starting key is invalid: "
                               "The provided key element does not match the schema")
    code, message = error_of(ddb.query, TableName=numbers, IndexName="by_n",
                             KeyConditionExpression="pk = :p",
                             ExpressionAttributeValues={":p": {S: "p"}},
                             ExclusiveStartKey={"pk": {S: "p"}, "sk": {S: "s01"}, "n": {S: "x"}})
    assert code == "ValidationException" and message.startswith("The provided starting key is")


def test_scan_of_an_index_in_segments_and_pages(ddb, numbers):
    whole = scan_all(ddb, TableName=numbers, IndexName="by_n")
    assert len(whole) == 13
    paged = scan_all(ddb, TableName=numbers, IndexName="by_n", Limit=2, ConsistentRead=True)
    assert paged == whole
    segments = [scan_all(ddb, TableName=numbers, IndexName="by_n", Segment=s, TotalSegments=3)
                for s in range(3)]
    assert sorted(i["sk"][S] + i["pk"][S] for seg in segments for i in seg) == \
        sorted(i["sk"][S] + i["pk"][S] for i in whole)
    counted = ddb.scan(TableName=numbers, IndexName="by_b", Select="COUNT",
                       ReturnConsumedCapacity="INDEXES")
    assert counted["Count"] == 3 and counted["ConsumedCapacity"]["LocalSecondaryIndexes"]
    fetched = ddb.scan(TableName=numbers, IndexName="by_b", Select="ALL_ATTRIBUTES")
    assert all("y" in item for item in fetched["Items"])
    filtered = ddb.scan(TableName=numbers, IndexName="by_s", FilterExpression="y = :y",
                        ExpressionAttributeValues={":y": {S: "y9"}}, ProjectionExpression="x")
    assert filtered["Items"] == [{"x": {S: "x9"}}]
    assert check_through_api(ddb, numbers) == {"by_n": 13, "by_s": 4, "by_b": 3}


def test_writes_move_items_in_and_out_of_indexes(ddb):
    table = create_lsi_table(ddb)
    put(ddb, table, "a", "1", n={N: "5"})
    ddb.update_item(TableName=table, Key={"pk": {S: "a"}, "sk": {S: "1"}},
                    UpdateExpression="SET n = :n, s = :s",
                    ExpressionAttributeValues={":n": {N: "-1"}, ":s": {S: "z"}})
    one = query(ddb, table, "by_n", "pk = :p", {":p": {S: "a"}}, ConsistentRead=True)
    assert one["Items"] == [{"pk": {S: "a"}, "sk": {S: "1"}, "n": {N: "-1"}, "s": {S: "z"}}]
    assert query(ddb, table, "by_n", "pk = :p AND n = :v", {":p": {S: "a"}, ":v": {N: "5"}},
                 ConsistentRead=True)["Count"] == 0
    ddb.update_item(TableName=table, Key={"pk": {S: "a"}, "sk": {S: "1"}},
                    UpdateExpression="REMOVE n")
    assert query(ddb, table, "by_n", "pk = :p", {":p": {S: "a"}}, ConsistentRead=True)["Count"] == 0
    assert query(ddb, table, "by_s", "pk = :p", {":p": {S: "a"}}, ConsistentRead=True)["Count"] == 1
    ddb.batch_write_item(RequestItems={table: [
        {"PutRequest": {"Item": {"pk": {S: "a"}, "sk": {S: "2"}, "n": {N: "7"}}}},
        {"DeleteRequest": {"Key": {"pk": {S: "a"}, "sk": {S: "1"}}}}]})
    assert sks(query(ddb, table, "by_n", "pk = :p", {":p": {S: "a"}}, ConsistentRead=True)) == ["2"]
    assert query(ddb, table, "by_s", "pk = :p", {":p": {S: "a"}}, ConsistentRead=True)["Count"] == 0
    ddb.delete_item(TableName=table, Key={"pk": {S: "a"}, "sk": {S: "2"}})
    assert query(ddb, table, "by_n", "pk = :p", {":p": {S: "a"}}, ConsistentRead=True)["Count"] == 0
    check_through_api(ddb, table)


def test_a_write_is_charged_for_each_index_it_changes(ddb):
    table = create_lsi_table(ddb)
    key = {"pk": {S: "a"}, "sk": {S: "1"}}

    def units(answer: dict) -> tuple[float, dict]:
        capacity = answer["ConsumedCapacity"]
        return capacity["Table"]["CapacityUnits"], {
            name: value["CapacityUnits"]
            for name, value in capacity.get("LocalSecondaryIndexes", {}).items()}

    answer = ddb.put_item(TableName=table, Item={**key, "n": {N: "1"}, "s": {S: "a"}},
                          ReturnConsumedCapacity="INDEXES")
    assert units(answer) == (1.0, {"by_n": 1.0, "by_s": 1.0})
    assert answer["ConsumedCapacity"]["CapacityUnits"] == 3.0
    # n changes (old entry deleted, new one put); s is untouched and KEYS_ONLY: no write.
    answer = ddb.update_item(TableName=table, Key=key, UpdateExpression="SET n = :n",
                             ExpressionAttributeValues={":n": {N: "2"}},
                             ReturnConsumedCapacity="INDEXES")
    assert units(answer) == (1.0, {"by_n": 2.0})
    # A non-key attribute: by_n projects ALL (one write), by_s does not project it.
    answer = ddb.update_item(TableName=table, Key=key, UpdateExpression="SET attr1 = :o",
                             ExpressionAttributeValues={":o": {S: "o"}},
                             ReturnConsumedCapacity="INDEXES")
    assert units(answer) == (1.0, {"by_n": 1.0})
    answer = ddb.delete_item(TableName=table, Key=key, ReturnConsumedCapacity="INDEXES")
    assert units(answer) == (1.0, {"by_n": 1.0, "by_s": 1.0})
    answer = ddb.delete_item(TableName=table, Key=key, ReturnConsumedCapacity="TOTAL")
    assert answer["ConsumedCapacity"] == {"TableName": table, "CapacityUnits": 1.0,
                                          "WriteCapacityUnits": 1.0}
    batch = ddb.batch_write_item(ReturnConsumedCapacity="INDEXES", RequestItems={table: [
        {"PutRequest": {"Item": {"pk": {S: "b"}, "sk": {S: str(i)}, "n": {N: "1"}}}}
        for i in range(3)]})
    [capacity] = batch["ConsumedCapacity"]
    assert capacity["Table"]["CapacityUnits"] == 3.0
    assert capacity["LocalSecondaryIndexes"] == {"by_n": {"CapacityUnits": 3.0,
                                                          "WriteCapacityUnits": 3.0}}


def test_item_collection_metrics(ddb):
    table = create_lsi_table(ddb)
    item = {"pk": {S: "c"}, "sk": {S: "1"}, "n": {N: "1"}}
    expected = {"ItemCollectionKey": {"pk": {S: "c"}}, "SizeEstimateRangeGB": [0.0, 1.0]}
    assert ddb.put_item(TableName=table, Item=item,
                        ReturnItemCollectionMetrics="SIZE")["ItemCollectionMetrics"] == expected
    assert "ItemCollectionMetrics" not in ddb.put_item(TableName=table, Item=item)
    assert ddb.update_item(TableName=table, Key={"pk": {S: "c"}, "sk": {S: "1"}},
                           UpdateExpression="SET n = :n", ExpressionAttributeValues={":n": {N: "3"}},
                           ReturnItemCollectionMetrics="SIZE")["ItemCollectionMetrics"] == expected
    assert ddb.delete_item(TableName=table, Key={"pk": {S: "c"}, "sk": {S: "1"}},
                           ReturnItemCollectionMetrics="SIZE")["ItemCollectionMetrics"] == expected
    batch = ddb.batch_write_item(ReturnItemCollectionMetrics="SIZE", RequestItems={table: [
        {"PutRequest": {"Item": {"pk": {S: f"k{i}"}, "sk": {S: "1"}}}} for i in range(4)]})
    assert sorted(m["ItemCollectionKey"]["pk"][S] for m in batch["ItemCollectionMetrics"][table]) \
        == ["k0", "k1", "k2", "k3"]
    # Tables without local indexes have no item collections to report.
    plain = unique_name("plain")
    ddb.create_table(TableName=plain, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": S}])
    assert "ItemCollectionMetrics" not in ddb.put_item(
        TableName=plain, Item={"pk": {S: "x"}}, ReturnItemCollectionMetrics="SIZE")
    assert "ItemCollectionMetrics" not in ddb.batch_write_item(
        ReturnItemCollectionMetrics="SIZE",
        RequestItems={plain: [{"PutRequest": {"Item": {"pk": {S: "y"}}}}]})


MISMATCH = ("One or more parameter values were invalid: Type mismatch for Index Key {key} "
            "Expected: {expected} Actual: {actual} IndexName: {index}")
EMPTY = ("One or more parameter values are not valid. A value specified for a secondary index "
         "key is not supported. The AttributeValue for a key attribute cannot contain an empty "
         "{kind} value. IndexName: {index}, IndexKey: {key}")


@pytest.mark.parametrize("attributes, message", [
    ({"n": {S: "1"}}, MISMATCH.format(key="n", expected="N", actual="S", index="by_n")),
    ({"s": {N: "1"}}, MISMATCH.format(key="s", expected="S", actual="N", index="by_s")),
    ({"b": {S: "x"}}, MISMATCH.format(key="b", expected="B", actual="S", index="by_b")),
    ({"g": {N: "1"}}, MISMATCH.format(key="g", expected="S", actual="N", index="by_g")),
    ({"s": {S: ""}}, EMPTY.format(kind="string", index="by_s", key="s")),
    ({"b": {B: b""}}, EMPTY.format(kind="binary", index="by_b", key="b")),
    ({"g": {S: ""}}, EMPTY.format(kind="string", index="by_g", key="g")),
])
def test_index_key_values_are_checked_on_every_write_path(ddb, attributes, message):
    table = create_lsi_table(ddb)
    key = {"pk": {S: "v"}, "sk": {S: "1"}}
    put(ddb, table, "v", "1", n={N: "1"}, s={S: "ok"})
    calls = [
        ("PutItem", {"Item": {**key, **attributes}}),
        ("UpdateItem", {"Key": key, "UpdateExpression": "SET " + ", ".join(
            f"{name} = :{name}" for name in attributes),
            "ExpressionAttributeValues": {f":{name}": v for name, v in attributes.items()}}),
        ("UpdateItem", {"Key": key, "AttributeUpdates": {
            name: {"Action": "PUT", "Value": v} for name, v in attributes.items()}}),
        ("BatchWriteItem", {"RequestItems": {table: [
            {"PutRequest": {"Item": {"pk": {S: "w"}, "sk": {S: "1"}}}},
            {"PutRequest": {"Item": {**key, **attributes}}}]}}),
    ]
    methods = {"PutItem": ddb.put_item, "UpdateItem": ddb.update_item,
               "BatchWriteItem": ddb.batch_write_item}
    for operation, arguments in calls:
        if operation != "BatchWriteItem":
            arguments = {"TableName": table, **arguments}
        assert error_of(methods[operation], **arguments) == ("ValidationException", message)
    # Nothing was written, by any of them.
    assert scan_all(ddb, TableName=table, ConsistentRead=True) == \
        [{**key, "n": {N: "1"}, "s": {S: "ok"}}]
    check_through_api(ddb, table)


def test_reads_of_unknown_and_global_indexes(ddb, numbers):
    plain = unique_name("plain")
    ddb.create_table(TableName=plain, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": S}])
    for table in (plain, numbers):
        for call, extra in ((ddb.query, {"KeyConditionExpression": "pk = :p",
                                         "ExpressionAttributeValues": {":p": {S: "p"}}}),
                            (ddb.scan, {})):
            assert error_of(call, TableName=table, IndexName="nope", **extra) == \
                ("ValidationException", "The table does not have the specified index: nope")
    values = {":g": {S: "g"}}
    assert error_of(ddb.query, TableName=numbers, IndexName="by_g", ConsistentRead=True,
                    KeyConditionExpression="g = :g", ExpressionAttributeValues=values) == \
        ("ValidationException", "Consistent reads are not supported on global secondary indexes")
    assert error_of(ddb.scan, TableName=numbers, IndexName="by_g", ConsistentRead=True) == \
        ("ValidationException", "Consistent reads are not supported on global secondary indexes")
    assert error_of(ddb.query, TableName=numbers, IndexName="by_g", Select="ALL_ATTRIBUTES",
                    KeyConditionExpression="g = :g", ExpressionAttributeValues=values) == \
        ("ValidationException", "One or more parameter values were invalid: Select type "
                                "ALL_ATTRIBUTES is not supported for global secondary index "
                                "by_g because its projection type is not ALL")
    # No item has g: the global index is read (its index table's partitions) and is empty.
    answer = ddb.query(TableName=numbers, IndexName="by_g", KeyConditionExpression="g = :g",
                       ExpressionAttributeValues=values)
    assert (answer["Items"], answer["Count"]) == ([], 0)
    assert ddb.scan(TableName=numbers, IndexName="by_g")["Items"] == []
    assert ddb.scan(TableName=numbers, IndexName="by_g", Segment=1, TotalSegments=2)["Count"] == 0


def test_index_name_constraints(raw, numbers):
    for name, constraint in (("ab", "Member must have length greater than or equal to 3"),
                             ("a b c", "Member must satisfy regular expression pattern: "
                                       "[a-zA-Z0-9_.-]+"),
                             ("x" * 256, "Member must have length less than or equal to 255")):
        code, message = error_of(raw.scan, TableName=numbers, IndexName=name)
        assert code == "ValidationException"
        assert message == (f"1 validation error detected: Value '{name}' at 'indexName' failed "
                           f"to satisfy constraint: {constraint}")


def test_describe_counts_index_entries(ddb, numbers):
    described = ddb.describe_table(TableName=numbers)["Table"]
    indexes = {i["IndexName"]: i for i in described["LocalSecondaryIndexes"]}
    assert {name: i["ItemCount"] for name, i in indexes.items()} == \
        {"by_n": 13, "by_s": 4, "by_b": 3}
    assert indexes["by_s"]["IndexSizeBytes"] == sum(
        2 + 1 + 2 + 3 + 1 + 2 for _ in range(4))   # pk "p", sk "sNN", s "sX"
    assert indexes["by_n"]["IndexSizeBytes"] > indexes["by_b"]["IndexSizeBytes"] > 0
    assert described["ItemCount"] == 14


def test_item_collections_stop_growing_at_the_limit(tmp_path: Any) -> None:
    """TRIPLICA_ITEM_COLLECTION_BYTES_MAX lowers the 10 GB limit for this server."""
    os.environ["TRIPLICA_ITEM_COLLECTION_BYTES_MAX"] = "20000"
    try:
        server = ServerProcess(str(tmp_path), "--replicas", "1").start()
    finally:
        del os.environ["TRIPLICA_ITEM_COLLECTION_BYTES_MAX"]
    try:
        ddb = server.client()
        table = create_lsi_table(ddb, "limited")
        pad = "x" * 3000
        written = 0
        with pytest.raises(ClientError) as refused:
            for i in range(100):
                put(ddb, table, "big", f"{i:03d}", n={N: str(i)}, padding={S: pad})
                written += 1
        error = refused.value.response["Error"]
        assert (error["Code"], error["Message"]) == ("ItemCollectionSizeLimitExceededException",
                                                     "Collection size exceeded.")
        assert 2 <= written <= 6     # ~6 KB per item (item + ALL entry), 20 KB
        # Nothing of the refused write is there; other collections still grow; shrinking
        # and same-size writes still work in the full one.
        assert len(scan_all(ddb, TableName=table, ConsistentRead=True)) == written
        put(ddb, table, "small", "1", n={N: "1"}, padding={S: pad})
        ddb.update_item(TableName=table, Key={"pk": {S: "big"}, "sk": {S: "000"}},
                        UpdateExpression="SET padding = :p", ExpressionAttributeValues={":p": {S: "y"}})
        put(ddb, table, "big", "new", n={N: "1"}, padding={S: "y" * 100})
        with pytest.raises(ClientError) as batch_refused:
            ddb.batch_write_item(RequestItems={table: [
                {"PutRequest": {"Item": {"pk": {S: "big"}, "sk": {S: f"b{i}"}, "padding": {S: pad}}}}
                for i in range(3)]})
        assert batch_refused.value.response["Error"]["Code"] == \
            "ItemCollectionSizeLimitExceededException"
        assert len(scan_all(ddb, TableName=table, ConsistentRead=True)) == written + 2
        check_through_api(ddb, table)
    finally:
        server.stop()


def test_check_through_api_sees_order(ddb, numbers):
    """The checker's own order rule (so the other tests' checks mean something)."""
    assert order_key({N: "10"}) > order_key({N: "9"}) and order_key({S: "b"}) > order_key({S: "a"})


def test_keys_of_the_largest_encodings(ddb):
    """Binary keys of zero bytes at DynamoDB's size limits (each zero byte encodes as two:
    a 2048-byte partition key used to overflow the store's key bound on apply, failing
    the replica), in the table and in an index."""
    table = unique_name("zeros")
    ddb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": B} for n in ("pk", "sk", "l")],
        LocalSecondaryIndexes=[{"IndexName": "by_l", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                              {"AttributeName": "l", "KeyType": "RANGE"}]}])
    pk, sk, lk = b"\x00" * 2048, b"\x00" * 1024, b"\x00" * 1024
    for last in range(3):
        ddb.put_item(TableName=table, Item={"pk": {B: pk}, "sk": {B: sk[:-1] + bytes([last])},
                                            "l": {B: lk[:-1] + bytes([2 - last])}})
    item = ddb.get_item(TableName=table, Key={"pk": {B: pk}, "sk": {B: sk}}, ConsistentRead=True)
    assert item["Item"]["l"][B] == lk[:-1] + b"\x02"
    answer = ddb.query(TableName=table, IndexName="by_l", ConsistentRead=True,
                       KeyConditionExpression="pk = :p AND l <= :l",
                       ExpressionAttributeValues={":p": {B: pk}, ":l": {B: lk[:-1] + b"\x01"}})
    assert [i["sk"][B][-1] for i in answer["Items"]] == [2, 1]
    assert len(scan_all(ddb, TableName=table, IndexName="by_l", Limit=1)) == 3
    check_through_api(ddb, table)
    with pytest.raises(ClientError) as too_long:
        ddb.put_item(TableName=table, Item={"pk": {B: pk}, "sk": {B: sk}, "l": {B: lk + b"\x00"}})
    assert too_long.value.response["Error"]["Message"] == (
        "One or more parameter values were invalid: Aggregated size of all range keys has "
        "exceeded the size limit of 1024 bytes")
