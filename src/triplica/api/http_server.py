"""HTTP/1.1 front: bytes from a socket in, `Request`s to the application out.

A hand-written asyncio.Protocol on uvloop with httptools' parser; no
framework, so a trivial request costs a few tens of microseconds of CPU.
The server knows nothing of DynamoDB operations: it frames requests, calls
`app.handle(request)`, and frames what comes back with the headers every
DynamoDB response carries (x-amzn-RequestId, x-amz-crc32, Content-Type,
Content-Length, Date, Server). The health check, CORS preflights and CORS
headers are HTTP's business, answered here (http_edges.py).

Invariants, per connection:
- Responses leave in request order. Requests are handled one at a time; a
  handler may answer at once (a tuple) or with an awaitable, and the next
  queued request waits until that awaitable is done (HTTP/1.1 pipelining).
- Bounded memory: a request body over limits.REQUEST_BODY_BYTES_MAX gets 413,
  at most PIPELINE_DEPTH_MAX parsed requests wait before reading pauses, and
  reading pauses while the transport's write buffer is full.
- A handler failure never kills the connection: a DynamoError becomes its
  JSON error, anything else a logged 500 InternalServerError.
- Malformed HTTP gets 400 and the connection closes, after the responses to
  the requests before it.
"""
from __future__ import annotations

import asyncio
import http
import inspect
import itertools
import logging
import os
import signal
import sys
import time
import zlib
from base64 import b32encode
from collections import deque
from email.utils import formatdate
from typing import Awaitable, Protocol, Union

import httptools

from triplica.api import http_edges, wire
from triplica.errors import (
    DynamoError,
    InternalServerError,
    RequestEntityTooLarge,
    SerializationException,
)
from triplica.model import limits

log = logging.getLogger(__name__)

HEAD_BYTES_MAX = 64 * 1024      # request line and headers, names and values
PIPELINE_DEPTH_MAX = 32          # parsed requests queued before reading pauses
LINGER_SECONDS = 2.0             # keep draining input after an error reply
SHUTDOWN_GRACE_SECONDS = 5.0     # wait for in-flight requests at shutdown
BODY_CONCAT_BYTES_MAX = 64 * 1024  # above this, write head and body separately

Response = tuple[int, bytes, Union[dict[str, str], None]]


class Application(Protocol):
    def handle(self, request: "Request") -> Response | Awaitable[Response]: ...


class Request:
    """One parsed HTTP request. `path` and `query` are raw (still %-encoded)."""

    __slots__ = ("method", "path", "query", "headers", "body", "keep_alive",
                 "http_version")

    def __init__(self, method: str, path: str, query: str,
                 headers: dict[str, str], body: bytes,
                 keep_alive: bool = True, http_version: str = "1.1") -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.http_version = http_version

    def __repr__(self) -> str:
        return (f"Request({self.method} {self.path!r} query={self.query!r} "
                f"headers={len(self.headers)} body={len(self.body)}B)")


# ---------------------------------------------------------------- response head

_REQUEST_ID_PREFIX = b32encode(os.urandom(25))[:40]   # [A-Z2-7], per process
_request_counter = itertools.count()
_STATUS_LINES: dict[int, bytes] = {}
_date_second = -1
_date_value = b""

_INTERNAL_ERROR = InternalServerError("Internal server error")
_CONNECTION_CLOSE = b"Connection: close\r\n"
_CONNECTION_KEEP_ALIVE = b"Connection: keep-alive\r\n"
_SERVER = b"Server: %s\r\n" % http_edges.SERVER_NAME.encode("ascii")


def _request_id() -> bytes:
    """52 characters of [A-Z0-9], unique per process and across processes."""
    return b"%s%012d" % (_REQUEST_ID_PREFIX, next(_request_counter))


def _http_date() -> bytes:
    global _date_second, _date_value
    second = int(time.time())
    if second != _date_second:
        _date_value = formatdate(second, usegmt=True).encode("ascii")
        _date_second = second
    return _date_value


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason.encode("ascii"))
        _STATUS_LINES[status] = line
    return line


def _head(status: int, body: bytes, headers: dict[str, str] | None,
          connection: bytes) -> bytes:
    content_type = b"Content-Type: application/x-amz-json-1.0\r\n"
    extra = b""
    if headers:
        parts = []
        for name, value in headers.items():
            if name.lower() == "content-type":
                content_type = b""
            parts.append(b"%s: %s\r\n" % (name.encode("latin-1"),
                                          value.encode("latin-1")))
        extra = b"".join(parts)
    return b"%sx-amzn-RequestId: %s\r\nx-amz-crc32: %d\r\n%s" \
        b"Content-Length: %d\r\nDate: %s\r\n%s%s%s\r\n" % (
            _status_line(status), _request_id(), zlib.crc32(body),
            content_type, len(body), _http_date(), _SERVER, extra, connection)


def _error_result(err: DynamoError) -> Response:
    status, body = wire.error_response(err)
    return status, body, None


def _failure_result(exc: BaseException, request: Request) -> Response:
    if isinstance(exc, DynamoError):
        if exc.status >= 500:  # an operator wants every 5xx in the log, with its cause
            log.warning("answering %s %s to %s: %s", exc.status, exc.type_name,
                        request.headers.get("x-amz-target", request.path), exc)
        return _error_result(exc)
    log.error("handler failed on %r", request, exc_info=exc)
    return _error_result(_INTERNAL_ERROR)


# ------------------------------------------------------------------ connection

class _BodyTooLarge(Exception):
    pass


class _HeadTooLarge(Exception):
    pass


class _Reject:
    """Queue marker: answer with this error, then close the connection."""

    __slots__ = ("error",)

    def __init__(self, error: DynamoError) -> None:
        self.error = error


class ConnectionSet:
    """The live connections of one server, so that shutdown can drain them."""

    def __init__(self) -> None:
        self.connections: set[HttpConnection] = set()
        self.closing = False
        self._empty = asyncio.Event()
        self._empty.set()

    def add(self, connection: "HttpConnection") -> None:
        self.connections.add(connection)
        self._empty.clear()

    def discard(self, connection: "HttpConnection") -> None:
        self.connections.discard(connection)
        if not self.connections:
            self._empty.set()

    async def drain(self, timeout_seconds: float) -> None:
        """Close idle connections now, busy ones after their last reply."""
        self.closing = True
        for connection in list(self.connections):
            connection.close_when_idle()
        try:
            await asyncio.wait_for(self._empty.wait(), timeout_seconds)
        except asyncio.TimeoutError:
            for connection in list(self.connections):
                connection.abort()


# Header names the SDKs send, in their usual spelling: a dict hit is cheaper
# than decoding and lower-casing each name on every request.
_HEADER_NAMES = {
    spelled.encode("latin-1"): spelled.lower()
    for name in ("host", "accept-encoding", "x-amz-target", "content-type",
                 "user-agent", "x-amz-date", "authorization", "content-length",
                 "amz-sdk-invocation-id", "amz-sdk-request", "connection",
                 "x-amz-security-token", "accept", "expect", "transfer-encoding",
                 "x-amz-content-sha256", "x-amz-user-agent")
    for spelled in (name, name.title(), name.upper(), name.capitalize(),
                    name.title().replace("Amz", "AMZ"))
}


class HttpConnection(asyncio.Protocol):
    """One client connection: parse, queue, handle in order, reply."""

    def __init__(self, app: Application, connections: ConnectionSet) -> None:
        self._app = app
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[Request | _Reject] = deque()
        self._pending: asyncio.Future | None = None
        self._current: Request | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._input_closed = False     # parse error or upgrade: ignore the rest
        self._close_when_idle = False
        self._closed = False
        # Message being parsed.
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body_parts: list[bytes] = []
        self._body_bytes = 0
        self._head_bytes = 0

    # asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._connections.add(self)
        if self._connections.closing:
            self._close_when_idle = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._queue.clear()
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self._input_closed:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _BodyTooLarge):
                self._reject(RequestEntityTooLarge(
                    "Request size exceeded "
                    f"{limits.REQUEST_BODY_BYTES_MAX} bytes"))
            elif isinstance(exc.__context__, _HeadTooLarge):
                self._reject(SerializationException(
                    f"Request line and headers exceed {HEAD_BYTES_MAX} bytes"))
            else:   # a bug in a callback above
                log.error("HTTP parser callback failed", exc_info=exc.__context__)
                self._reject(_INTERNAL_ERROR)
        except httptools.HttpParserUpgrade:
            # No protocol switching: answer what was parsed, then close.
            self._input_closed = True
            self._close_when_idle = True
        except httptools.HttpParserError as exc:
            self._reject(SerializationException(f"Malformed HTTP request: {exc}"))
        self._drain()
        if len(self._queue) >= PIPELINE_DEPTH_MAX:
            self._pause_reading()

    def eof_received(self) -> bool | None:
        self._input_closed = True
        self._close_when_idle = True
        self._maybe_close_idle()
        return True   # keep the write side open for replies still owed

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._drain()

    # httptools callbacks ----------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body_parts = []
        self._body_bytes = 0
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > HEAD_BYTES_MAX:
            raise _HeadTooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > HEAD_BYTES_MAX:
            raise _HeadTooLarge()
        key = _HEADER_NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
        headers = self._headers
        if key in headers:   # repeated header: merge as one list-valued header
            headers[key] = headers[key] + "," + value.decode("latin-1")
        else:
            headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() \
                and int(length) > limits.REQUEST_BODY_BYTES_MAX:
            raise _BodyTooLarge()
        if self._headers.get("expect", "").lower() == "100-continue" \
                and not self._queue and self._pending is None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > limits.REQUEST_BODY_BYTES_MAX:
            raise _BodyTooLarge()
        self._body_parts.append(body)

    def on_message_complete(self) -> None:
        parts = self._body_parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        path, _, query = self._url.decode("latin-1").partition("?")
        parser = self._parser
        self._queue.append(Request(
            parser.get_method().decode("ascii"), path, query, self._headers,
            body, parser.should_keep_alive(), parser.get_http_version()))

    # handling ---------------------------------------------------------------

    def close_when_idle(self) -> None:
        self._close_when_idle = True
        self._maybe_close_idle()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _drain(self) -> None:
        """Handle queued requests in order until one is pending or none is left."""
        queue = self._queue
        while queue and self._pending is None and not self._writing_paused \
                and not self._closed:
            item = queue.popleft()
            if type(item) is _Reject:
                self._reply_and_linger(item.error)
                return
            try:
                result = http_edges.answer_without_application(item) or self._app.handle(item)
                if type(result) is not tuple:
                    self._current = item
                    self._pending = asyncio.ensure_future(result)
                    self._pending.add_done_callback(self._on_pending_done)
                    return
            except Exception as exc:
                result = _failure_result(exc, item)
            self._write(result, item)
        if self._reading_paused and len(queue) < PIPELINE_DEPTH_MAX \
                and not self._writing_paused:
            self._reading_paused = False
            self._transport.resume_reading()
        self._maybe_close_idle()

    def _on_pending_done(self, future: asyncio.Future) -> None:
        self._pending = None
        request, self._current = self._current, None
        if self._closed:
            return
        if future.cancelled():
            result = _failure_result(asyncio.CancelledError(), request)
        else:
            exc = future.exception()
            result = future.result() if exc is None else _failure_result(exc, request)
        self._write(result, request)
        self._drain()

    def _write(self, result: Response, request: Request) -> None:
        close = not request.keep_alive or (self._close_when_idle and not self._queue)
        if close:
            connection = _CONNECTION_CLOSE
        elif request.http_version == "1.1":
            connection = b""
        else:   # HTTP/1.0 keeps the connection only when told so
            connection = _CONNECTION_KEEP_ALIVE
        try:
            status, body, headers = result
            cors = http_edges.cors_headers(request)
            if cors is not None:
                headers = {**cors, **headers} if headers else cors
            head = _head(status, body, headers, connection)
        except Exception as exc:   # the handler returned something malformed
            status, body, headers = _failure_result(exc, request)
            head = _head(status, body, headers, connection)
        if len(body) <= BODY_CONCAT_BYTES_MAX:
            self._transport.write(head + body)
        else:
            self._transport.writelines((head, body))
        if close:
            self._shut()

    def _reject(self, error: DynamoError) -> None:
        self._input_closed = True
        self._queue.append(_Reject(error))

    def _reply_and_linger(self, error: DynamoError) -> None:
        """Reply, half-close, and read (discarding) briefly so the client sees
        the reply rather than a reset caused by its unread upload."""
        self._queue.clear()
        status, body = wire.error_response(error)
        self._transport.write(_head(status, body, None, _CONNECTION_CLOSE) + body)
        if self._transport.can_write_eof():
            self._transport.write_eof()
            if self._reading_paused:
                self._reading_paused = False
                self._transport.resume_reading()
            asyncio.get_running_loop().call_later(LINGER_SECONDS, self._shut)
        else:
            self._shut()

    def _maybe_close_idle(self) -> None:
        if self._close_when_idle and not self._queue and self._pending is None \
                and not self._closed:
            self._shut()

    def _shut(self) -> None:
        self._queue.clear()
        self._input_closed = True
        if not self._closed and self._transport is not None:
            self._closed = True
            self._transport.close()

    def _pause_reading(self) -> None:
        if not self._reading_paused and not self._closed:
            self._reading_paused = True
            self._transport.pause_reading()


# ---------------------------------------------------------------------- server

async def serve(app: Application, host: str, port: int, *,
                connections: ConnectionSet | None = None) -> asyncio.AbstractServer:
    """Listen on host:port; `connections` (optional) tracks clients for drain."""
    if connections is None:
        connections = ConnectionSet()
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: HttpConnection(app, connections), host, port,
        reuse_address=True, backlog=1024)


async def serve_until_stopped(app: Application, host: str, port: int,
                              stop: asyncio.Event) -> None:
    """Serve until `stop` is set, then drain connections and close the app."""
    connections = ConnectionSet()
    server = await serve(app, host, port, connections=connections)
    bound_port = server.sockets[0].getsockname()[1]
    print(f"triplica listening on http://{host}:{bound_port}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await connections.drain(SHUTDOWN_GRACE_SECONDS)
        await server.wait_closed()
        close = getattr(app, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result


def run(app: Application, host: str, port: int) -> None:
    """Run the server on uvloop until SIGINT or SIGTERM."""
    import uvloop

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve_until_stopped(app, host, port, stop)

    uvloop.run(main())
    sys.stdout.flush()


__all__ = ["Request", "Application", "Response", "HttpConnection",
           "ConnectionSet", "serve", "serve_until_stopped", "run",
           "PIPELINE_DEPTH_MAX"]
