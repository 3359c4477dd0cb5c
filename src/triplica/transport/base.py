"""The transport interface every node and router codes against, and its errors.

Two implementations share it: `tcp` (framed msgpack over asyncio sockets,
for processes and machines) and `inprocess` (bounded asyncio queues, for
`triplica serve` hosting three replicas in one process). Code above the
transport sees the same behaviour from both: messages are msgpack values
(dicts, lists, str, bytes, int, float, bool, None; tuples arrive as lists),
every call has a deadline, handlers run concurrently up to a bound, and a
call whose connection breaks fails with ConnectionLostError (it may or may
not have run: calls are at most once, retries belong to the caller).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

Address = tuple[str, int]
Message = Any  # any msgpack-serialisable value
Handler = Callable[[Message], Awaitable[Message | None]]


class TransportError(Exception):
    """Base class of every expected transport failure."""


class CallTimeoutError(TransportError, TimeoutError):
    """A call or send did not finish before its deadline (it may still run)."""


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


class Server(Protocol):
    """Serves `handler` at an address until closed."""

    @property
    def address(self) -> Address: ...

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Stop accepting, cancel running handlers, fail their callers."""
        ...


class Transport(Protocol):
    """A factory of servers and clients over one medium."""

    def server(self, address: Address, handler: Handler) -> Server: ...

    def client(self, address: Address) -> Client: ...
