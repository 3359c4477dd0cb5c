"""The JSON 1.0 envelope and SigV4 verification, against real server processes."""
from __future__ import annotations

import http.client
import json
from typing import Any, Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess

AUTH = ("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)


def post(server: ServerProcess, body: bytes, headers: dict[str, str]) -> tuple[int, dict, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        return response.status, json.loads(payload) if payload else {}, dict(response.getheaders())
    finally:
        connection.close()


def headers(target: str = "DynamoDB_20120810.ListTables", **extra: str) -> dict[str, str]:
    return {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0",
            "Authorization": AUTH, **extra}


def test_envelope_success_headers(server: ServerProcess) -> None:
    status, body, response_headers = post(server, b"{}", headers())
    assert status == 200 and "TableNames" in body
    assert len(response_headers["x-amzn-RequestId"]) == 52
    assert response_headers["Content-Type"] == "application/x-amz-json-1.0"
    assert "x-amz-crc32" in response_headers


@pytest.mark.parametrize("target,error", [
    ("DynamoDB_20120810.NoSuchThing", "UnknownOperationException"),
    ("Other_20120810.ListTables", "UnknownOperationException"),
])
def test_unknown_operation(server: ServerProcess, target: str, error: str) -> None:
    status, body, _ = post(server, b"{}", headers(target))
    assert status == 400 and body["__type"].endswith("#" + error)


def test_malformed_json_and_wrong_content_type(server: ServerProcess) -> None:
    status, body, _ = post(server, b"{not json", headers())
    assert status == 400 and body["__type"].endswith("#SerializationException")
    status, body, _ = post(server, b"[1]", headers())
    assert status == 400 and body["__type"].endswith("#SerializationException")
    status, body, _ = post(server, b"{}", headers(**{"Content-Type": "text/plain"}))
    assert status == 400 and body["__type"].endswith("#SerializationException")


def test_missing_and_malformed_authorization(server: ServerProcess) -> None:
    plain = headers()
    del plain["Authorization"]
    status, body, _ = post(server, b"{}", plain)
    assert status == 400 and body["__type"].endswith("#MissingAuthenticationTokenException")
    assert body["message"] == "Request is missing Authentication Token"
    status, body, _ = post(server, b"{}", headers(Authorization="AWS4-HMAC-SHA256 Foo=bar"))
    assert status == 400 and body["__type"].endswith("#IncompleteSignatureException")


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("locked")
    credentials = directory / "credentials"
    credentials.write_text("# test keys\nAKIDGOOD goodsecret\n")
    server = ServerProcess(str(directory / "data"), "--credentials", str(credentials)).start()
    yield server
    server.stop()


def client(server: ServerProcess, key: str, secret: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=server.endpoint, region_name="eu-west-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}))


def test_verified_signatures(locked: ServerProcess) -> None:
    good = client(locked, "AKIDGOOD", "goodsecret")
    good.create_table(TableName="signed", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                      BillingMode="PAY_PER_REQUEST")
    good.put_item(TableName="signed", Item={"pk": {"S": "a"}})
    assert good.get_item(TableName="signed", Key={"pk": {"S": "a"}})["Item"]
    arn = good.describe_table(TableName="signed")["Table"]["TableArn"]
    assert arn.startswith("arn:aws:dynamodb:eu-west-1:")
    with pytest.raises(ClientError) as info:
        client(locked, "AKIDGOOD", "wrongsecret").list_tables()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["Error"]["Message"].startswith(
        "The request signature we calculated does not match the signature you provided.")
    with pytest.raises(ClientError) as info:
        client(locked, "AKIDUNKNOWN", "whatever").list_tables()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert info.value.response["Error"]["Message"] == (
        "The security token included in the request is invalid.")


def test_expired_signature(locked: ServerProcess) -> None:
    status, body, _ = post(locked, b"{}", headers(**{
        "X-Amz-Date": "20200101T000000Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDGOOD/20200101/us-east-1/dynamodb/"
                         "aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "a" * 64}))
    assert status == 400 and body["__type"].endswith("#InvalidSignatureException")
    assert body["message"].startswith("Signature expired: 20200101T000000Z is now earlier than")


def test_error_type_namespaces(server: ServerProcess) -> None:
    status, body, _ = post(server, b'{"TableName": "x"}', headers("DynamoDB_20120810.DescribeTable"))
    assert body["__type"] == "com.amazon.coral.validate#ValidationException"
    status, body, _ = post(server, b'{"TableName": "nonexistent"}',
                           headers("DynamoDB_20120810.DescribeTable"))
    assert body["__type"] == "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"
