"""Requests boto3 cannot send: any JSON (nulls where the model forbids them),
any bytes, any headers, over a plain socket to a real server.

The Authorization header is well formed but not signed: servers started by
the tests accept any key unless `--credentials` is given.
"""
from __future__ import annotations

import http.client
import json
from typing import Any

AUTH = ("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)
TARGET_PREFIX = "DynamoDB_20120810."


class Reply:
    """Status, headers (names lower-cased) and raw body of one response."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_type(self) -> str:
        return self.json()["__type"].rpartition("#")[2]

    @property
    def message(self) -> str:
        document = self.json()
        return document.get("message", document.get("Message", ""))


def dynamo_headers(operation: str, **extra: str) -> dict[str, str]:
    return {"X-Amz-Target": TARGET_PREFIX + operation,
            "Content-Type": "application/x-amz-json-1.0", "Authorization": AUTH, **extra}


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout_s: float = 30.0) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        payload = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, payload)
    finally:
        connection.close()


def call(port: int, operation: str, document: Any, **headers: str) -> Reply:
    """POST one DynamoDB operation with `document` as its JSON body."""
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return request(port, "POST", "/", body, dynamo_headers(operation, **headers))
