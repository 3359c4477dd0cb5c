"""HTTP behaviours around the API (issue 11, section 5): the health check,
CORS, compressed request bodies and the Server header, over raw sockets
(boto3 sends none of these)."""
from __future__ import annotations

import gzip
import json
import time
import zlib
from typing import Any

import pytest

from tests.integration import raw_http
from tests.integration.conftest import make_table
from tests.integration.server import ServerProcess


def _put_body(table: str, pk: str) -> bytes:
    return json.dumps({"TableName": table, "Item": {"pk": {"S": pk}, "v": {"S": "x" * 100}}}).encode()


def _get(server: ServerProcess, table: str, pk: str) -> Any:
    reply = raw_http.call(server.port, "GetItem", {"TableName": table, "Key": {"pk": {"S": pk}},
                                                  "ConsistentRead": True})
    assert reply.status == 200, reply.body
    return reply.json().get("Item")


@pytest.fixture(scope="module")
def table(ddb: Any) -> str:
    return make_table(ddb, range_key=None)


def test_health_check(server: ServerProcess) -> None:
    reply = raw_http.request(server.port, "GET", "/")
    assert reply.status == 200
    assert reply.body == f"healthy: 127.0.0.1:{server.port}".encode()
    assert reply.headers["content-type"] == "text/plain"
    reply = raw_http.request(server.port, "GET", "/", headers={"Host": "db.example:8000"})
    assert reply.status == 200 and reply.body == b"healthy: db.example:8000"


def test_server_header_on_every_answer(server: ServerProcess) -> None:
    assert raw_http.request(server.port, "GET", "/").headers["server"] == "triplica"
    assert raw_http.call(server.port, "ListTables", {}).headers["server"] == "triplica"
    reply = raw_http.call(server.port, "NoSuchOperation", {})
    assert reply.status == 400 and reply.headers["server"] == "triplica"


def test_cors_headers_with_an_origin(server: ServerProcess) -> None:
    reply = raw_http.call(server.port, "ListTables", {}, Origin="http://localhost:8001")
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "x-amzn-RequestId" in reply.headers["access-control-expose-headers"]
    error = raw_http.call(server.port, "DescribeTable", {"TableName": "nope-nope"},
                          Origin="http://localhost:8001")
    assert error.status == 400 and error.headers["access-control-allow-origin"] == "*"
    plain = raw_http.call(server.port, "ListTables", {})
    assert "access-control-allow-origin" not in plain.headers


def test_cors_preflight(server: ServerProcess) -> None:
    reply = raw_http.request(server.port, "OPTIONS", "/", headers={
        "Origin": "http://localhost:8001", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-amz-target,x-amz-date"})
    assert reply.status == 200 and reply.body == b""
    assert reply.headers["access-control-allow-origin"] == "*"
    assert reply.headers["access-control-allow-methods"] == "POST"
    assert reply.headers["access-control-allow-headers"] == \
        "authorization,content-type,x-amz-target,x-amz-date"
    assert int(reply.headers["access-control-max-age"]) > 0


@pytest.mark.parametrize("encoding,encode", [
    ("gzip", gzip.compress),
    ("GZip", gzip.compress),
    ("gzip", lambda body: gzip.compress(body[:10]) + gzip.compress(body[10:])),   # two members
    ("deflate", zlib.compress),
    ("deflate", lambda body: zlib.compress(body)[2:-4]),   # a bare deflate stream
    ("gzip, deflate", lambda body: zlib.compress(gzip.compress(body))),
    ("identity", lambda body: body),
], ids=["gzip", "case", "concatenated", "deflate", "raw-deflate", "both", "identity"])
def test_compressed_bodies_are_decoded(server: ServerProcess, table: str, encoding: str,
                                       encode: Any) -> None:
    pk = f"enc-{encoding}-{time.monotonic_ns()}"
    reply = raw_http.call(server.port, "PutItem", encode(_put_body(table, pk)),
                          **{"Content-Encoding": encoding})
    assert reply.status == 200, reply.body
    assert _get(server, table, pk)["v"] == {"S": "x" * 100}


@pytest.mark.parametrize("encoding,encode,fragment", [
    ("br", lambda body: body, "Unsupported Content-Encoding 'br'"),
    ("gzip", lambda body: b"", "the body is empty"),
    ("deflate", lambda body: b"", "the body is empty"),
    ("gzip", lambda body: body, "not valid gzip data"),
    ("gzip", lambda body: gzip.compress(body)[:-9], "truncated"),
    ("gzip", lambda body: gzip.compress(body) + b"junk", "not valid gzip data"),
    ("deflate", lambda body: zlib.compress(body)[:-3], "truncated"),
    ("deflate", lambda body: zlib.compress(body) + b"\0", "bytes after the end"),
], ids=["unknown", "empty-gzip", "empty-deflate", "not-gzip", "truncated-gzip",
        "trailing-junk", "truncated-deflate", "trailing-deflate"])
def test_bad_compressed_bodies_write_nothing(server: ServerProcess, table: str, encoding: str,
                                             encode: Any, fragment: str) -> None:
    pk = f"bad-{time.monotonic_ns()}"
    reply = raw_http.call(server.port, "PutItem", encode(_put_body(table, pk)),
                          **{"Content-Encoding": encoding})
    assert reply.status == 400, reply.body
    assert reply.error_type == "SerializationException"
    assert fragment in reply.message
    assert _get(server, table, pk) is None


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_zip_bomb_is_refused_without_inflating_it(server: ServerProcess, table: str) -> None:
    expanded_bytes = 512 * 1024 * 1024          # what the body would inflate to
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    bomb = b"".join(compressor.compress(zeros) for _ in range(expanded_bytes // len(zeros)))
    bomb += compressor.flush()
    assert len(bomb) < 1024 * 1024
    peak_before = _peak_rss_kb(server.process.pid)
    reply = raw_http.call(server.port, "PutItem", bomb, **{"Content-Encoding": "gzip"})
    assert reply.status == 413, reply.body
    assert reply.error_type == "RequestEntityTooLarge"
    growth_mb = (_peak_rss_kb(server.process.pid) - peak_before) / 1024
    assert growth_mb < 64, f"peak memory grew {growth_mb:.0f} MB"
    assert raw_http.call(server.port, "ListTables", {}).status == 200
