"""The HTTP front over real sockets: framing, order, errors, limits, headers.

The server runs on a uvloop loop in a background thread; the tests talk to it
with raw sockets so that pipelining and connection state are visible.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import zlib

import orjson
import pytest
import uvloop

from triplica.api import wire
from triplica.api.http_server import Request, serve
from triplica.errors import ResourceNotFoundException
from triplica.model import limits


class EchoApp:
    """Answers by path: / decodes the envelope and echoes; others misbehave."""

    def handle(self, request: Request):
        if request.path == "/slow":
            return self._slow(request)
        if request.path == "/boom":
            raise RuntimeError("boom")
        if request.path == "/async-boom":
            return self._async_boom()
        if request.path == "/missing":
            raise ResourceNotFoundException("Requested resource not found")
        if request.path == "/bad-result":
            return None
        operation, params = wire.decode_request(request.headers, request.body)
        return 200, wire.ok_response({"op": operation, "params": params,
                                      "query": request.query}), None

    async def _slow(self, request: Request):
        await asyncio.sleep(float(request.query or "0.05"))
        return 200, b'{"slow":true}', {"x-extra": "1"}

    async def _async_boom(self):
        await asyncio.sleep(0)
        raise ValueError("async boom")


@pytest.fixture(scope="module")
def server_port():
    loop = uvloop.new_event_loop()
    started = threading.Event()
    state = {}

    def main():
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(serve(EchoApp(), "127.0.0.1", 0))
        state["server"] = server
        state["port"] = server.sockets[0].getsockname()[1]
        started.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert started.wait(5)
    yield state["port"]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request_bytes(op: str | None = "ListTables", body: bytes = b"{}",
                  path: str = "/", extra: str = "", version: str = "1.1") -> bytes:
    target = f"X-Amz-Target: DynamoDB_20120810.{op}\r\n" if op else ""
    return (f"POST {path} HTTP/{version}\r\nHost: localhost\r\n{target}"
            f"Content-Type: application/x-amz-json-1.0\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class Reader:
    """Reads Content-Length framed responses off one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def at_eof(self) -> bool:
        try:
            return self.buffer == b"" and self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(f"connection closed; buffered {self.buffer!r}")
        self.buffer += data


def test_keep_alive_serves_several_requests_on_one_connection(server_port):
    with connect(server_port) as sock:
        reader = Reader(sock)
        for i in range(5):
            sock.sendall(request_bytes("GetItem", orjson.dumps({"i": i})))
            status, headers, body = reader.response()
            assert status == 200
            assert orjson.loads(body)["params"] == {"i": i}
            assert "connection" not in headers


def test_every_response_carries_the_dynamodb_headers(server_port):
    with connect(server_port) as sock:
        reader = Reader(sock)
        ids = set()
        for _ in range(3):
            sock.sendall(request_bytes())
            status, headers, body = reader.response()
            assert headers["x-amz-crc32"] == str(zlib.crc32(body))
            assert headers["content-type"] == "application/x-amz-json-1.0"
            assert int(headers["content-length"]) == len(body)
            assert re.fullmatch(r"[A-Z0-9]{52}", headers["x-amzn-requestid"])
            assert headers["date"].endswith(" GMT")
            ids.add(headers["x-amzn-requestid"])
        assert len(ids) == 3


def test_pipelined_requests_are_answered_in_order(server_port):
    with connect(server_port) as sock:
        reader = Reader(sock)
        # A slow awaitable first: the fast ones behind it must wait for it.
        payload = request_bytes(path="/slow?0.1", body=b"")
        for i in range(10):
            payload += request_bytes("GetItem", orjson.dumps({"i": i}))
        payload += request_bytes(path="/slow?0", body=b"")
        sock.sendall(payload)
        assert reader.response()[2] == b'{"slow":true}'
        for i in range(10):
            assert orjson.loads(reader.response()[2])["params"] == {"i": i}
        status, headers, body = reader.response()
        assert body == b'{"slow":true}' and headers["x-extra"] == "1"


def test_pipelining_beyond_the_queue_bound_still_answers_everything(server_port):
    with connect(server_port) as sock:
        reader = Reader(sock)
        count = 300
        sock.sendall(b"".join(request_bytes("GetItem", orjson.dumps({"i": i}))
                              for i in range(count)))
        for i in range(count):
            assert orjson.loads(reader.response()[2])["params"] == {"i": i}


def test_request_split_across_packets(server_port):
    with connect(server_port) as sock:
        reader = Reader(sock)
        data = request_bytes("PutItem", b'{"TableName":"t"}', path="/?a=1")
        for i in range(0, len(data), 7):
            sock.sendall(data[i:i + 7])
        status, _, body = reader.response()
        assert status == 200
        assert orjson.loads(body) == {"op": "PutItem", "params": {"TableName": "t"},
                                      "query": "a=1"}


def test_chunked_request_body(server_port):
    with connect(server_port) as sock:
        head = (b"POST / HTTP/1.1\r\nHost: x\r\n"
                b"X-Amz-Target: DynamoDB_20120810.Scan\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        sock.sendall(head + b"5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n")
        status, _, body = Reader(sock).response()
        assert status == 200 and orjson.loads(body)["params"] == {"a": 1}


@pytest.mark.parametrize("path", ["/boom", "/async-boom", "/bad-result"])
def test_handler_exception_is_500_and_connection_survives(server_port, path, caplog):
    with connect(server_port) as sock:
        reader = Reader(sock)
        sock.sendall(request_bytes(path=path))
        status, headers, body = reader.response()
        assert status == 500
        assert orjson.loads(body) == {
            "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "message": "Internal server error"}
        assert headers["x-amz-crc32"] == str(zlib.crc32(body))
        sock.sendall(request_bytes())
        assert reader.response()[0] == 200
        assert "handler failed" in caplog.text
        if path != "/bad-result":
            assert "Traceback" in caplog.text and "boom" in caplog.text


def test_dynamo_error_from_handler_becomes_its_json_error(server_port):
    with connect(server_port) as sock:
        sock.sendall(request_bytes(path="/missing"))
        status, _, body = Reader(sock).response()
        assert status == 400
        assert orjson.loads(body) == {
            "__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
            "message": "Requested resource not found"}


def test_missing_target_is_unknown_operation(server_port):
    with connect(server_port) as sock:
        sock.sendall(request_bytes(op=None))
        status, _, body = Reader(sock).response()
        assert status == 400
        assert orjson.loads(body)["__type"] == \
            "com.amazon.coral.service#UnknownOperationException"


def test_malformed_json_is_serialization_exception(server_port):
    with connect(server_port) as sock:
        reader = Reader(sock)
        sock.sendall(request_bytes(body=b'{"TableName": '))
        status, _, body = reader.response()
        assert status == 400
        error = orjson.loads(body)
        assert error["__type"] == "com.amazon.coral.service#SerializationException"
        assert "not valid JSON" in error["message"]
        sock.sendall(request_bytes())   # still usable
        assert reader.response()[0] == 200


def test_oversized_body_is_413_and_closes(server_port):
    with connect(server_port) as sock:
        reader = Reader(sock)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n"
                     b"X-Amz-Target: DynamoDB_20120810.PutItem\r\n"
                     b"Content-Length: %d\r\n\r\n{" % (limits.REQUEST_BODY_BYTES_MAX + 1))
        status, headers, body = reader.response()
        assert status == 413
        assert headers["connection"] == "close"
        assert orjson.loads(body)["__type"] == \
            "com.amazonaws.dynamodb.v20120810#RequestEntityTooLarge"
        assert reader.at_eof()


def test_oversized_chunked_body_is_413(server_port):
    with connect(server_port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * (1024 * 1024)
        try:
            for _ in range(17):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, _ = Reader(sock).response()
        assert status == 413


def test_malformed_http_is_400_and_closes_after_earlier_replies(server_port):
    with connect(server_port) as sock:
        reader = Reader(sock)
        sock.sendall(request_bytes(path="/slow?0.05", body=b"")
                     + b"NOT HTTP AT ALL\r\n\r\n")
        assert reader.response()[0] == 200
        status, headers, _ = reader.response()
        assert status == 400 and headers["connection"] == "close"
        assert reader.at_eof()


def test_oversized_headers_are_400_and_close(server_port):
    with connect(server_port) as sock:
        reader = Reader(sock)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n"
                     + b"X-Filler: %s\r\n" % (b"a" * 1000) * 70)
        status, headers, body = reader.response()
        assert status == 400 and headers["connection"] == "close"
        assert b"exceed 65536 bytes" in body


def test_connection_close_header_is_honoured(server_port):
    with connect(server_port) as sock:
        reader = Reader(sock)
        sock.sendall(request_bytes(extra="Connection: close\r\n"))
        status, headers, _ = reader.response()
        assert status == 200 and headers["connection"] == "close"
        assert reader.at_eof()


def test_http_1_0_closes_unless_keep_alive(server_port):
    with connect(server_port) as sock:
        reader = Reader(sock)
        sock.sendall(request_bytes(version="1.0", extra="Connection: keep-alive\r\n"))
        status, headers, _ = reader.response()
        assert status == 200 and headers["connection"] == "keep-alive"
        sock.sendall(request_bytes(version="1.0"))
        status, headers, _ = reader.response()
        assert status == 200 and headers["connection"] == "close"
        assert reader.at_eof()


def test_half_closed_client_still_gets_its_replies(server_port):
    with connect(server_port) as sock:
        reader = Reader(sock)
        sock.sendall(request_bytes(path="/slow?0.05", body=b"") + request_bytes())
        sock.shutdown(socket.SHUT_WR)
        assert reader.response()[0] == 200
        assert reader.response()[0] == 200
        assert reader.at_eof()


def test_expect_100_continue(server_port):
    with connect(server_port) as sock:
        reader = Reader(sock)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n"
                     b"X-Amz-Target: DynamoDB_20120810.Scan\r\n"
                     b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        while b"\r\n\r\n" not in reader.buffer:
            reader._fill()
        assert reader.buffer.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        reader.buffer = reader.buffer[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        sock.sendall(b"{}")
        assert reader.response()[0] == 200


RUN_SCRIPT = """
import asyncio
from triplica.api.http_server import run

class App:
    def handle(self, request):
        return 200, b"{}", None
    async def close(self):
        await asyncio.sleep(0)
        print("app closed", flush=True)

run(App(), "127.0.0.1", 0)
print("run returned", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_prints_address_and_stops_cleanly_on_signal(signum):
    process = subprocess.Popen([sys.executable, "-c", RUN_SCRIPT],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = process.stdout.readline()
        match = re.fullmatch(r"triplica listening on http://127\.0\.0\.1:(\d+)\n", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        with connect(int(match.group(1))) as sock:
            sock.sendall(request_bytes())
            assert Reader(sock).response()[0] == 200
            process.send_signal(signum)
            stdout, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr
        assert stdout == "app closed\nrun returned\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
