"""Query, Scan and the batch operations through boto3 against a real server."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_table


def _odd(text: str) -> bool:
    value = Decimal(text)
    return value == int(value) and int(value) % 2 == 1


@pytest.fixture(scope="module")
def numbers(ddb: Any) -> str:
    """pk S, sk N; partition 'p' holds sk = -20 .. 29 (step 1) plus fractions."""
    name = make_table(ddb, range_key=("sk", "N"))
    values = [str(i) for i in range(-20, 30)] + ["0.5", "-0.25", "1e-5"]
    for start in range(0, len(values), 25):
        ddb.batch_write_item(RequestItems={name: [
            {"PutRequest": {"Item": {"pk": {"S": "p"}, "sk": {"N": v}, "odd": {"BOOL": _odd(v)}}}}
            for v in values[start:start + 25]]})
    ddb.put_item(TableName=name, Item={"pk": {"S": "other"}, "sk": {"N": "1"}})
    return name


def sks(items: list[dict]) -> list[Decimal]:
    return [Decimal(item["sk"]["N"]) for item in items]


def test_query_returns_sort_order_both_directions(ddb: Any, numbers: str) -> None:
    items = ddb.query(TableName=numbers, KeyConditionExpression="pk = :p",
                      ExpressionAttributeValues={":p": {"S": "p"}})["Items"]
    assert sks(items) == sorted(sks(items)) and len(items) == 53
    back = ddb.query(TableName=numbers, KeyConditionExpression="pk = :p", ScanIndexForward=False,
                     ExpressionAttributeValues={":p": {"S": "p"}})["Items"]
    assert sks(back) == sorted(sks(items), reverse=True)


@pytest.mark.parametrize("condition,values,expected", [
    ("sk = :a", {":a": "5"}, [5]),
    ("sk < :a", {":a": "-18"}, [-20, -19]),
    ("sk <= :a", {":a": "-18"}, [-20, -19, -18]),
    ("sk > :a", {":a": "27"}, [28, 29]),
    ("sk >= :a", {":a": "27"}, [27, 28, 29]),
    ("sk BETWEEN :a AND :b", {":a": "-0.5", ":b": "1"}, [Decimal("-0.25"), 0, Decimal("1e-5"),
                                                        Decimal("0.5"), 1]),
])
def test_query_sort_key_conditions(ddb: Any, numbers: str, condition: str, values: dict,
                                   expected: list) -> None:
    attribute_values = {k: {"N": v} for k, v in values.items()}
    attribute_values[":p"] = {"S": "p"}
    items = ddb.query(TableName=numbers, KeyConditionExpression=f"pk = :p AND {condition}",
                      ExpressionAttributeValues=attribute_values)["Items"]
    assert sks(items) == [Decimal(e) for e in expected]


def test_query_begins_with_on_strings(ddb: Any) -> None:
    name = make_table(ddb)
    for sk in ["a", "ab", "abc", "abd", "b", "a\u00e9", "ac"]:
        ddb.put_item(TableName=name, Item={"pk": {"S": "x"}, "sk": {"S": sk}})
    items = ddb.query(TableName=name, KeyConditionExpression="pk = :p AND begins_with(sk, :b)",
                      ExpressionAttributeValues={":p": {"S": "x"}, ":b": {"S": "ab"}})["Items"]
    assert [i["sk"]["S"] for i in items] == ["ab", "abc", "abd"]


def test_query_pagination_limit_filter_and_count(ddb: Any, numbers: str) -> None:
    collected: list[Decimal] = []
    kwargs: dict[str, Any] = dict(TableName=numbers, KeyConditionExpression="pk = :p",
                                  FilterExpression="odd = :t", Limit=7,
                                  ExpressionAttributeValues={":p": {"S": "p"}, ":t": {"BOOL": True}})
    pages = 0
    while True:
        page = ddb.query(**kwargs)
        pages += 1
        assert page["ScannedCount"] <= 7
        assert page["Count"] == len(page["Items"])
        collected.extend(sks(page["Items"]))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        assert pages < 50
    assert pages >= 8
    assert collected == [Decimal(i) for i in range(-20, 30) if i % 2 == 1]
    count = ddb.query(TableName=numbers, KeyConditionExpression="pk = :p", Select="COUNT",
                      ExpressionAttributeValues={":p": {"S": "p"}})
    assert count["Count"] == 53 and "Items" not in count


def test_query_legacy_key_conditions(ddb: Any, numbers: str) -> None:
    items = ddb.query(TableName=numbers, KeyConditions={
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}]},
        "sk": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [{"N": "1"}, {"N": "3"}]}},
        QueryFilter={"odd": {"ComparisonOperator": "EQ", "AttributeValueList": [{"BOOL": True}]}})
    assert sks(items["Items"]) == [1, 3]


def test_query_errors(raw: Any, numbers: str) -> None:
    with pytest.raises(ClientError) as info:
        raw.query(TableName=numbers, KeyConditionExpression="sk = :a",
                  ExpressionAttributeValues={":a": {"N": "1"}})
    assert info.value.response["Error"]["Message"] == "Query condition missed key schema element: pk"
    with pytest.raises(ClientError) as info:
        raw.query(TableName=numbers)
    assert info.value.response["Error"]["Message"] == (
        "Either the KeyConditions or KeyConditionExpression parameter must be specified in the "
        "request.")
    with pytest.raises(ClientError) as info:
        raw.query(TableName=numbers, KeyConditionExpression="pk = :a",
                  ExpressionAttributeValues={":a": {"N": "1"}})
    assert info.value.response["Error"]["Code"] == "ValidationException"


def test_scan_pages_across_many_pages(ddb: Any) -> None:
    name = make_table(ddb, range_key=None)
    total = 260
    for start in range(0, total, 25):
        ddb.batch_write_item(RequestItems={name: [
            {"PutRequest": {"Item": {"pk": {"S": f"item-{i}"}, "n": {"N": str(i)}}}}
            for i in range(start, min(total, start + 25))]})
    seen = []
    for page in ddb.get_paginator("scan").paginate(TableName=name, PaginationConfig={"PageSize": 17}):
        assert page["ScannedCount"] <= 17
        seen.extend(item["pk"]["S"] for item in page["Items"])
    assert sorted(seen) == sorted(f"item-{i}" for i in range(total))
    filtered = ddb.scan(TableName=name, FilterExpression="n < :x",
                        ExpressionAttributeValues={":x": {"N": "10"}})
    assert filtered["Count"] == 10 and filtered["ScannedCount"] == total
    segments = []
    for segment in range(4):
        segments.extend(item["pk"]["S"] for page in ddb.get_paginator("scan").paginate(
            TableName=name, Segment=segment, TotalSegments=4) for item in page["Items"])
    assert sorted(segments) == sorted(seen)
    legacy = ddb.scan(TableName=name, ScanFilter={"n": {"ComparisonOperator": "GE",
                                                        "AttributeValueList": [{"N": "250"}]}})
    assert legacy["Count"] == 10


def test_scan_one_megabyte_pages(ddb: Any) -> None:
    name = make_table(ddb, range_key=None)
    blob = "x" * 100_000
    for start in range(0, 25, 5):
        ddb.batch_write_item(RequestItems={name: [
            {"PutRequest": {"Item": {"pk": {"S": f"big-{i}"}, "v": {"S": blob}}}}
            for i in range(start, start + 5)]})
    first = ddb.scan(TableName=name)
    assert "LastEvaluatedKey" in first
    assert 10 <= first["Count"] <= 11
    rest = ddb.scan(TableName=name, ExclusiveStartKey=first["LastEvaluatedKey"])
    names = {i["pk"]["S"] for i in first["Items"]} | {i["pk"]["S"] for i in rest["Items"]}
    third = []
    if "LastEvaluatedKey" in rest:
        third = ddb.scan(TableName=name, ExclusiveStartKey=rest["LastEvaluatedKey"])["Items"]
    names |= {i["pk"]["S"] for i in third}
    assert len(names) == 25


def test_scan_segment_errors(raw: Any, numbers: str) -> None:
    with pytest.raises(ClientError) as info:
        raw.scan(TableName=numbers, Segment=3, TotalSegments=2)
    assert info.value.response["Error"]["Message"] == (
        "The Segment parameter is zero-based and must be less than parameter TotalSegments: "
        "Segment: 3 is not less than TotalSegments: 2")


def test_batch_get_and_write(ddb: Any) -> None:
    name = make_table(ddb, range_key=None)
    ddb.batch_write_item(RequestItems={name: [
        {"PutRequest": {"Item": {"pk": {"S": f"b{i}"}, "v": {"N": str(i)}}}} for i in range(20)]})
    keys = [{"pk": {"S": f"b{i}"}} for i in range(0, 25)]
    got = ddb.batch_get_item(RequestItems={name: {"Keys": keys, "ProjectionExpression": "v"}})
    assert sorted(int(i["v"]["N"]) for i in got["Responses"][name]) == list(range(20))
    assert got["UnprocessedKeys"] == {}
    ddb.batch_write_item(RequestItems={name: [
        {"DeleteRequest": {"Key": {"pk": {"S": f"b{i}"}}}} for i in range(10)]})
    assert ddb.scan(TableName=name, Select="COUNT")["Count"] == 10


def test_batch_limits_and_duplicates(raw: Any) -> None:
    name = make_table(raw, range_key=None)
    with pytest.raises(ClientError) as info:
        raw.batch_write_item(RequestItems={name: [
            {"PutRequest": {"Item": {"pk": {"S": f"x{i}"}}}} for i in range(26)]})
    assert info.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as info:
        raw.batch_write_item(RequestItems={name: [
            {"PutRequest": {"Item": {"pk": {"S": "same"}}}},
            {"DeleteRequest": {"Key": {"pk": {"S": "same"}}}}]})
    assert info.value.response["Error"]["Message"] == "Provided list of item keys contains duplicates"
    assert raw.scan(TableName=name)["Count"] == 0
    with pytest.raises(ClientError) as info:
        raw.batch_get_item(RequestItems={name: {"Keys": [{"pk": {"S": f"k{i}"}} for i in range(101)]}})
    # One table over 100 keys is a constraint on its Keys list (DynamoDB's words, issue 11)
    assert info.value.response["Error"]["Message"] == (
        f"1 validation error detected: Value at 'RequestItems.{name}.member.Keys' failed to "
        "satisfy constraint: Member must have length less than or equal to 100")
    other = make_table(raw, range_key=None)
    with pytest.raises(ClientError) as info:
        raw.batch_get_item(RequestItems={
            table: {"Keys": [{"pk": {"S": f"k{i}"}} for i in range(51)]} for table in (name, other)})
    assert info.value.response["Error"]["Message"] == "Too many items requested for the BatchGetItem call"


def test_query_begins_with_on_binary_edge_bytes(ddb: Any) -> None:
    name = make_table(ddb, range_key=("sk", "B"))
    values = [b"\x00", b"\x00\x00", b"\x00\x01", b"\x00\xff", b"\x01", b"\xff", b"\xff\x00",
              b"\xff\xff", b"\xff\xff\x01", b"\xfe\xff"]
    for value in values:
        ddb.put_item(TableName=name, Item={"pk": {"S": "x"}, "sk": {"B": value}})
    for prefix in (b"\x00", b"\xff", b"\xff\xff", b"\xfe", b"\x00\x00"):
        items = ddb.query(TableName=name, KeyConditionExpression="pk = :p AND begins_with(sk, :b)",
                          ExpressionAttributeValues={":p": {"S": "x"}, ":b": {"B": prefix}})["Items"]
        assert [i["sk"]["B"] for i in items] == sorted(v for v in values if v.startswith(prefix))


def test_batch_get_stops_at_16_megabytes(ddb: Any) -> None:
    name = make_table(ddb, range_key=None)
    blob = "z" * 390_000
    count = 45  # 45 x ~390 KB is about 17.5 MB: more than one BatchGetItem answer may hold
    for start in range(0, count, 5):
        ddb.batch_write_item(RequestItems={name: [
            {"PutRequest": {"Item": {"pk": {"S": f"big{i}"}, "v": {"S": blob}}}}
            for i in range(start, start + 5)]})
    keys = [{"pk": {"S": f"big{i}"}} for i in range(count)]
    got = ddb.batch_get_item(RequestItems={name: {"Keys": keys}})
    returned = {item["pk"]["S"] for item in got["Responses"][name]}
    unprocessed = got["UnprocessedKeys"][name]["Keys"]
    assert returned and unprocessed
    assert sum(len(item["v"]["S"]) for item in got["Responses"][name]) <= 16 * 1024 * 1024
    again = ddb.batch_get_item(RequestItems={name: {"Keys": unprocessed}})
    returned |= {item["pk"]["S"] for item in again["Responses"][name]}
    assert returned == {f"big{i}" for i in range(count)}


def test_batch_write_consumed_capacity(ddb: Any) -> None:
    name = make_table(ddb, range_key=None)
    ddb.put_item(TableName=name, Item={"pk": {"S": "old"}, "v": {"S": "x" * 3000}})
    result = ddb.batch_write_item(ReturnConsumedCapacity="TOTAL", RequestItems={name: [
        {"PutRequest": {"Item": {"pk": {"S": "old"}, "v": {"S": "y"}}}},   # larger old image: 3 units
        {"PutRequest": {"Item": {"pk": {"S": "new"}, "v": {"S": "z"}}}}]})  # 1 unit
    assert result["ConsumedCapacity"] == [{"TableName": name, "CapacityUnits": 4.0,
                                           "WriteCapacityUnits": 4.0}]
    assert "ConsumedCapacity" not in ddb.batch_write_item(RequestItems={name: [
        {"DeleteRequest": {"Key": {"pk": {"S": "new"}}}}]})
