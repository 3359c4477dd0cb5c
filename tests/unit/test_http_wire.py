"""The DynamoDB JSON 1.0 envelope: target, content type, body, replies."""
from __future__ import annotations

import orjson
import pytest

from triplica.api import wire
from triplica.errors import (
    ConditionalCheckFailedException,
    SerializationException,
    UnknownOperationException,
)


def test_parse_target_returns_operation():
    assert wire.parse_target({"x-amz-target": "DynamoDB_20120810.GetItem"}) == "GetItem"


@pytest.mark.parametrize("headers", [
    {},
    {"x-amz-target": ""},
    {"x-amz-target": "DynamoDB_20111205.GetItem"},
    {"x-amz-target": "DynamoDBStreams_20120810.GetRecords"},
    {"x-amz-target": "GetItem"},
    {"x-amz-target": "DynamoDB_20120810.NoSuchThing"},
    {"x-amz-target": "DynamoDB_20120810."},
])
def test_bad_target_is_unknown_operation(headers):
    with pytest.raises(UnknownOperationException) as info:
        wire.parse_target(headers)
    assert info.value.body()["__type"] == \
        "com.amazon.coral.service#UnknownOperationException"
    assert info.value.status == 400
    assert info.value.message


@pytest.mark.parametrize("content_type", [
    None, "application/x-amz-json-1.0", "application/x-amz-json-1.1",
    "application/json", "application/json; charset=utf-8",
    "Application/X-Amz-Json-1.0",
])
def test_accepted_content_types(content_type):
    headers = {} if content_type is None else {"content-type": content_type}
    wire.check_content_type(headers)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", ""])
def test_rejected_content_types(content_type):
    with pytest.raises(SerializationException, match="Unsupported Content-Type"):
        wire.check_content_type({"content-type": content_type})


def test_parse_body():
    assert wire.parse_body(b'{"TableName":"t","Limit":3}') == {"TableName": "t", "Limit": 3}
    assert wire.parse_body(b"") == {}


@pytest.mark.parametrize("body", [b"{", b"nope", b'{"a":}', b"\xff\xfe", b"{}}"])
def test_unparsable_body_is_serialization_exception(body):
    with pytest.raises(SerializationException, match="not valid JSON"):
        wire.parse_body(body)


@pytest.mark.parametrize("body,kind", [
    (b"[]", "an array"), (b'"x"', "a string"), (b"1", "a number"),
    (b"null", "null"), (b"true", "a boolean"),
])
def test_non_object_body_is_serialization_exception(body, kind):
    with pytest.raises(SerializationException, match=f"found {kind}$"):
        wire.parse_body(body)


def test_decode_request_checks_target_first():
    with pytest.raises(UnknownOperationException):
        wire.decode_request({"content-type": "text/plain"}, b"[")
    assert wire.decode_request(
        {"x-amz-target": "DynamoDB_20120810.ListTables"}, b"{}") == ("ListTables", {})


def test_responses():
    assert orjson.loads(wire.ok_response({"TableNames": []})) == {"TableNames": []}
    status, body = wire.error_response(
        ConditionalCheckFailedException(item={"k": {"S": "v"}}))
    assert status == 400
    assert orjson.loads(body) == {
        "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
        "message": "The conditional request failed", "Item": {"k": {"S": "v"}}}
