"""The whole engine of `triplica serve` in the test's own event loop, without HTTP.

`started` opens a Deployment (hosting/serve.py: nodes, metadata, MemDS,
router) on a temporary directory and waits until its groups have leaders;
`request` builds the HTTP request the API front takes, and `call` runs one
operation through the front and decodes the answer.
"""
from __future__ import annotations

import inspect
from typing import Any

import orjson

from triplica.api.http_server import Request
from triplica.hosting.serve import Deployment, ServeSettings

AUTH = ("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)
READY_S = 20.0


async def started(data_dir: str, **settings: Any) -> Deployment:
    deployment = Deployment(ServeSettings(data_dir=data_dir, **settings))
    await deployment.start()
    assert not await deployment.wait_ready(READY_S), "no leader in time"
    return deployment


def request(operation: str, body: dict[str, Any]) -> Request:
    return Request("POST", "/", "", {"x-amz-target": "DynamoDB_20120810." + operation,
                                     "content-type": "application/x-amz-json-1.0",
                                     "authorization": AUTH, "host": "test"}, orjson.dumps(body))


async def call(deployment: Deployment, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    assert deployment.app is not None
    result = deployment.app.handle(request(operation, body))
    status, payload, _ = await result if inspect.isawaitable(result) else result
    assert status == 200, payload
    return orjson.loads(payload)


async def create_table(deployment: Deployment, name: str) -> None:
    await call(deployment, "CreateTable", {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
