"""The DynamoDB JSON 1.0 envelope: target header, content type, body, replies.

Pure functions, no I/O. A request is `POST /` with header
`X-Amz-Target: DynamoDB_20120810.<Operation>` and a JSON object as its body;
a reply is a JSON object, or an error object `{"__type": ..., "message": ...}`
with a 4xx/5xx status. See "DynamoDB low-level API" in the DynamoDB Developer
Guide and the awsJson1_0 protocol of the Smithy specification.

Decisions:
- Content-Type: `application/x-amz-json-1.0` (what the SDKs send),
  `application/x-amz-json-1.1` and `application/json` are accepted, parameters
  such as `; charset=utf-8` ignored. A request without Content-Type is
  accepted as JSON too (curl-friendly). Any other type is rejected with
  SerializationException naming the type.
- An empty body is read as `{}` (operations without required parameters,
  such as ListTables, work from a bare curl).
- A body that does not parse as JSON, or whose top level is not an object,
  is a SerializationException with a message saying which.
"""
from __future__ import annotations

from typing import Any, Mapping

import orjson

from triplica.errors import (
    DynamoError,
    SerializationException,
    UnknownOperationException,
)

TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
CONTENT_TYPES_ACCEPTED = frozenset({
    "application/x-amz-json-1.0",
    "application/x-amz-json-1.1",
    "application/json",
})

# Every operation of the DynamoDB_20120810 API, implemented or not: a known
# name that triplica does not implement is the application's business (it
# should answer with a clear error), an unknown name is rejected here.
OPERATIONS = frozenset({
    "BatchExecuteStatement", "BatchGetItem", "BatchWriteItem",
    "CreateBackup", "CreateGlobalTable", "CreateTable",
    "DeleteBackup", "DeleteItem", "DeleteResourcePolicy", "DeleteTable",
    "DescribeBackup", "DescribeContinuousBackups",
    "DescribeContributorInsights", "DescribeEndpoints", "DescribeExport",
    "DescribeGlobalTable", "DescribeGlobalTableSettings", "DescribeImport",
    "DescribeKinesisStreamingDestination", "DescribeLimits", "DescribeTable",
    "DescribeTableReplicaAutoScaling", "DescribeTimeToLive",
    "DisableKinesisStreamingDestination", "EnableKinesisStreamingDestination",
    "ExecuteStatement", "ExecuteTransaction", "ExportTableToPointInTime",
    "GetItem", "GetResourcePolicy", "ImportTable",
    "ListBackups", "ListContributorInsights", "ListExports",
    "ListGlobalTables", "ListImports", "ListTables", "ListTagsOfResource",
    "PutItem", "PutResourcePolicy", "Query",
    "RestoreTableFromBackup", "RestoreTableToPointInTime", "Scan",
    "TagResource", "TransactGetItems", "TransactWriteItems", "UntagResource",
    "UpdateContinuousBackups", "UpdateContributorInsights",
    "UpdateGlobalTable", "UpdateGlobalTableSettings", "UpdateItem",
    "UpdateKinesisStreamingDestination", "UpdateTable",
    "UpdateTableReplicaAutoScaling", "UpdateTimeToLive",
})

_TARGET_PREFIX_LENGTH = len(TARGET_PREFIX)


def parse_target(headers: Mapping[str, str]) -> str:
    """Return the operation named by `x-amz-target` (lower-cased header keys)."""
    target = headers.get("x-amz-target")
    if not target:
        raise UnknownOperationException(
            "Missing X-Amz-Target header; expected "
            f"'{TARGET_PREFIX}<Operation>'")
    if not target.startswith(TARGET_PREFIX):
        raise UnknownOperationException(
            f"Unknown X-Amz-Target '{target}'; expected "
            f"'{TARGET_PREFIX}<Operation>'")
    operation = target[_TARGET_PREFIX_LENGTH:]
    if operation not in OPERATIONS:
        raise UnknownOperationException(f"Unknown operation '{operation}'")
    return operation


def check_content_type(headers: Mapping[str, str]) -> None:
    """Reject a body that does not claim to be JSON (see module doc)."""
    content_type = headers.get("content-type")
    if content_type is None or content_type == CONTENT_TYPE:
        return
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type not in CONTENT_TYPES_ACCEPTED:
        raise SerializationException(
            f"Unsupported Content-Type '{content_type}'; "
            f"expected '{CONTENT_TYPE}'")


def parse_body(body: bytes) -> dict[str, Any]:
    """Decode the request body: a JSON object, or `{}` when empty."""
    if not body:
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:   # the parser's own words are not DynamoDB's
        raise SerializationException("Request body is not valid JSON") from None
    if type(value) is not dict:
        raise SerializationException(
            "Request body must be a JSON object, found "
            f"{_json_kind(value)}")
    return value


def decode_request(headers: Mapping[str, str], body: bytes) -> tuple[str, dict[str, Any]]:
    """Operation name and parameters of one request, in DynamoDB's check order."""
    operation = parse_target(headers)
    check_content_type(headers)
    return operation, parse_body(body)


def ok_response(obj: Any) -> bytes:
    """Serialize a successful reply."""
    return orjson.dumps(obj)


def error_response(err: DynamoError) -> tuple[int, bytes]:
    """HTTP status and JSON body of an error reply."""
    return err.status, orjson.dumps(err.body())


def _json_kind(value: Any) -> str:
    if type(value) is list:
        return "an array"
    if type(value) is str:
        return "a string"
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    return "a number"
