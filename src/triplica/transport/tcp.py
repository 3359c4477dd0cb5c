"""Request/response and one-way messages over asyncio TCP (uvloop or not).

Every frame (see framing.py) carries an envelope `[kind, request_id, body]`:
CALL expects a REPLY (or an ERROR naming the exception the handler raised)
with the same request id; SEND expects nothing. A client keeps one
connection per server address and multiplexes any number of calls on it
(bounded by `calls_in_flight_max`); replies may come back in any order.

Invariants and bounds:
- every call and send has a deadline; past it the caller gets
  CallTimeoutError and a late reply is dropped;
- at most `calls_in_flight_max` calls per client and handlers per server
  connection; past it callers wait (within their deadline) and the server
  stops reading the socket, so TCP pushes back on the sender;
- a broken connection fails its in-flight calls with ConnectionLostError
  (at most once: no silent retry); the next call reconnects, waiting out a
  backoff that doubles from RECONNECT_BACKOFF_S_MIN to _MAX after each
  failed connect attempt and resets on success;
- a framing error (bad checksum, oversized frame, malformed envelope) closes
  the connection: a byte stream can't be resynchronised;
- every task has an owner that cancels and awaits it on close.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgpack

from triplica.transport.base import (
    Address,
    CallTimeoutError,
    ConnectFailedError,
    ConnectionLostError,
    FrameCorruptError,
    FramingError,
    Handler,
    LocalHandler,
    Message,
    RemoteError,
    TransportClosedError,
)
from triplica.transport.framing import FrameDecoder, frame_payload, pack_payload
from triplica.transport.limits import (
    CALLS_IN_FLIGHT_MAX,
    FRAME_BYTES_MAX,
    READ_CHUNK_BYTES,
    RECONNECT_BACKOFF_S_MAX,
    RECONNECT_BACKOFF_S_MIN,
    SEND_DEADLINE_S_DEFAULT,
)

log = logging.getLogger(__name__)

CALL, REPLY, ERROR, SEND = 0, 1, 2, 3
_ENVELOPE_HEADER = b"\x93"  # msgpack fixarray of 3 elements


def envelope_frame(kind: int, request_id: int, payload: bytes,
                   frame_bytes_max: int = FRAME_BYTES_MAX) -> bytes:
    """Frame `[kind, request_id, body]` from a body already msgpack-encoded."""
    head = _ENVELOPE_HEADER + msgpack.packb(kind) + msgpack.packb(request_id)
    return frame_payload(head + payload, frame_bytes_max)


def parse_envelope(frame: Any, kinds: tuple[int, ...]) -> tuple[int, int, Any]:
    """Check a decoded frame's envelope shape; FrameCorruptError if wrong."""
    if (not isinstance(frame, list) or len(frame) != 3 or frame[0] not in kinds
            or not isinstance(frame[1], int) or isinstance(frame[1], bool)):
        raise FrameCorruptError(f"malformed envelope: {frame!r:.80}")
    return frame[0], frame[1], frame[2]


ERROR_TEXT_CHARS_MAX = 4000


def error_body(error: BaseException) -> list[str]:
    return [type(error).__name__, str(error)[:ERROR_TEXT_CHARS_MAX]]


def remote_error(body: Any) -> RemoteError:
    if isinstance(body, list) and len(body) == 2 and all(isinstance(x, str) for x in body):
        return RemoteError(body[0], body[1])
    return RemoteError("RemoteError", repr(body))


class TcpServer:
    """Serves `handler` on host:port (port 0 picks a free one: see `address`)."""

    def __init__(self, host: str, port: int, handler: Handler, *,
                 frame_bytes_max: int = FRAME_BYTES_MAX,
                 calls_in_flight_max: int = CALLS_IN_FLIGHT_MAX) -> None:
        self._address: Address = (host, port)
        self._handler = handler
        self._frame_bytes_max = frame_bytes_max
        self._calls_in_flight_max = calls_in_flight_max
        self._server: asyncio.Server | None = None
        self._connections: set[_ServerConnection] = set()
        self.connections_accepted = 0

    @property
    def address(self) -> Address:
        return self._address

    async def start(self) -> None:
        assert self._server is None, "server already started"
        host, port = self._address
        self._server = await asyncio.start_server(self._on_connection, host, port)
        bound = self._server.sockets[0].getsockname()
        self._address = (host, bound[1])

    def stop_now(self) -> None:
        """Stop accepting connections (those open keep running until `close`)."""
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await asyncio.gather(*(c.close() for c in list(self._connections)))
        await server.wait_closed()

    async def __aenter__(self) -> TcpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        connection = _ServerConnection(
            reader, writer, self._handler, self._frame_bytes_max,
            self._calls_in_flight_max,
        )
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)


class _ServerConnection:
    """One accepted socket: reads requests, runs handlers, writes replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 handler: Handler, frame_bytes_max: int, calls_in_flight_max: int) -> None:
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._frame_bytes_max = frame_bytes_max
        self._slots = asyncio.Semaphore(calls_in_flight_max)
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._task = asyncio.current_task()
        self._closing = False
        self._peer = writer.get_extra_info("peername")

    async def run(self) -> None:
        decoder = FrameDecoder(self._frame_bytes_max)
        try:
            while True:
                data = await self._reader.read(READ_CHUNK_BYTES)
                if not data or self._closing:
                    return
                for frame in decoder.feed(data):
                    await self._dispatch(frame)
        except (FramingError, OSError) as error:
            log.info("closing connection from %s: %s", self._peer, error)
        finally:
            await self._shutdown()

    async def close(self) -> None:
        # Not task.cancel(): asyncio's streams log a cancelled connection
        # task as an error. Closing the socket ends run()'s read instead.
        assert self._task is not None
        self._closing = True
        for task in self._tasks:
            task.cancel()
        self._writer.close()
        await asyncio.wait([self._task])

    async def _dispatch(self, frame: Any) -> None:
        kind, request_id, body = parse_envelope(frame, (CALL, SEND))
        await self._slots.acquire()  # full: stop reading, TCP pushes back
        if self._closing:
            self._slots.release()
            return
        task = asyncio.create_task(self._serve(kind, request_id, body))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("reply to %s failed", self._peer, exc_info=task.exception())

    async def _serve(self, kind: int, request_id: int, body: Any) -> None:
        try:
            reply = await self._handler(body)
            if kind == SEND:
                return
            frame = envelope_frame(REPLY, request_id,
                                   pack_payload(reply, self._frame_bytes_max),
                                   self._frame_bytes_max)
        except Exception as error:
            if kind == SEND:
                log.warning("one-way handler from %s raised", self._peer, exc_info=True)
                return
            frame = envelope_frame(ERROR, request_id, pack_payload(error_body(error)))
        await self._write(frame)

    async def _write(self, frame: bytes) -> None:
        try:
            async with self._write_lock:
                self._writer.write(frame)
                await self._writer.drain()
        except OSError:
            pass  # the peer is gone; run() sees the end of the stream

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await self._writer.wait_closed()


class TcpClient:
    """Calls and one-way sends to one server, over one multiplexed connection."""

    def __init__(self, host: str, port: int, *,
                 frame_bytes_max: int = FRAME_BYTES_MAX,
                 calls_in_flight_max: int = CALLS_IN_FLIGHT_MAX,
                 backoff_s_min: float = RECONNECT_BACKOFF_S_MIN,
                 backoff_s_max: float = RECONNECT_BACKOFF_S_MAX) -> None:
        assert 0 < backoff_s_min <= backoff_s_max
        self._address: Address = (host, port)
        self._frame_bytes_max = frame_bytes_max
        self._slots = asyncio.Semaphore(calls_in_flight_max)
        self._connect_lock = asyncio.Lock()
        self._connection: _ClientConnection | None = None
        self._backoff_s_min = backoff_s_min
        self._backoff_s_max = backoff_s_max
        self._backoff_s = 0.0
        self._next_attempt_s = 0.0
        self._last_error: BaseException | None = None
        self._closed = False
        self.connects = 0

    @property
    def address(self) -> Address:
        return self._address

    async def call(self, message: Message, deadline_s: float, *,
                   connect_once: bool = False) -> Message:
        """`connect_once`: without a live connection, try to open one at most once (not
        at all while the last failure's backoff runs) and raise ConnectFailedError if
        that fails, instead of retrying until the deadline: the caller knows the call
        certainly did not run and may try elsewhere at once (the router does)."""
        payload = pack_payload(message, self._frame_bytes_max)
        self._check_open()
        try:
            async with asyncio.timeout(deadline_s):
                async with self._slots:
                    connection = await self._connect(connect_once)
                    return await connection.call(payload)
        except TimeoutError:
            raise CallTimeoutError(self._timeout_text("call", deadline_s)) from None

    async def send(self, message: Message,
                   deadline_s: float = SEND_DEADLINE_S_DEFAULT) -> None:
        payload = pack_payload(message, self._frame_bytes_max)
        self._check_open()
        try:
            async with asyncio.timeout(deadline_s):
                connection = await self._connect()
                await connection.send(payload)
        except TimeoutError:
            raise CallTimeoutError(self._timeout_text("send", deadline_s)) from None

    def try_local(self, message: Any) -> bool:
        """Never: the server is in another process (base.py)."""
        return False

    async def close(self) -> None:
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def __aenter__(self) -> TcpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError(f"client to {self._label()} is closed")

    def _label(self) -> str:
        return f"{self._address[0]}:{self._address[1]}"

    def _timeout_text(self, what: str, deadline_s: float) -> str:
        text = f"{what} to {self._label()} exceeded its {deadline_s}s deadline"
        connection = self._connection
        if (connection is None or not connection.alive) and self._last_error:
            text += f" (last connect error: {self._last_error})"
        return text

    async def _connect(self, once: bool = False) -> _ClientConnection:
        """The live connection, reconnecting with backoff until one opens (`once`: see
        `call`)."""
        while True:
            connection = self._connection
            if connection is not None and connection.alive:
                return connection
            async with self._connect_lock:
                connection = self._connection
                if connection is not None and connection.alive:
                    return connection
                self._check_open()
                connection = await self._attempt(once)
                if connection is not None:
                    self._connection = connection
                    return connection
                if once:
                    raise ConnectFailedError(
                        f"no connection to {self._label()}: {self._last_error}")

    async def _attempt(self, once: bool = False) -> _ClientConnection | None:
        loop = asyncio.get_running_loop()
        wait_s = self._next_attempt_s - loop.time()
        if wait_s > 0:
            if once:
                return None  # still backing off from the last failure
            await asyncio.sleep(wait_s)
        try:
            reader, writer = await asyncio.open_connection(*self._address)
        except OSError as error:
            self._last_error = error
            self._backoff_s = min(max(self._backoff_s * 2, self._backoff_s_min),
                                  self._backoff_s_max)
            self._next_attempt_s = loop.time() + self._backoff_s
            return None
        self._backoff_s = 0.0
        self.connects += 1
        return _ClientConnection(reader, writer, self._frame_bytes_max, self._label())


class _ClientConnection:
    """One open socket: writes requests, routes replies to waiting calls."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 frame_bytes_max: int, label: str) -> None:
        self._reader = reader
        self._writer = writer
        self._frame_bytes_max = frame_bytes_max
        self._label = label
        self._pending: dict[int, asyncio.Future] = {}
        self._next_request_id = 0
        self._write_lock = asyncio.Lock()
        self.alive = True
        self._reader_task = asyncio.create_task(self._read_replies())

    async def call(self, payload: bytes) -> Message:
        request_id = self._next_request_id
        self._next_request_id += 1
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._write(envelope_frame(CALL, request_id, payload,
                                             self._frame_bytes_max))
            return await future
        finally:
            self._pending.pop(request_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # failed by _lost while our own write failed: seen

    async def send(self, payload: bytes) -> None:
        await self._write(envelope_frame(SEND, 0, payload, self._frame_bytes_max))

    async def close(self) -> None:
        self._lost(TransportClosedError, f"client to {self._label} is closed")
        self._reader_task.cancel()
        await asyncio.gather(self._reader_task, return_exceptions=True)

    async def _write(self, frame: bytes) -> None:
        if not self.alive:
            raise ConnectionLostError(f"connection to {self._label} lost")
        try:
            async with self._write_lock:
                self._writer.write(frame)
                await self._writer.drain()
        except OSError as error:
            self._lost(ConnectionLostError, f"connection to {self._label} lost: {error}")
            raise ConnectionLostError(f"connection to {self._label} lost: {error}") from None

    async def _read_replies(self) -> None:
        decoder = FrameDecoder(self._frame_bytes_max)
        reason = "closed by the server"
        try:
            while True:
                data = await self._reader.read(READ_CHUNK_BYTES)
                if not data:
                    break
                for frame in decoder.feed(data):
                    self._deliver(frame)
        except (FramingError, OSError) as error:
            reason = str(error)
        finally:
            self._lost(ConnectionLostError, f"connection to {self._label} lost: {reason}")

    def _deliver(self, frame: Any) -> None:
        kind, request_id, body = parse_envelope(frame, (REPLY, ERROR))
        future = self._pending.get(request_id)
        if future is None or future.done():
            return  # its call timed out or was cancelled
        if kind == REPLY:
            future.set_result(body)
        else:
            future.set_exception(remote_error(body))

    def _lost(self, error_type: type[Exception], text: str) -> None:
        """Mark dead, close the socket, fail every call still waiting."""
        if not self.alive:
            return
        self.alive = False
        self._writer.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error_type(text))


class TcpTransport:
    """The `Transport` factory over TCP (addresses are (host, port))."""

    def __init__(self, *, frame_bytes_max: int = FRAME_BYTES_MAX,
                 calls_in_flight_max: int = CALLS_IN_FLIGHT_MAX) -> None:
        self._options = {"frame_bytes_max": frame_bytes_max,
                         "calls_in_flight_max": calls_in_flight_max}

    def server(self, address: Address, handler: Handler,
               local: LocalHandler | None = None) -> TcpServer:
        """`local` is ignored: nothing in another process can call it."""
        return TcpServer(address[0], address[1], handler, **self._options)

    def client(self, address: Address) -> TcpClient:
        return TcpClient(address[0], address[1], **self._options)
