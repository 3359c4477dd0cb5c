"""A small HTTP/1.1 client for the router: keep-alive connection pools to nodes.

One `NodePool` per node: at most `connections_max` requests in flight (one
per connection, no pipelining), idle connections kept for reuse (at most
`connections_max`). A request has a deadline; a connection that fails,
times out or is told `Connection: close` is discarded. Responses are parsed
with httptools (the HTTP server's parser).

Errors: `NodeUnreachableError(sent=False)` when no connection could be
opened (the request certainly did not run), `NodeUnreachableError(sent=True)`
when the connection broke after the request was written (it may have run),
TimeoutError past the deadline.
"""
from __future__ import annotations

import asyncio

import httptools

CONNECTIONS_PER_NODE_MAX = 64
RESPONSE_BYTES_MAX = 64 * 1024 * 1024
_DROPPED_HEADERS = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive",
                              "expect"})


class NodeUnreachableError(Exception):
    def __init__(self, text: str, sent: bool) -> None:
        super().__init__(text)
        self.sent = sent


class HttpAnswer:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def encode_request(path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1\r\n".encode("latin-1")]
    for name, value in headers.items():
        if name not in _DROPPED_HEADERS:
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
    lines.append(body)
    return b"".join(lines)


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._future: asyncio.Future | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self.closed = False
        self.keep_alive = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(NodeUnreachableError(f"bad response: {error}", sent=True))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(NodeUnreachableError(f"connection lost: {exc}", sent=True))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > RESPONSE_BYTES_MAX:
            raise httptools.HttpParserError("response too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self._parser.should_keep_alive()
        future, self._future = self._future, None
        if future is not None and not future.done():
            future.set_result(HttpAnswer(self._parser.get_status_code(), self._headers,
                                         b"".join(self._body)))

    def _fail(self, error: Exception) -> None:
        future, self._future = self._future, None
        if future is not None and not future.done():
            future.set_exception(error)

    async def request(self, data: bytes) -> HttpAnswer:
        assert self._future is None and self._transport is not None
        if self.closed:
            raise NodeUnreachableError("connection closed", sent=False)
        self._headers, self._body, self._size = {}, [], 0
        self._future = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return await self._future

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class NodePool:
    """Keep-alive connections to one node's HTTP port."""

    def __init__(self, host: str, port: int,
                 connections_max: int = CONNECTIONS_PER_NODE_MAX) -> None:
        self.host = host
        self.port = port
        self._slots = asyncio.Semaphore(connections_max)
        self._idle: list[_Connection] = []
        self._connections_max = connections_max

    async def request(self, data: bytes, deadline_s: float) -> HttpAnswer:
        async with asyncio.timeout(deadline_s):
            async with self._slots:
                connection = self._take_idle()
                if connection is None:
                    connection = await self._open()
                try:
                    answer = await connection.request(data)
                except BaseException:
                    connection.close()
                    raise
                if connection.keep_alive and not connection.closed \
                        and len(self._idle) < self._connections_max:
                    self._idle.append(connection)
                else:
                    connection.close()
                return answer

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_connection(_Connection, self.host, self.port)
        except OSError as error:
            raise NodeUnreachableError(f"connect to {self.host}:{self.port}: {error}",
                                       sent=False) from None
        return protocol

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
