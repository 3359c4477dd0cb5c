"""Results that differed from DynamoDB's (issue 11, section 2)."""
from __future__ import annotations

from typing import Any

import pytest

from tests.integration import raw_http
from tests.integration.conftest import make_table, unique_name
from tests.integration.server import ServerProcess


@pytest.fixture(scope="module")
def table(ddb: Any) -> str:
    return make_table(ddb, range_key=None)


def _item(ddb: Any, table: str, pk: str) -> Any:
    return ddb.get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")


@pytest.mark.parametrize("kwargs", [
    {"UpdateExpression": "REMOVE a"},
    {"UpdateExpression": "REMOVE a, b.c, l[3]"},
    {"UpdateExpression": "DELETE s :s", "ExpressionAttributeValues": {":s": {"SS": ["x"]}}},
    {"AttributeUpdates": {"a": {"Action": "DELETE"}}},
    {"AttributeUpdates": {"a": {"Action": "DELETE"}, "s": {"Action": "DELETE",
                                                            "Value": {"SS": ["x"]}}}},
], ids=["remove", "remove-nested", "delete-set", "legacy-delete", "legacy-delete-both"])
def test_removing_from_a_missing_item_creates_nothing(ddb: Any, table: str,
                                                      kwargs: dict) -> None:
    pk = unique_name("missing")
    answer = ddb.update_item(TableName=table, Key={"pk": {"S": pk}}, ReturnValues="ALL_NEW",
                             ReturnConsumedCapacity="TOTAL", **kwargs)
    assert "Attributes" not in answer
    assert answer["ConsumedCapacity"]["CapacityUnits"] == 1.0
    assert _item(ddb, table, pk) is None


def test_updates_that_set_something_still_create(ddb: Any, table: str) -> None:
    pk = unique_name("created")
    answer = ddb.update_item(TableName=table, Key={"pk": {"S": pk}}, AttributeUpdates={},
                             ReturnValues="ALL_NEW")
    assert answer["Attributes"] == {"pk": {"S": pk}}
    pk2 = unique_name("created")
    ddb.update_item(TableName=table, Key={"pk": {"S": pk2}}, UpdateExpression="SET b = :v REMOVE a",
                    ExpressionAttributeValues={":v": {"N": "1"}})
    assert _item(ddb, table, pk2) == {"pk": {"S": pk2}, "b": {"N": "1"}}


def test_list_appends_go_in_ascending_index_order(ddb: Any, table: str) -> None:
    pk = unique_name("list")
    start = [{"N": str(i)} for i in range(4)]
    ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "a": {"L": start}})
    ddb.update_item(TableName=table, Key={"pk": {"S": pk}},
                    UpdateExpression="SET a[84] = :v1, a[37] = :v2, a[17] = :v3, a[50] = :v4",
                    ExpressionAttributeValues={f":v{i}": {"S": f"v{i}"} for i in range(1, 5)})
    assert _item(ddb, table, pk)["a"]["L"] == start + [{"S": "v3"}, {"S": "v2"}, {"S": "v4"},
                                                       {"S": "v1"}]


def test_key_conditions_with_filter_and_projection_expressions(ddb: Any) -> None:
    name = make_table(ddb)
    for sk in ("1", "2", "3"):
        ddb.put_item(TableName=name, Item={"pk": {"S": "p"}, "sk": {"S": sk}, "n": {"N": sk}})
    answer = ddb.query(TableName=name, KeyConditions={
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "p"}]}},
        FilterExpression="n >= :two", ProjectionExpression="sk",
        ExpressionAttributeValues={":two": {"N": "2"}})
    assert answer["Items"] == [{"sk": {"S": "2"}}, {"sk": {"S": "3"}}]
    with pytest.raises(ddb.exceptions.ClientError) as info:
        ddb.query(TableName=name, KeyConditionExpression="pk = :p",
                  KeyConditions={"pk": {"ComparisonOperator": "EQ",
                                        "AttributeValueList": [{"S": "p"}]}},
                  ExpressionAttributeValues={":p": {"S": "p"}})
    assert info.value.response["Error"]["Message"] == (
        "Can not use both expression and non-expression parameters in the same request: "
        "Non-expression parameters: {KeyConditions} Expression parameters: "
        "{KeyConditionExpression}")


@pytest.mark.parametrize("condition,values,holds", [
    ("size(:x) >= :n", {":x": {"S": "abc"}, ":n": {"N": "3"}}, True),
    ("size(:x) > :n", {":x": {"L": [{"S": "a"}]}, ":n": {"N": "1"}}, False),
    ("begins_with(:s, a)", {":s": {"S": "prefix-and-more"}}, True),
    ("begins_with(:s, a)", {":s": {"S": "other"}}, False),
    ("attribute_type(:v, :t)", {":v": {"SS": ["x"]}, ":t": {"S": "SS"}}, True),
    ("attribute_type(:v, :t)", {":v": {"SS": ["x"]}, ":t": {"S": "S"}}, False),
    ("contains(:v, a)", {":v": {"SS": ["prefix", "z"]}}, True),
    ("contains(:v, a)", {":v": {"S": "no"}}, False),
])
def test_a_value_may_be_the_first_operand(ddb: Any, table: str, condition: str, values: dict,
                                          holds: bool) -> None:
    pk = unique_name("first")
    ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "a": {"S": "prefix"}})
    found = ddb.scan(TableName=table, FilterExpression=f"pk = :pk AND {condition}",
                     ExpressionAttributeValues={**values, ":pk": {"S": pk}}, ConsistentRead=True)
    assert found["Count"] == (1 if holds else 0)


def test_tag_and_untag_answer_with_an_empty_body(server: ServerProcess, ddb: Any,
                                                 table: str) -> None:
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    tagged = raw_http.call(server.port, "TagResource",
                           {"ResourceArn": arn, "Tags": [{"Key": "k", "Value": "v"}]})
    assert tagged.status == 200 and tagged.body == b""
    untagged = raw_http.call(server.port, "UntagResource", {"ResourceArn": arn, "TagKeys": ["k"]})
    assert untagged.status == 200 and untagged.body == b""
    assert ddb.list_tags_of_resource(ResourceArn=arn)["Tags"] == []


@pytest.mark.parametrize("billing", ["PAY_PER_REQUEST", "PROVISIONED"])
def test_delete_table_description(ddb: Any, billing: str) -> None:
    name = unique_name("doomed")
    extra = {"BillingMode": "PAY_PER_REQUEST"} if billing == "PAY_PER_REQUEST" else \
        {"ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 4}}
    created = ddb.create_table(
        TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        **extra)["TableDescription"]
    description = ddb.delete_table(TableName=name)["TableDescription"]
    assert set(description) == {"TableName", "TableStatus", "TableId", "TableArn",
                                "BillingModeSummary", "ProvisionedThroughput"}
    assert description["TableStatus"] == "DELETING"
    assert description["TableId"] == created["TableId"]
    assert description["TableArn"] == created["TableArn"]
    assert description["BillingModeSummary"]["BillingMode"] == billing
    units = (0, 0) if billing == "PAY_PER_REQUEST" else (3, 4)
    assert description["ProvisionedThroughput"] == {
        "NumberOfDecreasesToday": 0, "ReadCapacityUnits": units[0],
        "WriteCapacityUnits": units[1]}
