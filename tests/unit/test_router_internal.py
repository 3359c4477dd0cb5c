"""Internal request parameters: honoured by a node's app, dropped everywhere else."""
from __future__ import annotations

import asyncio
import inspect
from typing import Any

import orjson

from triplica.api.app import TriplicaApp
from triplica.api.http_server import Request
from triplica.engine.database import Database
from triplica.model.partition_map import HASH_SPACE_END
from triplica.common.internal import (BYTES_READ, INTERNAL_KEY, LAST_KEY, VALIDATE_ONLY,
                                      encode_scan_slice)

AUTH = ("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)
ITEMS = 20


def _request(operation: str, body: dict[str, Any]) -> Request:
    return Request("POST", "/", "", {"x-amz-target": "DynamoDB_20120810." + operation,
                                     "content-type": "application/x-amz-json-1.0",
                                     "authorization": AUTH, "host": "test"}, orjson.dumps(body))


async def _call(app: TriplicaApp, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    result = app.handle(_request(operation, body))
    status, payload, _ = await result if inspect.isawaitable(result) else result
    assert status == 200, payload
    return orjson.loads(payload)


def _run(tmp_path: Any, accepts_internal: bool) -> dict[str, Any]:
    """Write through a validate-only batch, then scan an empty hash range."""
    async def scenario() -> dict[str, Any]:
        app = TriplicaApp(Database(str(tmp_path)), accepts_internal=accepts_internal)
        try:
            await _call(app, "CreateTable", {
                "TableName": "tbl", "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
            checked = await _call(app, "BatchWriteItem", {
                "RequestItems": {"tbl": [{"PutRequest": {"Item": {"pk": {"S": f"k{i}"}}}}
                                       for i in range(ITEMS)]},
                INTERNAL_KEY: {VALIDATE_ONLY: True}})
            if not accepts_internal:  # the check ran as a plain batch: write it again
                assert checked == {"UnprocessedItems": {}}
            else:
                assert checked == {}
                await _call(app, "BatchWriteItem", {"RequestItems": {"tbl": [
                    {"PutRequest": {"Item": {"pk": {"S": f"k{i}"}}}} for i in range(ITEMS)]}})
            whole = await _call(app, "Scan", {"TableName": "tbl"})
            assert whole["Count"] == ITEMS
            sliced = await _call(app, "Scan", {"TableName": "tbl", "Limit": 3,
                                               INTERNAL_KEY: encode_scan_slice(0, 1, 1000)})
            upper = await _call(app, "Scan", {
                "TableName": "tbl", "Limit": 3,
                INTERNAL_KEY: encode_scan_slice(HASH_SPACE_END // 2, HASH_SPACE_END, 1000)})
            return {"sliced": sliced, "upper": upper}
        finally:
            await app.close()
    return asyncio.run(scenario())


def test_a_node_app_honours_internal_parameters(tmp_path: Any) -> None:
    answers = _run(tmp_path, accepts_internal=True)
    assert answers["sliced"]["Count"] == 0
    assert answers["sliced"][INTERNAL_KEY] == {LAST_KEY: None, BYTES_READ: 0}
    upper = answers["upper"]
    assert upper["ScannedCount"] == 3 and upper[INTERNAL_KEY][LAST_KEY] == \
        upper["LastEvaluatedKey"]
    assert upper[INTERNAL_KEY][BYTES_READ] > 0


def test_other_apps_drop_them(tmp_path: Any) -> None:
    answers = _run(tmp_path, accepts_internal=False)
    assert answers["sliced"]["Count"] == 3 and INTERNAL_KEY not in answers["sliced"]
    assert INTERNAL_KEY not in answers["upper"]
