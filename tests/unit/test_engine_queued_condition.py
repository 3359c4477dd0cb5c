"""A condition that fails because of a queued (not yet durable) write must not be
answered before that write is durable: otherwise a client could observe a write
that readers cannot see yet, and that may never happen (found by the chaos
linearizability check)."""
from __future__ import annotations

import asyncio
import inspect
from typing import Any

import orjson
import pytest

from triplica.api.app import TriplicaApp
from triplica.api.http_server import Request
from triplica.engine.database import Database
from triplica.errors import ConditionalCheckFailedException

AUTH = ("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)


def request(operation: str, body: dict[str, Any]) -> Request:
    return Request("POST", "/", "", {"x-amz-target": "DynamoDB_20120810." + operation,
                                     "content-type": "application/x-amz-json-1.0",
                                     "authorization": AUTH, "host": "test"}, orjson.dumps(body))


@pytest.mark.parametrize("replicas", [1, 3])
def test_condition_failure_waits_for_the_queued_write(tmp_path: Any, replicas: int) -> None:
    async def scenario() -> None:
        db = Database(str(tmp_path), sync_mode="always", replicas=replicas)
        if hasattr(db, "wait_for_leaders"):
            await db.wait_for_leaders()
        app = TriplicaApp(db)
        try:
            app.handle(request("CreateTable", {
                "TableName": "queued", "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}))
            first = app.handle(request("PutItem", {"TableName": "queued",
                                                   "Item": {"pk": {"S": "k"}, "v": {"S": "1"}}}))
            assert inspect.isawaitable(first)  # queued, not durable yet
            # Evaluated against the queued item: the condition fails...
            failed = app.handle(request("PutItem", {
                "TableName": "queued", "Item": {"pk": {"S": "k"}, "v": {"S": "2"}},
                "ConditionExpression": "attribute_not_exists(pk)"}))
            # ...but the answer is held back while a reader still sees no item.
            assert inspect.isawaitable(failed)
            status, body, _ = app.handle(request("GetItem", {"TableName": "queued",
                                                             "Key": {"pk": {"S": "k"}}}))
            assert status == 200 and orjson.loads(body) == {}
            await first
            with pytest.raises(ConditionalCheckFailedException):
                await failed
            status, body, _ = app.handle(request("GetItem", {"TableName": "queued",
                                                             "Key": {"pk": {"S": "k"}}}))
            assert orjson.loads(body)["Item"]["v"] == {"S": "1"}
        finally:
            await app.close()
    asyncio.run(scenario())
