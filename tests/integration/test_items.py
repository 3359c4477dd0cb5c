"""Single-item operations through boto3 against a real server."""
from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_table


@pytest.fixture(scope="module")
def table(ddb: Any) -> str:
    return make_table(ddb)


@pytest.fixture(scope="module")
def simple(ddb: Any) -> str:
    return make_table(ddb, range_key=None)


def error_of(call: Any, **kwargs: Any) -> ClientError:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value


def code_message(error: ClientError) -> tuple[str, str]:
    return error.response["Error"]["Code"], error.response["Error"]["Message"]


def key(pk: str, sk: str = "s") -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def test_put_get_round_trip_all_types(ddb: Any, table: str) -> None:
    item = {**key("types"), "s": {"S": ""}, "n": {"N": "12345678901234567890123456789012345678"},
            "b": {"B": b"\x00\x01"}, "t": {"BOOL": True}, "z": {"NULL": True},
            "m": {"M": {"x": {"L": [{"N": "1"}, {"S": "a"}]}}},
            "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": [b"x", b"y"]}}
    ddb.put_item(TableName=table, Item=item)
    got = ddb.get_item(TableName=table, Key=key("types"), ConsistentRead=True)["Item"]
    assert got["n"] == {"N": "12345678901234567890123456789012345678"}
    assert got["b"] == {"B": b"\x00\x01"}
    assert got["m"] == item["m"]
    assert sorted(got["ns"]["NS"]) == ["1", "2.5"]
    assert set(got["bs"]["BS"]) == {b"x", b"y"}
    assert got["s"] == {"S": ""}


def test_numbers_are_normalized(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key("num"), "a": {"N": "001.500"}, "b": {"N": "1e3"},
                                        "c": {"N": "-0.0"}})
    got = ddb.get_item(TableName=table, Key=key("num"))["Item"]
    assert (got["a"], got["b"], got["c"]) == ({"N": "1.5"}, {"N": "1000"}, {"N": "0"})


def test_get_missing_item_returns_no_item(ddb: Any, table: str) -> None:
    assert "Item" not in ddb.get_item(TableName=table, Key=key("absent"))


def test_projection(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key("proj"), "a": {"M": {"b": {"L": [{"N": "1"},
                                        {"N": "2"}]}, "c": {"S": "x"}}}, "d": {"S": "y"}})
    got = ddb.get_item(TableName=table, Key=key("proj"), ProjectionExpression="a.b[1], #d",
                       ExpressionAttributeNames={"#d": "d"})["Item"]
    assert got == {"a": {"M": {"b": {"L": [{"N": "2"}]}}}, "d": {"S": "y"}}
    got = ddb.get_item(TableName=table, Key=key("proj"), AttributesToGet=["d"])["Item"]
    assert got == {"d": {"S": "y"}}


def test_conditional_put_and_return_values(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key("cond"), "v": {"N": "1"}})
    error = error_of(ddb.put_item, TableName=table, Item={**key("cond"), "v": {"N": "2"}},
                     ConditionExpression="attribute_not_exists(pk)",
                     ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert code_message(error) == ("ConditionalCheckFailedException",
                                   "The conditional request failed")
    assert error.response["Item"]["v"] == {"N": "1"}
    old = ddb.put_item(TableName=table, Item={**key("cond"), "v": {"N": "3"}},
                       ConditionExpression="v = :one",
                       ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="ALL_OLD")
    assert old["Attributes"]["v"] == {"N": "1"}
    assert ddb.get_item(TableName=table, Key=key("cond"))["Item"]["v"] == {"N": "3"}


def test_update_expression_all_clauses(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key("upd"), "n": {"N": "5"}, "l": {"L": [{"S": "a"},
                                        {"S": "b"}, {"S": "c"}]}, "s": {"SS": ["x", "y"]},
                                        "gone": {"S": "bye"}})
    result = ddb.update_item(
        TableName=table, Key=key("upd"),
        UpdateExpression="SET n = n + :d, m = if_not_exists(m, :z), l2 = list_append(l, :more) "
                         "REMOVE gone, l[0] ADD c :d, s2 :add DELETE s :del",
        ExpressionAttributeValues={":d": {"N": "2"}, ":z": {"N": "0"}, ":more": {"L": [{"S": "d"}]},
                                   ":add": {"SS": ["z"]}, ":del": {"SS": ["x"]}},
        ReturnValues="ALL_NEW")["Attributes"]
    assert result["n"] == {"N": "7"}
    assert result["m"] == {"N": "0"}
    assert result["c"] == {"N": "2"}
    assert "gone" not in result
    assert set(result["s"]["SS"]) == {"y"}
    assert set(result["s2"]["SS"]) == {"z"}
    assert result["l"]["L"] == [{"S": "b"}, {"S": "c"}]
    assert result["l2"]["L"] == [{"S": "a"}, {"S": "b"}, {"S": "c"}, {"S": "d"}]


def test_update_creates_item_and_updated_return_values(ddb: Any, table: str) -> None:
    result = ddb.update_item(TableName=table, Key=key("fresh"), UpdateExpression="SET a = :a",
                             ExpressionAttributeValues={":a": {"S": "x"}},
                             ReturnValues="UPDATED_NEW")
    assert result["Attributes"] == {"a": {"S": "x"}}
    result = ddb.update_item(TableName=table, Key=key("fresh"), UpdateExpression="SET a = :b",
                             ExpressionAttributeValues={":b": {"S": "y"}},
                             ReturnValues="UPDATED_OLD")
    assert result["Attributes"] == {"a": {"S": "x"}}
    item = ddb.get_item(TableName=table, Key=key("fresh"))["Item"]
    assert item == {**key("fresh"), "a": {"S": "y"}}


def test_update_key_attribute_is_rejected(ddb: Any, table: str) -> None:
    error = error_of(ddb.update_item, TableName=table, Key=key("k"), UpdateExpression="SET sk = :v",
                     ExpressionAttributeValues={":v": {"S": "x"}})
    assert code_message(error) == (
        "ValidationException", "One or more parameter values were invalid: Cannot update "
        "attribute sk. This attribute is part of the key")


def test_update_errors_change_nothing(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key("atomic"), "a": {"S": "text"}, "b": {"N": "1"}})
    error = error_of(ddb.update_item, TableName=table, Key=key("atomic"),
                     UpdateExpression="SET b = :two, a = a + :one",
                     ExpressionAttributeValues={":one": {"N": "1"}, ":two": {"N": "2"}})
    assert code_message(error)[0] == "ValidationException"
    assert ddb.get_item(TableName=table, Key=key("atomic"))["Item"]["b"] == {"N": "1"}


def test_delete_item_with_condition(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key("del"), "v": {"N": "1"}})
    error = error_of(ddb.delete_item, TableName=table, Key=key("del"),
                     ConditionExpression="v > :x", ExpressionAttributeValues={":x": {"N": "5"}})
    assert code_message(error)[0] == "ConditionalCheckFailedException"
    old = ddb.delete_item(TableName=table, Key=key("del"), ReturnValues="ALL_OLD")
    assert old["Attributes"]["v"] == {"N": "1"}
    assert "Item" not in ddb.get_item(TableName=table, Key=key("del"))


def test_legacy_expected_and_attribute_updates(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key("legacy"), "v": {"N": "1"}})
    ddb.update_item(TableName=table, Key=key("legacy"),
                    AttributeUpdates={"v": {"Action": "ADD", "Value": {"N": "4"}},
                                      "w": {"Action": "PUT", "Value": {"S": "hi"}}},
                    Expected={"v": {"Value": {"N": "1"}}})
    item = ddb.get_item(TableName=table, Key=key("legacy"))["Item"]
    assert item["v"] == {"N": "5"} and item["w"] == {"S": "hi"}
    error = error_of(ddb.put_item, TableName=table, Item=key("legacy"),
                     Expected={"v": {"ComparisonOperator": "LT",
                                     "AttributeValueList": [{"N": "3"}]}})
    assert code_message(error)[0] == "ConditionalCheckFailedException"


def test_consumed_capacity(ddb: Any, simple: str) -> None:
    big = "x" * 5000
    put = ddb.put_item(TableName=simple, Item={"pk": {"S": "cap"}, "v": {"S": big}},
                       ReturnConsumedCapacity="TOTAL")
    assert put["ConsumedCapacity"] == {"TableName": simple, "CapacityUnits": 5.0,
                                       "WriteCapacityUnits": 5.0}
    get = ddb.get_item(TableName=simple, Key={"pk": {"S": "cap"}}, ReturnConsumedCapacity="TOTAL")
    assert get["ConsumedCapacity"]["CapacityUnits"] == 1.0
    get = ddb.get_item(TableName=simple, Key={"pk": {"S": "cap"}}, ConsistentRead=True,
                       ReturnConsumedCapacity="INDEXES")
    assert get["ConsumedCapacity"]["CapacityUnits"] == 2.0
    assert get["ConsumedCapacity"]["Table"]["CapacityUnits"] == 2.0


@pytest.mark.parametrize("item,message", [
    ({"sk": {"S": "x"}}, "One or more parameter values were invalid: Missing the key pk in the item"),
    ({"pk": {"N": "1"}, "sk": {"S": "x"}},
     "One or more parameter values were invalid: Type mismatch for key pk expected: S actual: N"),
    ({"pk": {"S": ""}, "sk": {"S": "x"}}, "One or more parameter values are not valid. The "
     "AttributeValue for a key attribute cannot contain an empty string value. Key: pk"),
    ({"pk": {"S": "a"}, "sk": {"S": "x"}, "s": {"SS": []}},
     "One or more parameter values were invalid: An string set  may not be empty"),
    ({"pk": {"S": "a"}, "sk": {"S": "x"}, "s": {"SS": ["a", "a"]}},
     "One or more parameter values were invalid: Input collection [a, a] contains duplicates."),
    ({"pk": {"S": "a"}, "sk": {"S": "x"}, "n": {"N": "abc"}},
     "The parameter cannot be converted to a numeric value: abc"),
    ({"pk": {"S": "a"}, "sk": {"S": "x"}, "n": {"N": "1" * 39}},
     "Attempting to store more than 38 significant digits in a Number"),
    ({"pk": {"S": "a"}, "sk": {"S": "x"}, "n": {"N": "1e126"}},
     "Number overflow. Attempting to store a number with magnitude larger than supported range"),
    ({"pk": {"S": "a"}, "sk": {"S": "x"}, "big": {"S": "x" * 410000}},
     "Item size has exceeded the maximum allowed size"),
    ({"pk": {"S": "a" * 2049}, "sk": {"S": "x"}}, "One or more parameter values were invalid: "
     "Size of hashkey has exceeded the maximum size limit of2048 bytes"),
    ({"pk": {"S": "a"}, "sk": {"S": "x" * 1025}}, "One or more parameter values were invalid: "
     "Aggregated size of all range keys has exceeded the size limit of 1024 bytes"),
])
def test_put_validation_errors(raw: Any, table: str, item: dict, message: str) -> None:
    error = error_of(raw.put_item, TableName=table, Item=item)
    assert code_message(error) == ("ValidationException", message)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_key_must_match_schema(raw: Any, table: str) -> None:
    for bad in ({"pk": {"S": "a"}}, {**key("a"), "extra": {"S": "x"}},
                {"pk": {"S": "a"}, "sk": {"N": "1"}}):
        error = error_of(raw.get_item, TableName=table, Key=bad)
        assert code_message(error) == ("ValidationException",
                                       "The provided key element does not match the schema")


def test_item_on_missing_table(ddb: Any) -> None:
    error = error_of(ddb.get_item, TableName="missing-table", Key={"pk": {"S": "a"}})
    assert code_message(error) == ("ResourceNotFoundException", "Requested resource not found")


def test_expression_attribute_errors(raw: Any, table: str) -> None:
    error = error_of(raw.put_item, TableName=table, Item=key("e"), ConditionExpression="a = :a",
                     ExpressionAttributeValues={":a": {"S": "x"}, ":unused": {"S": "y"}})
    assert code_message(error) == ("ValidationException", "Value provided in "
                                   "ExpressionAttributeValues unused in expressions: keys: {:unused}")
    error = error_of(raw.put_item, TableName=table, Item=key("e"), ConditionExpression="#a = :a",
                     ExpressionAttributeValues={":a": {"S": "x"}})
    assert code_message(error) == ("ValidationException", "Invalid ConditionExpression: An "
                                   "expression attribute name used in the document path is not "
                                   "defined; attribute name: #a")
    error = error_of(raw.put_item, TableName=table, Item=key("e"), ConditionExpression="name = :a",
                     ExpressionAttributeValues={":a": {"S": "x"}})
    assert code_message(error) == ("ValidationException", "Invalid ConditionExpression: Attribute "
                                   "name is a reserved keyword; reserved keyword: name")
    error = error_of(raw.put_item, TableName=table, Item=key("e"),
                     ExpressionAttributeValues={":a": {"S": "x"}})
    assert code_message(error) == ("ValidationException", "ExpressionAttributeValues can only be "
                                   "specified when using expressions: ConditionExpression is null")
    error = error_of(raw.put_item, TableName=table, Item=key("e"), ConditionExpression="a = :a",
                     Expected={"a": {"Exists": False}}, ExpressionAttributeValues={":a": {"S": "x"}})
    assert code_message(error)[0] == "ValidationException"
    assert "Can not use both expression and non-expression parameters" in code_message(error)[1]


def test_updated_new_returns_nested_paths_only(ddb: Any, table: str) -> None:
    ddb.put_item(TableName=table, Item={**key("nested"), "m": {"M": {"a": {"N": "1"},
                                        "b": {"N": "2"}}}, "other": {"S": "x"}})
    result = ddb.update_item(TableName=table, Key=key("nested"), UpdateExpression="SET m.a = :v",
                             ExpressionAttributeValues={":v": {"N": "9"}},
                             ReturnValues="UPDATED_NEW")
    assert result["Attributes"] == {"m": {"M": {"a": {"N": "9"}}}}


def test_update_beyond_item_size_changes_nothing(raw: Any, table: str) -> None:
    raw.put_item(TableName=table, Item={**key("grow"), "a": {"S": "x" * 300_000}})
    error = error_of(raw.update_item, TableName=table, Key=key("grow"), UpdateExpression="SET b = :b",
                     ExpressionAttributeValues={":b": {"S": "y" * 150_000}})
    assert code_message(error) == ("ValidationException",
                                   "Item size to update has exceeded the maximum allowed size")
    assert "b" not in raw.get_item(TableName=table, Key=key("grow"))["Item"]


def test_table_size_tracks_updates_exactly(ddb: Any) -> None:
    from triplica.model.size import item_size_bytes
    name = make_table(ddb)
    ddb.put_item(TableName=name, Item={**key("sz"), "a": {"S": "abc"}, "l": {"L": [{"N": "1"}]},
                                       "m": {"M": {"x": {"S": "y"}}}})
    for expression, values in [
            ("SET a = :s, b = :n", {":s": {"S": "a much longer string"}, ":n": {"N": "12345.678"}}),
            ("REMOVE l[0] SET m.z = :n", {":n": {"N": "1"}}),
            ("ADD s :ss", {":ss": {"SS": ["p", "q"]}}),
            ("DELETE s :ss REMOVE a", {":ss": {"SS": ["p"]}}),
            ("SET l = list_append(l, :l)", {":l": {"L": [{"S": "x" * 100}]}})]:
        ddb.update_item(TableName=name, Key=key("sz"), UpdateExpression=expression,
                        ExpressionAttributeValues=values)
    ddb.update_item(TableName=name, Key=key("new"), UpdateExpression="SET q = :q",
                    ExpressionAttributeValues={":q": {"BOOL": True}})
    items = ddb.scan(TableName=name)["Items"]  # no binary values: wire form as returned
    expected = sum(item_size_bytes(item) for item in items)
    assert ddb.describe_table(TableName=name)["Table"]["TableSizeBytes"] == expected
