"""Validation DynamoDB does that triplica skipped (issue 11, section 3).

Every case is a ValidationException with HTTP 400 that changes nothing.
"""
from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_table, unique_name

KEY = {"pk": {"S": "k"}, "sk": {"N": "1"}}
ITEM = {**KEY, "a": {"N": "5"}, "b": {"L": [{"S": "x"}]}, "m": {"M": {"x": {"S": "y"}}}}


@pytest.fixture(scope="module")
def table(ddb: Any) -> str:
    name = make_table(ddb, range_key=("sk", "N"))
    ddb.put_item(TableName=name, Item=ITEM)
    return name


def _refused(call: Any, message: str | None = None, contains: str | None = None) -> str:
    with pytest.raises(ClientError) as info:
        call()
    response = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["Code"] == "ValidationException", response["Error"]
    text = response["Error"]["Message"]
    if message is not None:
        assert text == message
    if contains is not None:
        assert contains in text, text
    return text


def _unchanged(ddb: Any, table: str) -> None:
    assert ddb.scan(TableName=table, ConsistentRead=True)["Items"] == [ITEM]


def _put_if(ddb: Any, table: str, condition: str, values: dict) -> Any:
    return lambda: ddb.put_item(TableName=table, Item={**KEY, "new": {"S": "x"}},
                                ConditionExpression=condition,
                                ExpressionAttributeValues=values)


LIST = {"L": [{"N": "1"}]}


@pytest.mark.parametrize("condition,values,message", [
    ("a < :v", {":v": LIST}, "Invalid ConditionExpression: Incorrect operand type for operator "
     "or function; operator or function: <, operand type: LIST"),
    (":v >= a", {":v": {"M": {}}}, "Invalid ConditionExpression: Incorrect operand type for "
     "operator or function; operator or function: >=, operand type: MAP"),
    ("a BETWEEN :lo AND :hi", {":lo": LIST, ":hi": LIST}, "Invalid ConditionExpression: "
     "Incorrect operand type for operator or function; operator or function: BETWEEN, operand "
     "type: LIST"),
    ("a BETWEEN :lo AND :hi", {":lo": {"N": "1"}, ":hi": {"S": "9"}}, "Invalid "
     "ConditionExpression: The BETWEEN operator requires same data type for lower and upper "
     "bounds; lower bound operand: AttributeValue: {N:1}, upper bound operand: AttributeValue: "
     "{S:9}"),
])
def test_unorderable_comparison_values(ddb: Any, table: str, condition: str, values: dict,
                                       message: str) -> None:
    _refused(_put_if(ddb, table, condition, values), message)
    _unchanged(ddb, table)


def test_attribute_type_needs_a_value_even_when_nothing_matches(ddb: Any, table: str) -> None:
    message = ("Invalid FilterExpression: Operator or function requires an expression attribute "
               "value; operator or function: attribute_type")
    _refused(lambda: ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                               FilterExpression="attribute_type(a, b)",
                               ExpressionAttributeValues={":p": {"S": "no-such-key"}}), message)
    _refused(lambda: ddb.scan(TableName=table, FilterExpression="attribute_type(a, b)"),
             message)


MIXED = "One or more parameter values were invalid: AttributeValues inside AttributeValueList " \
        "must be of same type"


def test_legacy_in_with_mixed_types(ddb: Any, table: str) -> None:
    mixed = {"ComparisonOperator": "IN", "AttributeValueList": [{"N": "1"}, {"S": "1"}]}
    _refused(lambda: ddb.scan(TableName=table, ScanFilter={"a": mixed}), MIXED)
    _refused(lambda: ddb.put_item(TableName=table, Item={**KEY, "new": {"S": "x"}},
                                  Expected={"a": mixed}), MIXED)
    _unchanged(ddb, table)


CONDITIONAL = ("One or more parameter values were invalid: ConditionalOperator can only be used "
               "when Filter or Expected has two or more elements")


def test_conditional_operator_without_conditions(raw: Any, table: str) -> None:
    _refused(lambda: raw.put_item(TableName=table, Item={**KEY, "new": {"S": "x"}},
                                  ConditionalOperator="OR"), CONDITIONAL)
    _refused(lambda: raw.put_item(TableName=table, Item={**KEY, "new": {"S": "x"}},
                                  ConditionalOperator="AND", Expected={}), CONDITIONAL)
    _refused(lambda: raw.scan(TableName=table, ConditionalOperator="OR"), CONDITIONAL)
    _refused(lambda: raw.query(TableName=table, ConditionalOperator="OR", KeyConditions={
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "k"}]}}), CONDITIONAL)
    _unchanged(raw, table)


EMPTY_LIST = ("1 validation error detected: Value '[]' at 'attributesToGet' failed to satisfy "
              "constraint: Member must have length greater than or equal to 1")


def test_empty_attributes_to_get(raw: Any, table: str) -> None:
    _refused(lambda: raw.get_item(TableName=table, Key=KEY, AttributesToGet=[]), EMPTY_LIST)
    _refused(lambda: raw.query(TableName=table, AttributesToGet=[], KeyConditions={
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "k"}]}}), EMPTY_LIST)


def test_begins_with_a_number_in_a_key_condition(ddb: Any, table: str) -> None:
    _refused(lambda: ddb.query(TableName=table, KeyConditionExpression="pk = :p AND "
                               "begins_with(sk, :c)",
                               ExpressionAttributeValues={":p": {"S": "k"}, ":c": {"N": "1"}}),
             "Invalid KeyConditionExpression: Incorrect operand type for operator or function; "
             "operator or function: begins_with, operand type: NUMBER")


LONG = "n" * 65536
LONGEST = "n" * 65535
TOO_LONG = "exceeds the maximum size of 65535 bytes"
EMPTY = "Empty attribute name is not allowed"


@pytest.mark.parametrize("name,fragment", [(LONG, TOO_LONG), ("", EMPTY)], ids=["long", "empty"])
def test_attribute_name_limits(raw: Any, table: str, name: str, fragment: str) -> None:
    _refused(lambda: raw.put_item(TableName=table, Item={**KEY, name: {"S": "x"}}),
             contains=fragment)
    _refused(lambda: raw.update_item(TableName=table, Key=KEY, UpdateExpression="SET #n = :v",
                                     ExpressionAttributeNames={"#n": name},
                                     ExpressionAttributeValues={":v": {"S": "x"}}),
             contains=fragment)
    _refused(lambda: raw.get_item(TableName=table, Key=KEY, AttributesToGet=[name]),
             contains=fragment)
    _refused(lambda: raw.update_item(TableName=table, Key=KEY, AttributeUpdates={
        name: {"Action": "PUT", "Value": {"S": "x"}}}), contains=fragment)
    _unchanged(raw, table)


def test_longest_attribute_name_is_fine(ddb: Any) -> None:
    name = make_table(ddb, range_key=None)
    key = {"pk": {"S": "long"}}
    ddb.put_item(TableName=name, Item={**key, LONGEST: {"S": "x"}})
    ddb.update_item(TableName=name, Key=key, UpdateExpression="SET #n = :v",
                    ExpressionAttributeNames={"#n": LONGEST},
                    ExpressionAttributeValues={":v": {"S": "y"}})
    assert ddb.get_item(TableName=name, Key=key, AttributesToGet=[LONGEST])["Item"] == \
        {LONGEST: {"S": "y"}}


def test_list_index_out_of_range(ddb: Any, table: str) -> None:
    _refused(lambda: ddb.get_item(TableName=table, Key=KEY,
                                  ProjectionExpression="a[99999999999999]"),
             "Invalid ProjectionExpression: List index is not within the allowable range; "
             "index: 99999999999999")


def test_name_starting_with_underscore(ddb: Any, table: str) -> None:
    _refused(lambda: ddb.update_item(TableName=table, Key=KEY, UpdateExpression="SET _123 = :v",
                                     ExpressionAttributeValues={":v": {"S": "x"}}),
             'Invalid UpdateExpression: Syntax error; token: "_", near: "SET _123"')


@pytest.mark.parametrize("expression", ["REMOVE c.c", "REMOVE z[0]", "REMOVE m.x.y",
                                        "SET a = :v REMOVE c.c"])
def test_remove_below_a_missing_attribute(ddb: Any, table: str, expression: str) -> None:
    values = {"ExpressionAttributeValues": {":v": {"N": "9"}}} if ":v" in expression else {}
    _refused(lambda: ddb.update_item(TableName=table, Key=KEY, UpdateExpression=expression,
                                     **values),
             "The document path provided in the update expression is invalid for update")
    _unchanged(ddb, table)


def test_parallel_scan_start_key_outside_its_segment(ddb: Any) -> None:
    name = make_table(ddb, range_key=None)
    for i in range(40):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"p{i}"}})
    first = ddb.scan(TableName=name, Segment=0, TotalSegments=4, Limit=1)
    start = first["LastEvaluatedKey"]
    assert ddb.scan(TableName=name, Segment=0, TotalSegments=4, ExclusiveStartKey=start)
    _refused(lambda: ddb.scan(TableName=name, Segment=3, TotalSegments=4,
                              ExclusiveStartKey=start),
             "The provided Exclusive start key does not map to the provided segment")


PATTERN = r"Member must satisfy regular expression pattern: [\p{L}\p{Z}\p{N}_.:/=+\-@]*"


@pytest.mark.parametrize("tag,path", [
    ({"Key": "a!", "Value": "v"}, "tags.1.member.key"),
    ({"Key": "k", "Value": "50%"}, "tags.1.member.value"),
    ({"Key": 'say"', "Value": "v"}, "tags.1.member.key"),
])
def test_tag_characters(ddb: Any, table: str, tag: dict, path: str) -> None:
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    bad = tag["Key"] if path.endswith("key") else tag["Value"]
    _refused(lambda: ddb.tag_resource(ResourceArn=arn, Tags=[tag]),
             f"1 validation error detected: Value '{bad}' at '{path}' failed to satisfy "
             f"constraint: {PATTERN}")
    name = unique_name("tagged")
    _refused(lambda: ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST", Tags=[tag],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}]), contains=PATTERN)
    assert name not in ddb.list_tables()["TableNames"]
    assert ddb.list_tags_of_resource(ResourceArn=arn)["Tags"] == []
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "ok key_1.:/=+-@", "Value": "é 2"}])
    ddb.untag_resource(ResourceArn=arn, TagKeys=["ok key_1.:/=+-@"])


def test_tag_counts(ddb: Any, table: str) -> None:
    name = unique_name("many-tags")
    _refused(lambda: ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}]),
        "One or more parameter values were invalid: The number of tags exceeds the limit of 50")
    assert name not in ddb.list_tables()["TableNames"]
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    _refused(lambda: ddb.tag_resource(ResourceArn=arn, Tags=[]),
             "Atleast one Tag needs to be provided as Input.")


UNCHANGED = ("The provisioned throughput for the table will not change. The requested value "
             "equals the current value. Current ReadCapacityUnits provisioned for the table: 5. "
             "Requested ReadCapacityUnits: 5. Current WriteCapacityUnits provisioned for the "
             "table: 6. Requested WriteCapacityUnits: 6. Refer to the Amazon DynamoDB Developer "
             "Guide for current limits and how to request higher limits.")


def test_update_table_that_changes_nothing(ddb: Any) -> None:
    name = unique_name("steady")
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 6})
    same = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 6}
    _refused(lambda: ddb.update_table(TableName=name, ProvisionedThroughput=same), UNCHANGED)
    _refused(lambda: ddb.update_table(TableName=name, BillingMode="PROVISIONED",
                                      ProvisionedThroughput=same), UNCHANGED)
    _refused(lambda: ddb.update_table(TableName=name, BillingMode="PROVISIONED"), UNCHANGED)
    _refused(lambda: ddb.update_table(TableName=name, ProvisionedThroughput=same,
                                      DeletionProtectionEnabled=False), UNCHANGED)
    changed = ddb.update_table(TableName=name, ProvisionedThroughput=same,
                               DeletionProtectionEnabled=True)["TableDescription"]
    assert changed["DeletionProtectionEnabled"] is True
    ddb.update_table(TableName=name, DeletionProtectionEnabled=False)
    described = ddb.describe_table(TableName=name)["Table"]["ProvisionedThroughput"]
    assert (described["ReadCapacityUnits"], described["WriteCapacityUnits"]) == (5, 6)
