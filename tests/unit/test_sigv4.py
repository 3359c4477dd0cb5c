"""SigV4 checking against botocore's own signer."""
from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone

import boto3
import botocore.config
import pytest
import uvloop
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from triplica.api import sigv4, wire
from triplica.api.http_server import Request, serve
from triplica.api.sigv4 import Authenticator, load_credentials
from triplica.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDENTIALS = {KEY_ID: SECRET, "OTHER": "other-secret"}


def signed(body: bytes = b'{"TableName":"t"}', *, key_id: str = KEY_ID,
           secret: str = SECRET, region: str = "us-east-1",
           service: str = "dynamodb",
           url: str = "http://localhost:8000/") -> tuple[Request, datetime]:
    """A request signed by botocore, as our server would have parsed it."""
    aws = AWSRequest(method="POST", url=url, data=body, headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.GetItem",
    })
    SigV4Auth(Credentials(key_id, secret), service, region).add_auth(aws)
    headers = {name.lower(): value for name, value in aws.headers.items()}
    headers["host"] = "localhost:8000"
    path, _, query = url.split("localhost:8000", 1)[1].partition("?")
    signed_at = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ") \
        .replace(tzinfo=timezone.utc)
    return Request("POST", path, query, headers, body), signed_at


def test_botocore_signature_verifies():
    request, now = signed()
    assert Authenticator(CREDENTIALS).check(request, now) == KEY_ID


def test_other_region_and_query_and_path_verify():
    request, now = signed(region="eu-west-3",
                          url="http://localhost:8000/a/./b/../c?z=1&a=%2F%20x&a=0")
    authenticator = Authenticator(CREDENTIALS)
    assert authenticator.check(request, now) == KEY_ID
    assert authenticator.check(request, now) == KEY_ID   # cached signing key


def test_empty_body_verifies():
    request, now = signed(b"")
    assert Authenticator(CREDENTIALS).check(request, now) == KEY_ID


def test_tampered_body_is_invalid_signature():
    request, now = signed()
    request.body = b'{"TableName":"u"}'
    with pytest.raises(InvalidSignatureException) as info:
        Authenticator(CREDENTIALS).check(request, now)
    assert info.value.message.startswith(
        "The request signature we calculated does not match")
    assert info.value.body()["__type"] == \
        "com.amazon.coral.service#InvalidSignatureException"


@pytest.mark.parametrize("header,value", [
    ("x-amz-target", "DynamoDB_20120810.DeleteTable"),
    ("host", "evil:8000"),
])
def test_tampered_signed_header_is_invalid_signature(header, value):
    request, now = signed()
    request.headers[header] = value
    with pytest.raises(InvalidSignatureException, match="does not match"):
        Authenticator(CREDENTIALS).check(request, now)


def test_tampered_path_or_method_is_invalid_signature():
    request, now = signed()
    request.path = "/other"
    with pytest.raises(InvalidSignatureException):
        Authenticator(CREDENTIALS).check(request, now)
    request, now = signed()
    request.method = "PUT"
    with pytest.raises(InvalidSignatureException):
        Authenticator(CREDENTIALS).check(request, now)


def test_wrong_secret_is_invalid_signature():
    request, now = signed(secret="not-the-secret")
    with pytest.raises(InvalidSignatureException, match="does not match"):
        Authenticator(CREDENTIALS).check(request, now)


def test_unknown_key_is_unrecognized_client():
    request, now = signed(key_id="AKIDUNKNOWN")
    with pytest.raises(UnrecognizedClientException) as info:
        Authenticator(CREDENTIALS).check(request, now)
    assert info.value.message == "The security token included in the request is invalid."
    assert info.value.body()["__type"] == \
        "com.amazon.coral.service#UnrecognizedClientException"


def test_wrong_service_is_invalid_signature():
    request, now = signed(service="s3")
    with pytest.raises(InvalidSignatureException, match="correct service: 'dynamodb'"):
        Authenticator(CREDENTIALS).check(request, now)


def test_expired_signature():
    request, signed_at = signed()
    now = signed_at + timedelta(minutes=15, seconds=1)
    with pytest.raises(InvalidSignatureException) as info:
        Authenticator(CREDENTIALS).check(request, now)
    stamp = request.headers["x-amz-date"]
    limit = (now - timedelta(minutes=15)).strftime("%Y%m%dT%H%M%SZ")
    assert info.value.message == (
        f"Signature expired: {stamp} is now earlier than {limit} "
        f"({now.strftime('%Y%m%dT%H%M%SZ')} - 15 min.)")
    # Exactly 15 minutes is still fine.
    Authenticator(CREDENTIALS).check(request, signed_at + timedelta(minutes=15))


def test_signature_from_the_future():
    request, signed_at = signed()
    now = signed_at - timedelta(minutes=16)
    with pytest.raises(InvalidSignatureException,
                       match=r"^Signature not yet current: \d{8}T\d{6}Z is still later than"):
        Authenticator(CREDENTIALS).check(request, now)


def test_naive_now_is_utc():
    request, signed_at = signed()
    assert Authenticator(CREDENTIALS).check(
        request, signed_at.replace(tzinfo=None)) == KEY_ID


def test_date_header_instead_of_x_amz_date_must_still_match_signature():
    request, now = signed()
    del request.headers["x-amz-date"]
    request.headers["date"] = now.strftime("%a, %d %b %Y %H:%M:%S GMT")
    # botocore signed x-amz-date, which is now absent: the signature fails.
    with pytest.raises(InvalidSignatureException, match="does not match"):
        Authenticator(CREDENTIALS).check(request, now)


def test_missing_date_is_incomplete():
    request, now = signed()
    del request.headers["x-amz-date"]
    with pytest.raises(IncompleteSignatureException, match="'X-Amz-Date' or a 'Date'"):
        Authenticator(CREDENTIALS).check(request, now)


@pytest.mark.parametrize("value", ["2024-01-01T00:00:00Z", "", "20240101T000000",
                                   "2024010IT000000Z", "20241301T000000Z"])
def test_malformed_x_amz_date_is_incomplete(value):
    request, now = signed()
    request.headers["x-amz-date"] = value
    with pytest.raises(IncompleteSignatureException, match="ISO-8601"):
        Authenticator(CREDENTIALS).check(request, now)


def test_scope_date_must_match_request_date():
    request, now = signed()
    request.headers["x-amz-date"] = (now + timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")
    with pytest.raises(InvalidSignatureException, match="Date in Credential scope"):
        Authenticator(CREDENTIALS).check(request, now)


def test_host_must_be_signed():
    request, now = signed()
    auth = request.headers["authorization"]
    request.headers["authorization"] = auth.replace("SignedHeaders=", "SignedHeaders=x;")\
        .replace("host;", "")
    with pytest.raises(InvalidSignatureException, match="'Host' must be"):
        Authenticator(CREDENTIALS).check(request, now)


# ------------------------------------------------------- header well-formedness

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
GOOD = ("AWS4-HMAC-SHA256 Credential=AKID/20240501/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "ab" * 32)


def check_header(value: str | None, credentials=None) -> str:
    headers = {} if value is None else {"authorization": value}
    return Authenticator(credentials).check(Request("POST", "/", "", headers, b""), NOW)


def test_without_credentials_a_well_formed_header_suffices():
    assert check_header(GOOD) == "AKID"


@pytest.mark.parametrize("credentials", [None, CREDENTIALS])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_header(credentials, value):
    with pytest.raises(MissingAuthenticationTokenException) as info:
        check_header(value, credentials)
    assert info.value.message == "Request is missing Authentication Token"
    assert info.value.body()["__type"] == \
        "com.amazon.coral.service#MissingAuthenticationTokenException"


@pytest.mark.parametrize("credentials", [None, CREDENTIALS])
def test_header_missing_every_parameter(credentials):
    with pytest.raises(IncompleteSignatureException) as info:
        check_header("AWS4-HMAC-SHA256 garbage", credentials)
    assert info.value.message == (
        "Authorization header requires 'Credential' parameter. "
        "Authorization header requires 'Signature' parameter. "
        "Authorization header requires 'SignedHeaders' parameter. "
        "Authorization=AWS4-HMAC-SHA256 garbage")


@pytest.mark.parametrize("value,fragment", [
    (GOOD.replace(", Signature=" + "ab" * 32, ""), "requires 'Signature' parameter"),
    (GOOD.replace("SignedHeaders=host;x-amz-date, ", ""), "requires 'SignedHeaders'"),
    (GOOD.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"), "Unsupported AWS 'algorithm'"),
    ("Bearer token", "Unsupported AWS 'algorithm'"),
    (GOOD.replace("/us-east-1", ""), "exactly 5 slash-delimited elements"),
    (GOOD.replace("ab" * 32, "ab" * 31), "64 hexadecimal characters"),
    (GOOD.replace("ab" * 32, "zz" * 32), "64 hexadecimal characters"),
    (GOOD.replace("host;x-amz-date", "host;;x-amz-date"), "empty header name"),
])
def test_malformed_header_is_incomplete_signature(value, fragment):
    with pytest.raises(IncompleteSignatureException, match=fragment):
        check_header(value)


def test_parse_authorization_parts():
    auth = sigv4.parse_authorization(GOOD)
    assert (auth.access_key_id, auth.date, auth.region, auth.service) == \
        ("AKID", "20240501", "us-east-1", "dynamodb")
    assert auth.signed_headers == ["host", "x-amz-date"]
    assert auth.scope == "20240501/us-east-1/dynamodb/aws4_request"


# ------------------------------------------------------------ credentials file

def test_load_credentials(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("# triplica credentials\n\nAKID1 secret/one+x\n"
                    "  AKID2=secret2   # the second\nAKID3 = secret3\n")
    assert load_credentials(str(path)) == {
        "AKID1": "secret/one+x", "AKID2": "secret2", "AKID3": "secret3"}


@pytest.mark.parametrize("text", ["AKID\n", "AKID a b\n", "=secret\n", "A x\nA y\n"])
def test_load_credentials_rejects_bad_lines(tmp_path, text):
    path = tmp_path / "credentials"
    path.write_text(text)
    with pytest.raises(ValueError, match="credentials:"):
        load_credentials(str(path))


# ----------------------------------------------------- boto3 through the server

class AuthenticatingApp:
    def __init__(self) -> None:
        self.authenticator = Authenticator(CREDENTIALS)

    def handle(self, request: Request):
        self.authenticator.check(request, datetime.now(timezone.utc))
        operation, params = wire.decode_request(request.headers, request.body)
        if operation == "ListTables":
            return 200, wire.ok_response({"TableNames": ["signed-ok"]}), None
        return 200, wire.ok_response({}), None


@pytest.fixture(scope="module")
def endpoint():
    loop = uvloop.new_event_loop()
    started = threading.Event()
    state = {}

    def main():
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(serve(AuthenticatingApp(), "127.0.0.1", 0))
        state["port"] = server.sockets[0].getsockname()[1]
        started.set()
        loop.run_forever()
        server.close()
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert started.wait(5)
    yield f"http://127.0.0.1:{state['port']}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def client(endpoint: str, key_id: str, secret: str):
    return boto3.client(
        "dynamodb", endpoint_url=endpoint, region_name="us-west-2",
        aws_access_key_id=key_id, aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": 0}))


def test_boto3_round_trip_with_verified_signature(endpoint):
    dynamodb = client(endpoint, KEY_ID, SECRET)
    for _ in range(3):   # keep-alive through botocore's connection pool
        response = dynamodb.list_tables()
        assert response["TableNames"] == ["signed-ok"]
        assert len(response["ResponseMetadata"]["RequestId"]) == 52


def test_boto3_wrong_secret_and_unknown_key(endpoint):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client(endpoint, KEY_ID, "wrong").list_tables()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client(endpoint, "NOBODY", SECRET).list_tables()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
