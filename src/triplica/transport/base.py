"""The transport interface every node and router codes against, and its errors.

Two implementations share it: `tcp` (framed msgpack over asyncio sockets,
for processes and machines) and `inprocess` (bounded asyncio queues, for
`triplica serve` hosting three replicas in one process). Code above the
transport sees the same behaviour from both: messages are msgpack values
(dicts, lists, str, bytes, int, float, bool, None; tuples arrive as lists),
every call has a deadline, handlers run concurrently up to a bound, and a
call whose connection breaks fails with ConnectionLostError (it may or may
not have run: calls are at most once, retries belong to the caller).

One capability differs, and callers ask for it instead of checking which
transport they have: `Client.try_local` hands an immutable object straight
to the server's `local` handler when both ends share a process (in-process
only; over TCP it always answers False and the caller sends as usual).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

Address = tuple[str, int]
Message = Any  # any msgpack-serialisable value
Handler = Callable[[Message], Awaitable[Message | None]]
# Takes an immutable object straight from a sender in the same process (no
# encoding, no task); returns False when it can't (the sender then drops it,
# like a lost message).
LocalHandler = Callable[[Any], bool]


class TransportError(Exception):
    """Base class of every expected transport failure."""


class CallTimeoutError(TransportError, TimeoutError):
    """A call or send did not finish before its deadline (it may still run)."""


class ConnectFailedError(TransportError):
    """No connection could be opened: the message was certainly not sent."""


class ConnectionLostError(TransportError):
    """The connection broke while the call was in flight (it may have run)."""


class TransportClosedError(TransportError):
    """The client or server was closed by its owner."""


class RemoteError(TransportError):
    """The remote handler raised; carries the exception's type name and text."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class AddressInUseError(TransportError):
    """An in-process server is already registered at this address."""


class FramingError(TransportError):
    """The byte stream is not a valid frame sequence; the connection must close."""


class FrameTooLargeError(FramingError):
    """A frame (incoming or outgoing) is larger than the configured maximum."""


class FrameCorruptError(FramingError):
    """A frame failed its checksum or did not decode as msgpack."""


class Client(Protocol):
    """One caller's channel to one server address."""

    async def call(self, message: Message, deadline_s: float) -> Message:
        """Send a request, wait for its reply; raise TransportError subclasses."""
        ...

    async def send(self, message: Message, deadline_s: float = ...) -> None:
        """Send a one-way message (its handler's reply is dropped)."""
        ...

    async def close(self) -> None:
        """Fail outstanding calls with TransportClosedError, free resources."""
        ...

    def try_local(self, message: Any) -> bool:
        """Hand `message` to the server's local handler when the server lives in this
        process and has one (skipping encoding and tasks); False otherwise, always
        for a transport between processes. The message must be immutable."""
        ...


class Server(Protocol):
    """Serves `handler` at an address until closed."""

    @property
    def address(self) -> Address: ...

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Stop accepting, cancel running handlers, fail their callers."""
        ...

    def stop_now(self) -> None:
        """Stop handing anything new to the handler at once, for an owner that cannot
        await (`close` still frees what is left)."""
        ...


class Transport(Protocol):
    """A factory of servers and clients over one medium."""

    def server(self, address: Address, handler: Handler,
               local: LocalHandler | None = None) -> Server: ...

    def client(self, address: Address) -> Client: ...
