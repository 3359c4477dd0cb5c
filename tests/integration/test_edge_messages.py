"""Error types and texts DynamoDB uses (issue 11, section 4)."""
from __future__ import annotations

import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration import raw_http
from tests.integration.conftest import make_table, unique_name
from tests.integration.server import ServerProcess


@pytest.fixture(scope="module")
def table(ddb: Any) -> str:
    name = make_table(ddb, range_key=None)
    ddb.put_item(TableName=name, Item={"pk": {"S": "k"}, "n": {"N": "1e50"},
                                       "s": {"SS": ["a"]}})
    return name


def _error(call: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call()
    response = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return response["Error"]["Code"], response["Error"]["Message"]


def _validation(call: Any) -> str:
    code, message = _error(call)
    assert code == "ValidationException", message
    assert "{'" not in message and "None" not in message and "True" not in message, message
    return message


@pytest.mark.parametrize("operation", ["BatchGetItem", "BatchWriteItem"])
def test_empty_request_items(raw: Any, operation: str) -> None:
    call = getattr(raw, "batch_get_item" if operation == "BatchGetItem" else "batch_write_item")
    assert _validation(lambda: call(RequestItems={})) == \
        f"The requestItems parameter is required for {operation}"


def test_batch_write_over_25_echoes_the_map_in_java_text(raw: Any, table: str) -> None:
    writes = [{"PutRequest": {"Item": {"pk": {"S": f"x{i}"}}}} for i in range(26)]
    message = _validation(lambda: raw.batch_write_item(RequestItems={table: writes}))
    java_object = r"com\.amazonaws\.dynamodb\.v20120810\.WriteRequest@[0-9a-f]+"
    assert re.fullmatch(
        rf"1 validation error detected: Value '\{{{re.escape(table)}=\[{java_object}"
        rf"(, {java_object}){{25}}\]\}}' at 'requestItems' failed to satisfy constraint: Map "
        r"value must satisfy constraint: \[Member must have length less than or equal to 25, "
        r"Member must have length greater than or equal to 1\]", message), message


def test_key_schema_echoed_in_java_text(raw: Any) -> None:
    schema = [{"AttributeName": name, "KeyType": kind}
              for name, kind in (("a", "HASH"), ("b", "RANGE"), ("c", "RANGE"))]
    message = _validation(lambda: raw.create_table(
        TableName=unique_name("three-keys"), KeySchema=schema, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in "abc"]))
    assert message == (
        "1 validation error detected: Value '[KeySchemaElement(attributeName=a, keyType=HASH), "
        "KeySchemaElement(attributeName=b, keyType=RANGE), KeySchemaElement(attributeName=c, "
        "keyType=RANGE)]' at 'keySchema' failed to satisfy constraint: Member must have length "
        "less than or equal to 2")


HASH_PK = [{"AttributeName": "pk", "KeyType": "HASH"}]


def test_create_table_messages(raw: Any) -> None:
    assert _validation(lambda: raw.create_table(
        KeySchema=HASH_PK, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])) == \
        "The parameter 'TableName' is required but was not present in the request"
    long_name = "x" * 256
    assert _validation(lambda: raw.create_table(
        TableName=unique_name("long-key"), KeySchema=HASH_PK, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": long_name, "AttributeType": "S"}])) == (
        f"1 validation error detected: Value '{long_name}' at "
        "'attributeDefinitions.1.member.attributeName' failed to satisfy constraint: Member must "
        "have length less than or equal to 255")
    message = _validation(lambda: raw.create_table(
        TableName=unique_name("twice"), KeySchema=HASH_PK, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "pk", "AttributeType": "N"}]))
    assert "Duplicate" in message and message.endswith(": pk")


def test_empty_table_name_is_one_error(raw: Any) -> None:
    assert _validation(lambda: raw.put_item(TableName="", Item={"pk": {"S": "k"}})) == (
        "1 validation error detected: Value '' at 'tableName' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1")


def test_query_messages(raw: Any, table: str) -> None:
    key = {":p": {"S": "k"}}
    message = _validation(lambda: raw.query(TableName=table, KeyConditionExpression="pk = :p",
                                            ExpressionAttributeValues=key, Select="ALL"))
    assert message.endswith("Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, "
                            "ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]")
    assert _validation(lambda: raw.query(TableName=table, KeyConditionExpression="pk = :p",
                                         ExpressionAttributeValues=key, Limit=0)) == (
        "1 validation error detected: Value at 'Limit' failed to satisfy constraint: Member must "
        "have value greater than or equal to 1")
    message = _validation(lambda: raw.query(TableName=table, KeyConditionExpression="pk.x = :p",
                                            ExpressionAttributeValues=key))
    assert message.startswith("Invalid KeyConditionExpression: ") and "nested" in message
    message = _validation(lambda: raw.query(TableName=table, KeyConditions={
        "pk": {"ComparisonOperator": "eq", "AttributeValueList": [{"S": "k"}]}}))
    assert message.startswith("1 validation error detected: Value 'eq' at "
                              "'keyConditions.pk.member.comparisonOperator' failed to satisfy "
                              "constraint: Member must satisfy enum value set: [")
    message = _validation(lambda: raw.scan(TableName=table, ScanFilter={
        "n": {"ComparisonOperator": "Gt", "AttributeValueList": [{"N": "1"}]}}))
    assert "at 'scanFilter.n.member.comparisonOperator'" in message


def test_value_and_update_messages(raw: Any, table: str) -> None:
    key = {"pk": {"S": "k"}}
    assert _validation(lambda: raw.put_item(TableName=table, Item={**key, "b": {"BS": []}})) == \
        "One or more parameter values were invalid: Binary sets should not be empty"
    mismatch = "One or more parameter values were invalid: Type mismatch for attribute to update"
    assert _validation(lambda: raw.update_item(TableName=table, Key=key, AttributeUpdates={
        "s": {"Action": "DELETE", "Value": {"NS": ["1"]}}})) == mismatch
    assert _validation(lambda: raw.update_item(TableName=table, Key=key, AttributeUpdates={
        "n": {"Action": "ADD", "Value": {"SS": ["x"]}}})) == mismatch
    assert _validation(lambda: raw.update_item(
        TableName=table, Key=key, UpdateExpression="SET a = _f(b)")).startswith(
        'Invalid UpdateExpression: Syntax error; token: "_"')
    deep: dict = {"S": "bottom"}
    for _ in range(33):
        deep = {"M": {"d": deep}}
    assert _validation(lambda: raw.put_item(TableName=table, Item={**key, "deep": deep})) == (
        "Nesting Levels have exceeded supported limits: Attributes in the item have nested "
        "levels beyond supported limit")
    overflow = ("Number overflow. Attempting to store a number with magnitude larger than "
                "supported range")
    assert _validation(lambda: raw.update_item(
        TableName=table, Key=key, UpdateExpression="SET n = n + :one",
        ExpressionAttributeValues={":one": {"N": "1"}})) == overflow
    long_expression = "SET a = :v REMOVE " + ", ".join(f"x{i}" for i in range(800))
    size = len(long_expression)
    assert size > 4096
    assert _validation(lambda: raw.update_item(
        TableName=table, Key=key, UpdateExpression=long_expression,
        ExpressionAttributeValues={":v": {"N": "1"}})) == (
        "Invalid UpdateExpression: Expression size has exceeded the maximum allowed size; "
        f"expression size: {size}")
    item = raw.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert item == {"pk": {"S": "k"}, "n": {"N": "100000000000000000000000000000000000000000000000000"},
                    "s": {"SS": ["a"]}}


def test_malformed_json_message(server: ServerProcess) -> None:
    reply = raw_http.call(server.port, "ListTables", b'{"Limit": 1,')
    assert reply.status == 400 and reply.error_type == "SerializationException"
    assert reply.message == "Request body is not valid JSON"


def test_arn_messages(raw: Any, table: str) -> None:
    assert _validation(lambda: raw.tag_resource(ResourceArn="table/" + table,
                                                Tags=[{"Key": "k", "Value": "v"}])) == \
        "ARNs must start with 'arn:'"
    arn = raw.describe_table(TableName=table)["Table"]["TableArn"]
    foreign = arn.replace(":000000000000:", ":123456789012:")
    assert foreign != arn
    code, message = _error(lambda: raw.list_tags_of_resource(ResourceArn=foreign))
    assert code == "AccessDeniedException"
    assert foreign in message
    code, _ = _error(lambda: raw.tag_resource(ResourceArn=foreign,
                                              Tags=[{"Key": "k", "Value": "v"}]))
    assert code == "AccessDeniedException"
    assert raw.list_tags_of_resource(ResourceArn=arn)["Tags"] == []
