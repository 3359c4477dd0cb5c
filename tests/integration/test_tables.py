"""Control-plane operations through boto3 against a real server."""
from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_table, unique_name


def error_of(call: Any, **kwargs: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    error = info.value.response["Error"]
    return error["Code"], error["Message"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_create_describe_waiter_and_list(ddb: Any) -> None:
    name = unique_name("create")
    created = ddb.create_table(
        TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 7},
        Tags=[{"Key": "team", "Value": "core"}])["TableDescription"]
    assert created["TableStatus"] == "CREATING"
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["TableId"] == created["TableId"]
    assert table["TableArn"].endswith(f":table/{name}")
    assert table["ProvisionedThroughput"]["ReadCapacityUnits"] == 5
    assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 7
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert table["ItemCount"] == 0 and table["TableSizeBytes"] == 0
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert name in ddb.list_tables()["TableNames"]
    tags = ddb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]
    assert tags == [{"Key": "team", "Value": "core"}]


def test_item_count_and_size_follow_writes(ddb: Any) -> None:
    name = make_table(ddb, range_key=None)
    for i in range(3):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"k{i}"}, "v": {"S": "x" * 10}})
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["ItemCount"] == 3
    assert table["TableSizeBytes"] == 3 * (2 + 2 + 1 + 10)


def test_create_existing_table_is_resource_in_use(ddb: Any) -> None:
    name = make_table(ddb)
    code, message, status = error_of(
        ddb.create_table, TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST")
    assert (code, status) == ("ResourceInUseException", 400)
    assert message == f"Table already exists: {name}"


@pytest.mark.parametrize("kwargs,message", [
    (dict(TableName="ab"), "1 validation error detected: Value 'ab' at 'tableName' failed to "
     "satisfy constraint: Member must have length greater than or equal to 3"),
    (dict(TableName="bad name!"), "1 validation error detected: Value 'bad name!' at 'tableName' "
     "failed to satisfy constraint: Member must satisfy regular expression pattern: "
     "[a-zA-Z0-9_.-]+"),
])
def test_create_table_name_rules(raw: Any, kwargs: dict, message: str) -> None:
    code, got, _ = error_of(raw.create_table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST", **kwargs)
    assert code == "ValidationException"
    assert got == message


@pytest.mark.parametrize("schema,definitions,message", [
    ([{"AttributeName": "pk", "KeyType": "RANGE"}], [{"AttributeName": "pk", "AttributeType": "S"}],
     "Invalid KeySchema: The first KeySchemaElement is not a HASH key type"),
    # DynamoDB's answer when the one definition is claimed by both elements (issue 11)
    ([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "pk", "KeyType": "RANGE"}],
     [{"AttributeName": "pk", "AttributeType": "S"}],
     "Invalid KeySchema: Some index key attribute have no definition"),
    ([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "pk", "KeyType": "RANGE"}],
     [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
     "Both the Hash Key and the Range Key element in the KeySchema have the same name"),
    ([{"AttributeName": "pk", "KeyType": "HASH"}], [{"AttributeName": "x", "AttributeType": "S"}],
     "One or more parameter values were invalid: Some index key attributes are not defined in "
     "AttributeDefinitions. Keys: [pk], AttributeDefinitions: [x]"),
    ([{"AttributeName": "pk", "KeyType": "HASH"}],
     [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "x", "AttributeType": "S"}],
     "One or more parameter values were invalid: Number of attributes in KeySchema does not "
     "exactly match number of attributes defined in AttributeDefinitions"),
    ([{"AttributeName": "pk", "KeyType": "HASH"}], [{"AttributeName": "pk", "AttributeType": "Q"}],
     "1 validation error detected: Value 'Q' at 'attributeDefinitions.1.member.attributeType' "
     "failed to satisfy constraint: Member must satisfy enum value set: [B, N, S]"),
])
def test_create_table_key_schema_rules(raw: Any, schema: list, definitions: list,
                                       message: str) -> None:
    name = unique_name("bad")
    code, got, _ = error_of(raw.create_table, TableName=name, KeySchema=schema,
                            AttributeDefinitions=definitions, BillingMode="PAY_PER_REQUEST")
    assert (code, got) == ("ValidationException", message)
    assert name not in raw.list_tables()["TableNames"]


def test_billing_mode_rules(raw: Any) -> None:
    base = dict(KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    code, message, _ = error_of(raw.create_table, TableName=unique_name(), **base)
    assert message == ("One or more parameter values were invalid: ReadCapacityUnits and "
                       "WriteCapacityUnits must both be specified when BillingMode is PROVISIONED")
    code, message, _ = error_of(
        raw.create_table, TableName=unique_name(), BillingMode="PAY_PER_REQUEST",
        ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}, **base)
    assert message == ("One or more parameter values were invalid: Neither ReadCapacityUnits nor "
                       "WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST")
    code, message, _ = error_of(
        raw.create_table, TableName=unique_name(),
        ProvisionedThroughput={"ReadCapacityUnits": 0, "WriteCapacityUnits": 1}, **base)
    assert message == ("1 validation error detected: Value '0' at "
                       "'provisionedThroughput.readCapacityUnits' failed to satisfy constraint: "
                       "Member must have value greater than or equal to 1")


def test_describe_and_delete_missing_table(ddb: Any) -> None:
    code, message, status = error_of(ddb.describe_table, TableName="no-such-table")
    assert (code, status) == ("ResourceNotFoundException", 400)
    assert message == "Requested resource not found: Table: no-such-table not found"
    code, _, _ = error_of(ddb.delete_table, TableName="no-such-table")
    assert code == "ResourceNotFoundException"


def test_delete_table_and_waiter(ddb: Any) -> None:
    name = make_table(ddb)
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "sk": {"S": "b"}})
    description = ddb.delete_table(TableName=name)["TableDescription"]
    assert description["TableStatus"] == "DELETING"
    ddb.get_waiter("table_not_exists").wait(TableName=name,
                                            WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    assert name not in ddb.list_tables()["TableNames"]
    code, _, _ = error_of(ddb.get_item, TableName=name, Key={"pk": {"S": "a"}, "sk": {"S": "b"}})
    assert code == "ResourceNotFoundException"
    # The name can be reused and the new table starts empty.
    make_table(ddb, name=name)
    assert ddb.scan(TableName=name)["Count"] == 0


def test_deletion_protection(ddb: Any) -> None:
    name = make_table(ddb)
    ddb.update_table(TableName=name, DeletionProtectionEnabled=True)
    code, message, _ = error_of(ddb.delete_table, TableName=name)
    assert code == "ValidationException"
    assert "protected against deletion" in message
    ddb.update_table(TableName=name, DeletionProtectionEnabled=False)
    ddb.delete_table(TableName=name)


def test_update_table_billing_and_throughput(ddb: Any) -> None:
    name = make_table(ddb)
    updated = ddb.update_table(TableName=name, BillingMode="PROVISIONED",
                               ProvisionedThroughput={"ReadCapacityUnits": 3,
                                                      "WriteCapacityUnits": 4})
    assert updated["TableDescription"]["TableStatus"] == "UPDATING"
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert table["ProvisionedThroughput"]["ReadCapacityUnits"] == 3
    code, message, _ = error_of(ddb.update_table, TableName=name,
                                ProvisionedThroughput={"ReadCapacityUnits": 3,
                                                       "WriteCapacityUnits": 4})
    assert code == "ValidationException"
    assert message.startswith("The provisioned throughput for the table will not change.")
    ddb.update_table(TableName=name, BillingMode="PAY_PER_REQUEST")
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["ProvisionedThroughput"]["ReadCapacityUnits"] == 0


def test_list_tables_pagination(ddb: Any) -> None:
    created = sorted(make_table(ddb, name=unique_name("page")) for _ in range(5))
    seen: list[str] = []
    kwargs: dict[str, Any] = {"Limit": 2}
    for _ in range(100):
        page = ddb.list_tables(**kwargs)
        assert len(page["TableNames"]) <= 2
        seen.extend(page["TableNames"])
        if "LastEvaluatedTableName" not in page:
            break
        kwargs["ExclusiveStartTableName"] = page["LastEvaluatedTableName"]
    assert seen == sorted(seen)
    assert set(created) <= set(seen)
    paginated = [n for p in ddb.get_paginator("list_tables").paginate(PaginationConfig={"PageSize": 3})
                 for n in p["TableNames"]]
    assert paginated == seen


def test_tags(ddb: Any) -> None:
    name = make_table(ddb)
    arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    ddb.untag_resource(ResourceArn=arn, TagKeys=["a"])
    assert ddb.list_tags_of_resource(ResourceArn=arn)["Tags"] == [{"Key": "b", "Value": "2"}]
    code, _, _ = error_of(ddb.list_tags_of_resource,
                          ResourceArn="arn:aws:dynamodb:us-east-1:000000000000:table/nope")
    assert code == "ResourceNotFoundException"


def test_describe_limits_and_endpoints(ddb: Any) -> None:
    limits = ddb.describe_limits()
    assert limits["TableMaxReadCapacityUnits"] > 0
    endpoints = ddb.describe_endpoints()["Endpoints"]
    assert endpoints[0]["CachePeriodInMinutes"] == 1440


def test_unknown_operation_and_auth(server: Any) -> None:
    import urllib.request
    request = urllib.request.Request(server.endpoint, data=b"{}", method="POST", headers={
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Content-Type": "application/x-amz-json-1.0"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 400
    body = info.value.read()
    assert b"MissingAuthenticationTokenException" in body


def test_many_tables_in_one_server(ddb: Any) -> None:
    """Each table's partition maps its own LMDB environment; hundreds must fit in one process."""
    names = [make_table(ddb, name=unique_name("many"), range_key=None) for _ in range(150)]
    for name in names:
        ddb.put_item(TableName=name, Item={"pk": {"S": name}})
    for name in names[::10]:
        assert ddb.get_item(TableName=name, Key={"pk": {"S": name}})["Item"]["pk"]["S"] == name
    for name in names:
        ddb.delete_table(TableName=name)
