"""Secondary index definitions through boto3: CreateTable's checks and messages,
DescribeTable's index descriptions, definitions kept across restarts, DeleteTable."""
from __future__ import annotations

import glob
import os
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import unique_name
from tests.integration.server import ServerProcess

INVALID = "One or more parameter values were invalid: "
TABLE_KEYS = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]


def definitions(*names: str, kind: str = "S") -> list[dict[str, str]]:
    return [{"AttributeName": name, "AttributeType": kind} for name in names]


def keys(*pairs: str) -> list[dict[str, str]]:
    """keys("pk", "HASH", "x", "RANGE")"""
    return [{"AttributeName": pairs[i], "KeyType": pairs[i + 1]} for i in range(0, len(pairs), 2)]


def lsi(name: str, attribute: str, projection: dict | None = None) -> dict[str, Any]:
    return {"IndexName": name, "KeySchema": keys("pk", "HASH", attribute, "RANGE"),
            "Projection": projection or {"ProjectionType": "ALL"}}


def gsi(name: str, *pairs: str, projection: dict | None = None, **extra: Any) -> dict[str, Any]:
    return {"IndexName": name, "KeySchema": keys(*pairs),
            "Projection": projection or {"ProjectionType": "KEYS_ONLY"}, **extra}


def create(client: Any, **request: Any) -> dict[str, Any]:
    request.setdefault("TableName", unique_name("idx"))
    request.setdefault("KeySchema", TABLE_KEYS)
    request.setdefault("BillingMode", "PAY_PER_REQUEST")
    return client.create_table(**request)["TableDescription"]


def refused(client: Any, **request: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        create(client, **request)
    error = info.value.response["Error"]
    return error["Code"], error["Message"]


def test_create_and_describe_both_kinds(ddb: Any) -> None:
    name = unique_name("both")
    created = create(
        ddb, TableName=name, AttributeDefinitions=definitions("pk", "sk", "l", "g", "h"),
        LocalSecondaryIndexes=[lsi("by_l", "l", {"ProjectionType": "INCLUDE",
                                                 "NonKeyAttributes": ["a", "b"]})],
        GlobalSecondaryIndexes=[gsi("by_g", "g", "HASH", "h", "RANGE",
                                    projection={"ProjectionType": "ALL"})])
    arn = created["TableArn"]
    assert created["LocalSecondaryIndexes"] == [{
        "IndexName": "by_l", "KeySchema": keys("pk", "HASH", "l", "RANGE"),
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a", "b"]},
        "IndexSizeBytes": 0, "ItemCount": 0, "IndexArn": f"{arn}/index/by_l"}]
    [created_gsi] = created["GlobalSecondaryIndexes"]
    assert created_gsi["IndexStatus"] == "CREATING"
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    described = ddb.describe_table(TableName=name)["Table"]
    # A table created with global indexes is ACTIVE once they are (metadata/index_lifecycle.py).
    assert described["TableStatus"] == "ACTIVE"
    assert described["GlobalSecondaryIndexes"][0].pop("IndexStatus") == "ACTIVE"
    assert described["GlobalSecondaryIndexes"] == [{
        "IndexName": "by_g", "KeySchema": keys("g", "HASH", "h", "RANGE"),
        "Projection": {"ProjectionType": "ALL"}, "Backfilling": False,
        "ProvisionedThroughput": {"NumberOfDecreasesToday": 0, "ReadCapacityUnits": 0,
                                  "WriteCapacityUnits": 0},
        "IndexSizeBytes": 0, "ItemCount": 0, "IndexArn": f"{arn}/index/by_g"}]
    assert described["LocalSecondaryIndexes"] == created["LocalSecondaryIndexes"]
    # An UpdateTable keeps them.
    ddb.update_table(TableName=name, DeletionProtectionEnabled=False)
    again = ddb.describe_table(TableName=name)["Table"]
    assert again["GlobalSecondaryIndexes"][0].pop("IndexStatus") == "ACTIVE"
    assert again["GlobalSecondaryIndexes"] == described["GlobalSecondaryIndexes"]
    assert again["LocalSecondaryIndexes"] == described["LocalSecondaryIndexes"]


def test_provisioned_global_indexes_have_their_own_throughput(ddb: Any) -> None:
    created = create(ddb, BillingMode="PROVISIONED",
                     ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
                     AttributeDefinitions=definitions("pk", "sk", "g"),
                     GlobalSecondaryIndexes=[gsi("by_g", "g", "HASH", ProvisionedThroughput={
                         "ReadCapacityUnits": 3, "WriteCapacityUnits": 4})])
    throughput = created["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"]
    assert throughput == {"NumberOfDecreasesToday": 0, "ReadCapacityUnits": 3,
                          "WriteCapacityUnits": 4}
    assert "LocalSecondaryIndexes" not in created


def test_multi_attribute_global_index_keys(ddb: Any) -> None:
    names = [f"h{i}" for i in range(4)] + [f"r{i}" for i in range(4)]
    schema = sum(([n, "HASH"] for n in names[:4]), []) + sum(([n, "RANGE"] for n in names[4:]), [])
    created = create(ddb, AttributeDefinitions=definitions("pk", "sk") +
                     [{"AttributeName": n, "AttributeType": t} for n, t in
                      zip(names, "SNBSNBSN")],
                     GlobalSecondaryIndexes=[gsi("multi", *schema)])
    assert created["GlobalSecondaryIndexes"][0]["KeySchema"] == keys(*schema)
    # Each attribute keeps its own type on writes.
    table = created["TableName"]
    ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "sk": {"S": "b"}, "h1": {"N": "1"}})
    with pytest.raises(ClientError) as info:
        ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "sk": {"S": "b"}, "r3": {"S": "1"}})
    assert info.value.response["Error"]["Message"] == (
        INVALID + "Type mismatch for Index Key r3 Expected: N Actual: S IndexName: multi")


ERRORS = [
    # (request members, expected code, expected message)
    ({"KeySchema": keys("pk", "HASH"), "AttributeDefinitions": definitions("pk", "x"),
      "LocalSecondaryIndexes": [lsi("ix1", "x")]},
     "ValidationException", INVALID + "Table KeySchema does not have a range key, which is "
     "required when specifying a LocalSecondaryIndex"),
    ({"AttributeDefinitions": definitions("pk", "sk", "o", "x"), "LocalSecondaryIndexes": [
        {"IndexName": "ix1", "KeySchema": keys("o", "HASH", "x", "RANGE"),
         "Projection": {"ProjectionType": "ALL"}}]},
     "ValidationException", INVALID + "Index KeySchema does not have the same leading hash key "
     "as table KeySchema for index: ix1. index hash key: o, table hash key: pk"),
    ({"AttributeDefinitions": definitions("pk", "sk"), "LocalSecondaryIndexes": [
        {"IndexName": "ix1", "KeySchema": keys("pk", "HASH"), "Projection": {"ProjectionType": "ALL"}}]},
     "ValidationException", INVALID + "Index KeySchema does not have a range key for index: ix1"),
    ({"AttributeDefinitions": definitions("pk", "sk", "x"), "LocalSecondaryIndexes": [
        {"IndexName": "ix1", "KeySchema": keys("x", "RANGE", "pk", "HASH"),
         "Projection": {"ProjectionType": "ALL"}}]},
     "ValidationException", "Invalid KeySchema: The first KeySchemaElement is not a HASH key type"),
    ({"AttributeDefinitions": definitions("pk", "sk", "x"), "LocalSecondaryIndexes": [
        {"IndexName": "ix1", "KeySchema": keys("pk", "HASH", "x", "HASH"),
         "Projection": {"ProjectionType": "ALL"}}]},
     "ValidationException", "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type"),
    ({"AttributeDefinitions": definitions("pk", "sk"), "LocalSecondaryIndexes": [
        {"IndexName": "ix1", "KeySchema": keys("pk", "HASH", "pk", "RANGE"),
         "Projection": {"ProjectionType": "ALL"}}]},
     "ValidationException",
     "Both the Hash Key and the Range Key element in the KeySchema have the same name"),
    ({"AttributeDefinitions": definitions("pk", "sk", "x"),
      "LocalSecondaryIndexes": [lsi(f"ix{i}", "x") for i in range(6)]},
     "ValidationException", INVALID + "Number of LocalSecondaryIndexes exceeds per-table limit of 5"),
    ({"AttributeDefinitions": definitions("pk", "sk", "g"),
      "GlobalSecondaryIndexes": [gsi(f"gx{i}", "g", "HASH") for i in range(21)]},
     "ValidationException", INVALID + "GlobalSecondaryIndex count exceeds the per-table limit of 20"),
    ({"AttributeDefinitions": definitions("pk", "sk"), "LocalSecondaryIndexes": []},
     "ValidationException", INVALID + "List of LocalSecondaryIndexes is empty"),
    ({"AttributeDefinitions": definitions("pk", "sk"), "GlobalSecondaryIndexes": []},
     "ValidationException", INVALID + "List of GlobalSecondaryIndexes is empty"),
    ({"AttributeDefinitions": definitions("pk", "sk", "x"),
      "LocalSecondaryIndexes": [lsi("same", "x")],
      "GlobalSecondaryIndexes": [gsi("same", "x", "HASH")]},
     "ValidationException", INVALID + "Duplicate index name: same"),
    ({"AttributeDefinitions": definitions("pk", "sk", "x"),
      "GlobalSecondaryIndexes": [gsi("twice", "x", "HASH"), gsi("twice", "x", "HASH")]},
     "ValidationException", INVALID + "Duplicate index name: twice"),
    ({"AttributeDefinitions": definitions("pk", "sk"), "LocalSecondaryIndexes": [lsi("ix1", "zz")]},
     "ValidationException", INVALID + "Some index key attributes are not defined in "
     "AttributeDefinitions. Keys: [pk, zz], AttributeDefinitions: [pk, sk]"),
    ({"AttributeDefinitions": definitions("pk", "sk"),
      "GlobalSecondaryIndexes": [gsi("gx1", "a", "HASH", "b", "RANGE")]},
     "ValidationException", INVALID + "Some index key attributes are not defined in "
     "AttributeDefinitions. Keys: [a, b], AttributeDefinitions: [pk, sk]"),
    ({"AttributeDefinitions": definitions("pk", "sk", "a", "unused"),
      "LocalSecondaryIndexes": [lsi("ix1", "a")]},
     "ValidationException", INVALID + "Some AttributeDefinitions are not used. "
     "AttributeDefinitions: [pk, sk, a, unused], keys used: [pk, sk, a]"),
    ({"AttributeDefinitions": definitions("pk", "sk", "a"),
      "LocalSecondaryIndexes": [lsi("ix1", "a", {"ProjectionType": "INCLUDE"})]},
     "ValidationException", INVALID + "NonKeyAttributes must be specified when ProjectionType "
     "is INCLUDE, for index: ix1"),
    ({"AttributeDefinitions": definitions("pk", "sk", "a"),
      "LocalSecondaryIndexes": [lsi("ix1", "a", {"ProjectionType": "ALL",
                                                "NonKeyAttributes": ["z"]})]},
     "ValidationException", INVALID + "ProjectionType is ALL, but NonKeyAttributes is specified"),
    ({"AttributeDefinitions": definitions("pk", "sk", "g"),
      "GlobalSecondaryIndexes": [gsi("gx1", "g", "HASH", projection={
          "ProjectionType": "KEYS_ONLY", "NonKeyAttributes": ["z"]})]},
     "ValidationException", INVALID + "ProjectionType is KEYS_ONLY, but NonKeyAttributes is "
     "specified"),
    ({"AttributeDefinitions": definitions("pk", "sk", "g"),
      "GlobalSecondaryIndexes": [gsi("gx1", "g", "HASH", projection={
          "ProjectionType": "INCLUDE", "NonKeyAttributes": ["z", "y", "z"]})]},
     "ValidationException", INVALID + "Duplicate attribute name in NonKeyAttributes of index: "
     "gx1: z"),
    ({"AttributeDefinitions": definitions("pk", "sk", "a", "g"),
      "LocalSecondaryIndexes": [lsi(f"ix{i}", "a", {"ProjectionType": "INCLUDE",
                                                   "NonKeyAttributes": [f"n{j}" for j in range(20)]})
                                for i in range(5)],
      "GlobalSecondaryIndexes": [gsi("gx1", "g", "HASH", projection={
          "ProjectionType": "INCLUDE", "NonKeyAttributes": ["one"]})]},
     "ValidationException", INVALID + "Number of projected attributes in all indexes exceeds "
     "limit of 100, number of projected attributes:101"),
    ({"AttributeDefinitions": definitions("pk", "sk", "g"), "BillingMode": "PROVISIONED",
      "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
      "GlobalSecondaryIndexes": [gsi("gx1", "g", "HASH")]},
     "ValidationException", INVALID + "ProvisionedThroughput must be specified for index: gx1"),
    ({"AttributeDefinitions": definitions("pk", "sk", "g"),
      "GlobalSecondaryIndexes": [gsi("gx1", "g", "HASH", ProvisionedThroughput={
          "ReadCapacityUnits": 1, "WriteCapacityUnits": 1})]},
     "ValidationException", INVALID + "ProvisionedThroughput should not be specified for index: "
     "gx1 when BillingMode is PAY_PER_REQUEST"),
    ({"AttributeDefinitions": definitions("pk", "sk", "g"), "BillingMode": "PROVISIONED",
      "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
      "GlobalSecondaryIndexes": [gsi("gx1", "g", "HASH", ProvisionedThroughput={
          "ReadCapacityUnits": 40001, "WriteCapacityUnits": 1})]},
     "LimitExceededException", "Subscriber limit exceeded: Provisioned throughput for a table "
     "cannot exceed 40000 read or write capacity units"),
    ({"AttributeDefinitions": definitions("pk", "sk", "a", "b"),
      "GlobalSecondaryIndexes": [gsi("gx1", "a", "HASH", "b", "RANGE", "pk", "HASH")]},
     "ValidationException", INVALID + "Every HASH KeySchemaElement must come before the RANGE "
     "ones in the KeySchema of index: gx1"),
    ({"AttributeDefinitions": definitions("pk", "sk", *[f"h{i}" for i in range(5)]),
      "GlobalSecondaryIndexes": [gsi("gx1", *sum(([f"h{i}", "HASH"] for i in range(5)), []))]},
     "ValidationException", INVALID + "The KeySchema of a GlobalSecondaryIndex has at most 4 "
     "HASH and 4 RANGE key attributes; index gx1 has 5 HASH and 0 RANGE"),
    ({"AttributeDefinitions": definitions("pk", "sk", *[f"r{i}" for i in range(5)]),
      "GlobalSecondaryIndexes": [gsi("gx1", "pk", "HASH",
                                     *sum(([f"r{i}", "RANGE"] for i in range(5)), []))]},
     "ValidationException", INVALID + "The KeySchema of a GlobalSecondaryIndex has at most 4 "
     "HASH and 4 RANGE key attributes; index gx1 has 1 HASH and 5 RANGE"),
    ({"AttributeDefinitions": definitions("pk", "sk", "a"),
      "GlobalSecondaryIndexes": [gsi("gx1", "a", "HASH", "pk", "HASH", "a", "RANGE")]},
     "ValidationException", INVALID + "Duplicate attribute name in the KeySchema of index: gx1"),
    ({"AttributeDefinitions": definitions("pk", "sk", "a"),
      "GlobalSecondaryIndexes": [gsi("gx1", "a", "HASH", "a", "RANGE")]},
     "ValidationException",
     "Both the Hash Key and the Range Key element in the KeySchema have the same name"),
    ({"AttributeDefinitions": definitions("pk", "sk", "a"),
      "GlobalSecondaryIndexes": [gsi("gx1", "a", "RANGE")]},
     "ValidationException", "Invalid KeySchema: The first KeySchemaElement is not a HASH key type"),
]


@pytest.mark.parametrize("members, code, message", ERRORS,
                         ids=[f"{i}-{e[2][len(INVALID):][:40]}" for i, e in enumerate(ERRORS)])
def test_create_table_index_errors(ddb: Any, members: dict, code: str, message: str) -> None:
    name = unique_name("bad")
    assert refused(ddb, TableName=name, **members) == (code, message)
    assert name not in ddb.list_tables(Limit=100)["TableNames"]


SHAPE = "1 validation error detected: Value {value} at '{path}' failed to satisfy constraint: {rule}"
SHAPE_ERRORS = [
    ({"LocalSecondaryIndexes": [{**lsi("ab", "x")}]},
     SHAPE.format(value="'ab'", path="localSecondaryIndexes.1.member.indexName",
                  rule="Member must have length greater than or equal to 3")),
    ({"GlobalSecondaryIndexes": [gsi("a b", "x", "HASH")]},
     SHAPE.format(value="'a b'", path="globalSecondaryIndexes.1.member.indexName",
                  rule="Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")),
    ({"GlobalSecondaryIndexes": [{"KeySchema": keys("x", "HASH"),
                                  "Projection": {"ProjectionType": "ALL"}}]},
     SHAPE.format(value="null", path="globalSecondaryIndexes.1.member.indexName",
                  rule="Member must not be null")),
    ({"GlobalSecondaryIndexes": [{"IndexName": "gx1", "KeySchema": keys("x", "HASH")}]},
     SHAPE.format(value="null", path="globalSecondaryIndexes.1.member.projection",
                  rule="Member must not be null")),
    ({"GlobalSecondaryIndexes": [gsi("gx1", "x", "HASH", projection={"ProjectionType": "SOME"})]},
     SHAPE.format(value="'SOME'", path="globalSecondaryIndexes.1.member.projection.projectionType",
                  rule="Member must satisfy enum value set: [ALL, KEYS_ONLY, INCLUDE]")),
    ({"GlobalSecondaryIndexes": [gsi("gx1", "x", "HASH", projection={
        "ProjectionType": "INCLUDE", "NonKeyAttributes": []})]},
     SHAPE.format(value="'[]'", path="globalSecondaryIndexes.1.member.projection.nonKeyAttributes",
                  rule="Member must have length greater than or equal to 1")),
    ({"GlobalSecondaryIndexes": [{"IndexName": "gx1", "KeySchema": [],
                                  "Projection": {"ProjectionType": "ALL"}}]},
     SHAPE.format(value="'[]'", path="globalSecondaryIndexes.1.member.keySchema",
                  rule="Member must have length greater than or equal to 1")),
    ({"GlobalSecondaryIndexes": [gsi("gx1", "x", "PRIMARY")]},
     SHAPE.format(value="'PRIMARY'", path="globalSecondaryIndexes.1.member.keySchema.1.member.keyType",
                  rule="Member must satisfy enum value set: [HASH, RANGE]")),
    ({"GlobalSecondaryIndexes": [gsi("gx1", "x", "HASH", ProvisionedThroughput={
        "ReadCapacityUnits": 0, "WriteCapacityUnits": 1})]},
     SHAPE.format(value="'0'",
                  path="globalSecondaryIndexes.1.member.provisionedThroughput.readCapacityUnits",
                  rule="Member must have value greater than or equal to 1")),
    ({"LocalSecondaryIndexes": [{"IndexName": "ix1", "Projection": {"ProjectionType": "ALL"},
                                 "KeySchema": keys("pk", "HASH", "x", "RANGE", "y", "RANGE")}]},
     SHAPE.format(value="'[KeySchemaElement(attributeName=pk, keyType=HASH), "
                        "KeySchemaElement(attributeName=x, keyType=RANGE), "
                        "KeySchemaElement(attributeName=y, keyType=RANGE)]'",
                  path="localSecondaryIndexes.1.member.keySchema",
                  rule="Member must have length less than or equal to 2")),
]


@pytest.mark.parametrize("members, message", SHAPE_ERRORS)
def test_create_table_index_shape_errors(raw: Any, members: dict, message: str) -> None:
    code, got = refused(raw, AttributeDefinitions=definitions("pk", "sk", "x", "y"), **members)
    assert (code, got) == ("ValidationException", message)


def test_index_key_attributes_must_have_key_types(raw: Any) -> None:
    code, message = refused(raw, AttributeDefinitions=definitions("pk", "sk") + [
        {"AttributeName": "x", "AttributeType": "BOOL"}], LocalSecondaryIndexes=[lsi("ix1", "x")])
    assert (code, message) == ("ValidationException", SHAPE.format(
        value="'BOOL'", path="attributeDefinitions.3.member.attributeType",
        rule="Member must satisfy enum value set: [B, N, S]"))


def test_missing_projection_type(raw: Any) -> None:
    assert refused(raw, AttributeDefinitions=definitions("pk", "sk", "x"),
                   LocalSecondaryIndexes=[lsi("ix1", "x", {"NonKeyAttributes": ["a"]})]) == \
        ("ValidationException", INVALID + "Unknown ProjectionType: null")


def test_definitions_survive_restarts_and_delete_table_removes_everything(tmp_path: Any) -> None:
    server = ServerProcess(str(tmp_path)).start()
    try:
        client = server.client()
        described = create(client, TableName="kept", AttributeDefinitions=definitions(
            "pk", "sk", "l", "g"), LocalSecondaryIndexes=[lsi("by_l", "l")],
            GlobalSecondaryIndexes=[gsi("by_g", "g", "HASH")])
        for i in range(10):
            client.put_item(TableName="kept", Item={"pk": {"S": "a"}, "sk": {"S": str(i)},
                                                    "l": {"S": str(-i)}})
        server.kill()
        server = ServerProcess(str(tmp_path), port=server.port).start()
        client = server.client()
        again = client.describe_table(TableName="kept")["Table"]
        for member in ("LocalSecondaryIndexes", "GlobalSecondaryIndexes", "AttributeDefinitions"):
            assert [{k: v for k, v in i.items() if k not in ("ItemCount", "IndexSizeBytes",
                                                             "IndexStatus")}
                    for i in again[member]] == \
                [{k: v for k, v in i.items() if k not in ("ItemCount", "IndexSizeBytes",
                                                          "IndexStatus")}
                 for i in described[member]]
        assert again["LocalSecondaryIndexes"][0]["ItemCount"] == 10
        table_id = again["TableId"]
        assert glob.glob(os.path.join(str(tmp_path), "node-*", "tables", table_id))
        client.delete_table(TableName="kept")
        assert not glob.glob(os.path.join(str(tmp_path), "node-*", "tables", table_id))
        create(client, TableName="kept", AttributeDefinitions=definitions("pk", "sk"))
        fresh = client.describe_table(TableName="kept")["Table"]
        assert "LocalSecondaryIndexes" not in fresh and "GlobalSecondaryIndexes" not in fresh
        assert client.scan(TableName="kept")["Count"] == 0
        with pytest.raises(ClientError) as info:
            client.query(TableName="kept", IndexName="by_l", KeyConditionExpression="pk = :p",
                         ExpressionAttributeValues={":p": {"S": "a"}})
        assert info.value.response["Error"]["Message"] == \
            "The table does not have the specified index: by_l"
    finally:
        server.stop()


def test_billing_mode_changes_of_a_table_with_global_indexes(ddb: Any) -> None:
    name = unique_name("billing")
    create(ddb, TableName=name, BillingMode="PROVISIONED",
           ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
           AttributeDefinitions=definitions("pk", "sk", "g"),
           GlobalSecondaryIndexes=[gsi("by_g", "g", "HASH", ProvisionedThroughput={
               "ReadCapacityUnits": 3, "WriteCapacityUnits": 4})])
    ddb.update_table(TableName=name, BillingMode="PAY_PER_REQUEST")
    [index] = ddb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"]
    assert (index["ProvisionedThroughput"]["ReadCapacityUnits"],
            index["ProvisionedThroughput"]["WriteCapacityUnits"]) == (0, 0)
    with pytest.raises(ClientError) as info:
        ddb.update_table(TableName=name, BillingMode="PROVISIONED",
                         ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
    assert info.value.response["Error"]["Message"] == \
        INVALID + "ProvisionedThroughput must be specified for index: by_g"
    assert ddb.describe_table(TableName=name)["Table"]["BillingModeSummary"]["BillingMode"] == \
        "PAY_PER_REQUEST"


def test_global_index_updates_are_checked_and_refusals_change_nothing(ddb: Any) -> None:
    name = unique_name("updates")
    create(ddb, TableName=name, AttributeDefinitions=definitions("pk", "sk", "g"),
           GlobalSecondaryIndexes=[gsi("by_g", "g", "HASH")])
    ddb.get_waiter("table_exists").wait(TableName=name,
                                        WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    before = ddb.describe_table(TableName=name)["Table"]
    refusals = [
        ([{"Delete": {"IndexName": "nope"}}], "ResourceNotFoundException",
         "Requested resource not found: Requested index nope not found for table " + name),
        ([{"Update": {"IndexName": "nope", "ProvisionedThroughput": {
            "ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}}],
         "ResourceNotFoundException", None),
        ([{"Update": {"IndexName": "by_g", "ProvisionedThroughput": {
            "ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}}], "ValidationException",
         INVALID + "ProvisionedThroughput cannot be updated for an index of a table whose "
         "BillingMode is PAY_PER_REQUEST"),
        ([{"Create": gsi("by_g", "g", "HASH")}], "ValidationException",
         INVALID + "Attempting to create an index which already exists: by_g"),
        ([{"Create": gsi("by_h", "h", "HASH")}, {"Create": gsi("by_i", "i", "HASH")}],
         "LimitExceededException",
         "Subscriber limit exceeded: Only 1 online index can be created or deleted "
         "simultaneously per table"),
        ([{"Create": gsi("by_h", "h", "HASH"), "Delete": {"IndexName": "by_g"}}],
         "ValidationException", None),
    ]
    for updates, error, message in refusals:
        with pytest.raises(ClientError) as info:
            ddb.update_table(TableName=name, AttributeDefinitions=definitions("h", "i"),
                             GlobalSecondaryIndexUpdates=updates)
        assert info.value.response["Error"]["Code"] == error, (updates, info.value)
        if message is not None:
            assert info.value.response["Error"]["Message"] == message
    with pytest.raises(ClientError) as info:   # a defined attribute keeps its type
        ddb.update_table(TableName=name, AttributeDefinitions=definitions("g", kind="N"),
                         GlobalSecondaryIndexUpdates=[{"Create": gsi("by_g2", "g", "HASH")}])
    assert info.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as info:   # its attribute is not defined
        ddb.update_table(TableName=name,
                         GlobalSecondaryIndexUpdates=[{"Create": gsi("by_x", "x", "HASH")}])
    assert "not defined in AttributeDefinitions" in info.value.response["Error"]["Message"]
    after = ddb.describe_table(TableName=name)["Table"]
    assert after["GlobalSecondaryIndexes"] == before["GlobalSecondaryIndexes"]
    assert after["AttributeDefinitions"] == before["AttributeDefinitions"]
