"""The boto3 resource API (Python types, condition builders) against a real server."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Attr, Key

from tests.integration.server import ServerProcess


def test_resource_table_round_trip(server: ServerProcess) -> None:
    resource = boto3.resource("dynamodb", endpoint_url=server.endpoint, region_name="us-east-1",
                              aws_access_key_id="AKIDTEST", aws_secret_access_key="secret")
    table = resource.create_table(
        TableName="resource-orders",
        KeySchema=[{"AttributeName": "customer", "KeyType": "HASH"},
                   {"AttributeName": "order", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "customer", "AttributeType": "S"},
                              {"AttributeName": "order", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST")
    table.wait_until_exists()
    with table.batch_writer() as batch:
        for order in range(40):
            batch.put_item(Item={"customer": "c1", "order": order, "total": Decimal("9.99") * order,
                                 "lines": [{"sku": "a", "qty": 1}], "flags": {"new"}})
    response = table.query(KeyConditionExpression=Key("customer").eq("c1") & Key("order").between(10, 12),
                           FilterExpression=Attr("total").gt(Decimal("100")))
    assert [item["order"] for item in response["Items"]] == [Decimal(11), Decimal(12)]
    assert response["Items"][0]["total"] == Decimal("109.89")
    item = table.get_item(Key={"customer": "c1", "order": 3})["Item"]
    assert item["lines"] == [{"sku": "a", "qty": Decimal(1)}] and item["flags"] == {"new"}
    updated = table.update_item(Key={"customer": "c1", "order": 3},
                                UpdateExpression="SET #t = #t + :x ADD flags :f",
                                ExpressionAttributeNames={"#t": "total"},  # TOTAL is reserved
                                ExpressionAttributeValues={":x": Decimal("0.01"), ":f": {"paid"}},
                                ReturnValues="ALL_NEW")["Attributes"]
    assert updated["total"] == Decimal("29.98") and updated["flags"] == {"new", "paid"}
    with pytest.raises(resource.meta.client.exceptions.ConditionalCheckFailedException):
        table.put_item(Item={"customer": "c1", "order": 3},
                       ConditionExpression=Attr("customer").not_exists())
    assert table.item_count == 40
    table.delete()
    table.wait_until_not_exists()
