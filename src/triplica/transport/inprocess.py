"""The transport interface over bounded asyncio queues inside one process.

`triplica serve` hosts three replicas (and the router) in one process; they
talk through an `InProcessNetwork`, a registry of servers by address, with
exactly the behaviour of the TCP transport as seen from above:
- messages and replies are copied through msgpack (so a tuple arrives as a
  list, an unserialisable message fails, and no object is shared between
  sender and receiver), with the same size limit;
- each server has a bounded inbox and runs at most `calls_in_flight_max`
  handlers at once; a full inbox makes senders wait, within their deadline;
- every call and send has a deadline (CallTimeoutError), each client has at
  most `calls_in_flight_max` calls outstanding;
- closing a server fails its queued and running calls with
  ConnectionLostError; a call to an address with no server retries with
  backoff until a server registers there or the deadline passes (the
  in-process form of "reconnect");
- every task has an owner that cancels and awaits it on close.

`try_local` (base.py) hands an immutable object to the server's `local`
handler directly: the replication driver uses it for Paxos messages between
replicas of one process, which then cost no encoding and no task. A server
taken off the network (closed, or unregistered by a test) gets nothing
this way either, so a partition is still a partition.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from triplica.transport.base import (
    Address,
    AddressInUseError,
    CallTimeoutError,
    ConnectionLostError,
    Handler,
    LocalHandler,
    Message,
    TransportClosedError,
)
from triplica.transport.framing import pack_payload, unpack_payload
from triplica.transport.limits import (
    CALLS_IN_FLIGHT_MAX,
    FRAME_BYTES_MAX,
    INPROCESS_INBOX_MAX,
    RECONNECT_BACKOFF_S_MAX,
    RECONNECT_BACKOFF_S_MIN,
    SEND_DEADLINE_S_DEFAULT,
)
from triplica.transport.tcp import error_body, remote_error


@dataclass(eq=False)
class _Request:
    payload: bytes
    reply: asyncio.Future | None  # None: one-way


class InProcessNetwork:
    """Registry of in-process servers by address; the `Transport` factory."""

    def __init__(self, *, frame_bytes_max: int = FRAME_BYTES_MAX,
                 calls_in_flight_max: int = CALLS_IN_FLIGHT_MAX,
                 inbox_max: int = INPROCESS_INBOX_MAX) -> None:
        self.frame_bytes_max = frame_bytes_max
        self.calls_in_flight_max = calls_in_flight_max
        self.inbox_max = inbox_max
        self._servers: dict[Address, InProcessServer] = {}

    def server(self, address: Address, handler: Handler,
               local: LocalHandler | None = None) -> InProcessServer:
        return InProcessServer(self, address, handler, local)

    def client(self, address: Address) -> InProcessClient:
        return InProcessClient(self, address)

    def lookup(self, address: Address) -> InProcessServer | None:
        return self._servers.get(address)

    def register(self, server: InProcessServer) -> None:
        if server.address in self._servers:
            raise AddressInUseError(f"address {server.address} is in use")
        self._servers[server.address] = server

    def unregister(self, server: InProcessServer) -> None:
        if self._servers.get(server.address) is server:
            del self._servers[server.address]


class InProcessServer:
    """Serves `handler` at `address` on `network` until closed."""

    def __init__(self, network: InProcessNetwork, address: Address,
                 handler: Handler, local: LocalHandler | None = None) -> None:
        self._network = network
        self._address = address
        self._handler = handler
        self.local = local
        self._inbox: asyncio.Queue[_Request] = asyncio.Queue(network.inbox_max)
        self._slots = asyncio.Semaphore(network.calls_in_flight_max)
        self._tasks: set[asyncio.Task] = set()
        self._running: set[_Request] = set()
        self._dispatcher: asyncio.Task | None = None
        self.open = False

    @property
    def address(self) -> Address:
        return self._address

    async def start(self) -> None:
        assert self._dispatcher is None, "server already started"
        self._network.register(self)
        self.open = True
        self._dispatcher = asyncio.create_task(self._dispatch())

    def stop_now(self) -> None:
        self.open = False
        self._network.unregister(self)

    async def close(self) -> None:
        if self._dispatcher is None:
            return
        self.open = False
        self._network.unregister(self)
        running = list(self._running)
        self._dispatcher.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(self._dispatcher, *self._tasks, return_exceptions=True)
        self._dispatcher = None
        lost = f"server at {self._address} closed"
        for request in running:
            _fail(request, ConnectionLostError(lost))
        while not self._inbox.empty():
            _fail(self._inbox.get_nowait(), ConnectionLostError(lost))

    async def __aenter__(self) -> InProcessServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def deliver(self, request: _Request) -> None:
        """Queue a request (waits while the inbox is full)."""
        if not self.open:
            raise ConnectionLostError(f"server at {self._address} closed")
        await self._inbox.put(request)

    async def _dispatch(self) -> None:
        while True:
            request = await self._inbox.get()
            await self._slots.acquire()
            self._running.add(request)
            task = asyncio.create_task(self._serve(request))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _serve(self, request: _Request) -> None:
        try:
            reply = await self._handler(unpack_payload(request.payload))
            if request.reply is not None and not request.reply.done():
                request.reply.set_result(pack_payload(reply, self._network.frame_bytes_max))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            _fail(request, remote_error(error_body(error)))
        finally:
            self._running.discard(request)


def _fail(request: _Request, error: Exception) -> None:
    if request.reply is not None and not request.reply.done():
        request.reply.set_exception(error)


class InProcessClient:
    """Calls and one-way sends to whatever server holds `address`."""

    def __init__(self, network: InProcessNetwork, address: Address, *,
                 backoff_s_min: float = RECONNECT_BACKOFF_S_MIN,
                 backoff_s_max: float = RECONNECT_BACKOFF_S_MAX) -> None:
        self._network = network
        self._address = address
        self._slots = asyncio.Semaphore(network.calls_in_flight_max)
        self._backoff_s_min = backoff_s_min
        self._backoff_s_max = backoff_s_max
        self._outstanding: set[asyncio.Future] = set()
        self._closed = False

    @property
    def address(self) -> Address:
        return self._address

    async def call(self, message: Message, deadline_s: float) -> Message:
        payload = pack_payload(message, self._network.frame_bytes_max)
        self._check_open()
        reply = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(deadline_s):
                async with self._slots:
                    self._outstanding.add(reply)
                    await self._deliver(_Request(payload, reply))
                    return unpack_payload(await reply)
        except TimeoutError:
            raise CallTimeoutError(
                f"call to {self._address} exceeded its {deadline_s}s deadline"
            ) from None
        finally:
            self._outstanding.discard(reply)
            if not reply.done():
                reply.cancel()

    async def send(self, message: Message,
                   deadline_s: float = SEND_DEADLINE_S_DEFAULT) -> None:
        payload = pack_payload(message, self._network.frame_bytes_max)
        self._check_open()
        try:
            async with asyncio.timeout(deadline_s):
                await self._deliver(_Request(payload, None))
        except TimeoutError:
            raise CallTimeoutError(
                f"send to {self._address} exceeded its {deadline_s}s deadline"
            ) from None

    def try_local(self, message: object) -> bool:
        server = self._network.lookup(self._address)
        if self._closed or server is None or not server.open or server.local is None:
            return False
        return server.local(message)

    async def close(self) -> None:
        self._closed = True
        for reply in list(self._outstanding):
            if not reply.done():
                reply.set_exception(TransportClosedError(
                    f"client to {self._address} is closed"))

    async def __aenter__(self) -> InProcessClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError(f"client to {self._address} is closed")

    async def _deliver(self, request: _Request) -> None:
        """Hand to the server at the address, waiting for one to appear."""
        backoff_s = 0.0
        while True:
            server = self._network.lookup(self._address)
            if server is not None and server.open:
                await server.deliver(request)
                return
            backoff_s = min(max(backoff_s * 2, self._backoff_s_min), self._backoff_s_max)
            await asyncio.sleep(backoff_s)
