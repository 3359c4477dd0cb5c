"""Transport behaviour, the same tests over TCP (real sockets) and in-process.

Code above the transport must not be able to tell the two apart, so every
behavioural test runs against both. TCP runs on 127.0.0.1 under uvloop.
"""
from __future__ import annotations

import asyncio
import socket
import time

import pytest
import uvloop

from triplica.transport import (
    AddressInUseError,
    CallTimeoutError,
    ConnectionLostError,
    FrameTooLargeError,
    InProcessNetwork,
    RemoteError,
    TcpClient,
    TcpServer,
    TransportClosedError,
    TransportError,
)
from triplica.transport.framing import encode_frame


def run(coro, loop_factory=uvloop.new_event_loop):
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(asyncio.wait_for(coro, 20))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Kit:
    """Makes servers and clients of one kind with the same options."""

    def __init__(self, kind: str, **options) -> None:
        self.kind = kind
        self.options = options
        self.network = InProcessNetwork(**options) if kind == "inprocess" else None

    def server(self, handler, address=None):
        if self.kind == "tcp":
            host, port = address or ("127.0.0.1", 0)
            return TcpServer(host, port, handler, **self.options)
        return self.network.server(address or ("node-a", 7000), handler)

    def client(self, address):
        if self.kind == "tcp":
            return TcpClient(*address, **self.options)
        return self.network.client(address)

    def nowhere(self):
        return ("127.0.0.1", free_port()) if self.kind == "tcp" else ("nowhere", 1)


@pytest.fixture(params=["tcp", "inprocess"])
def kind(request):
    return request.param


async def echo(message):
    if isinstance(message, dict) and "sleep_s" in message:
        await asyncio.sleep(message["sleep_s"])
    return message


def test_call_round_trip(kind):
    async def main():
        kit = Kit(kind)
        async with kit.server(echo) as server, kit.client(server.address) as client:
            for message in [None, 1, "x", b"\x00", [1, [2]], {"a": {"b": [1.5]}}, {7: "k"}]:
                assert await client.call(message, deadline_s=2) == message
            assert await client.call((1, (2, 3)), deadline_s=2) == [1, [2, 3]]
    run(main())


def test_concurrent_calls_are_multiplexed(kind):
    async def handler(message):
        await asyncio.sleep((50 - message) % 7 * 0.002)  # replies come back out of order
        return message * 10

    async def main():
        kit = Kit(kind)
        async with kit.server(handler) as server, kit.client(server.address) as client:
            replies = await asyncio.gather(*(client.call(i, 5) for i in range(300)))
            assert replies == [i * 10 for i in range(300)]
            if kind == "tcp":
                assert server.connections_accepted == 1
                assert client.connects == 1
    run(main())


def test_deadline_expiry(kind):
    async def main():
        kit = Kit(kind)
        async with kit.server(echo) as server, kit.client(server.address) as client:
            started = time.monotonic()
            with pytest.raises(CallTimeoutError) as info:
                await client.call({"sleep_s": 5}, deadline_s=0.05)
            assert time.monotonic() - started < 1
            assert isinstance(info.value, TimeoutError)
            assert isinstance(info.value, TransportError)
            assert await client.call("after", 2) == "after"
    run(main())


def test_late_reply_after_timeout_is_dropped(kind):
    async def main():
        kit = Kit(kind)
        async with kit.server(echo) as server, kit.client(server.address) as client:
            with pytest.raises(CallTimeoutError):
                await client.call({"sleep_s": 0.1, "n": 1}, deadline_s=0.02)
            await asyncio.sleep(0.15)  # the late reply arrives now
            assert await client.call({"n": 2}, 2) == {"n": 2}
    run(main())


def test_handler_error_becomes_remote_error(kind):
    async def handler(message):
        if message == "boom":
            raise ValueError("bad ballot")
        return message

    async def main():
        kit = Kit(kind)
        async with kit.server(handler) as server, kit.client(server.address) as client:
            with pytest.raises(RemoteError) as info:
                await client.call("boom", 2)
            assert info.value.type_name == "ValueError"
            assert info.value.message == "bad ballot"
            assert await client.call("fine", 2) == "fine"
    run(main())


def test_handler_returning_none(kind):
    async def handler(message):
        return None

    async def main():
        kit = Kit(kind)
        async with kit.server(handler) as server, kit.client(server.address) as client:
            assert await client.call("x", 2) is None
    run(main())


def test_send_is_one_way(kind):
    async def main():
        received = []
        done = asyncio.Event()

        async def handler(message):
            received.append(message)
            if len(received) == 3:
                done.set()
            return "ignored"

        kit = Kit(kind)
        async with kit.server(handler) as server, kit.client(server.address) as client:
            for i in range(3):
                await client.send({"i": i})
            await asyncio.wait_for(done.wait(), 2)
            assert received == [{"i": 0}, {"i": 1}, {"i": 2}]
    run(main())


def test_no_server_times_out_within_deadline(kind):
    async def main():
        kit = Kit(kind)
        async with kit.client(kit.nowhere()) as client:
            started = time.monotonic()
            with pytest.raises(CallTimeoutError):
                await client.call("anyone?", deadline_s=0.2)
            assert time.monotonic() - started < 1
            with pytest.raises(CallTimeoutError):
                await client.send("anyone?", deadline_s=0.1)
    run(main())


def test_server_restart_client_reconnects(kind):
    async def main():
        kit = Kit(kind)
        first = kit.server(echo)
        await first.start()
        address = first.address
        client = kit.client(address)
        assert await client.call("one", 2) == "one"
        await first.close()
        with pytest.raises(CallTimeoutError):
            await client.call("nobody", deadline_s=0.1)

        async def restart_later():
            await asyncio.sleep(0.2)
            second = kit.server(echo, address)
            await second.start()
            return second

        restarter = asyncio.create_task(restart_later())
        assert await client.call("two", deadline_s=5) == "two"
        second = await restarter
        assert await client.call("three", 2) == "three"
        if kind == "tcp":
            assert client.connects == 2
        await client.close()
        await second.close()
    run(main())


def test_in_flight_call_fails_when_server_closes(kind):
    async def main():
        started = asyncio.Event()

        async def handler(message):
            started.set()
            await asyncio.sleep(30)

        kit = Kit(kind)
        server = kit.server(handler)
        await server.start()
        async with kit.client(server.address) as client:
            call = asyncio.create_task(client.call("stuck", deadline_s=10))
            await asyncio.wait_for(started.wait(), 2)
            await server.close()
            with pytest.raises(ConnectionLostError):
                await call
    run(main())


def test_server_close_cancels_running_handlers(kind):
    async def main():
        started, cancelled = asyncio.Event(), []

        async def handler(message):
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(message)
                raise

        kit = Kit(kind)
        server = kit.server(handler)
        await server.start()
        async with kit.client(server.address) as client:
            await client.send("work")
            await asyncio.wait_for(started.wait(), 2)
            await server.close()
            assert cancelled == ["work"]
    run(main())


def test_calls_in_flight_are_bounded(kind):
    async def main():
        active, peak = 0, 0

        async def handler(message):
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1
            return message

        kit = Kit(kind, calls_in_flight_max=2)
        async with kit.server(handler) as server, kit.client(server.address) as client:
            replies = await asyncio.gather(*(client.call(i, 5) for i in range(12)))
            assert replies == list(range(12))
            assert peak == 2
    run(main())


def test_oversized_messages_are_refused(kind):
    async def handler(message):
        return "z" * 5000 if message == "big reply" else message

    async def main():
        kit = Kit(kind, frame_bytes_max=1000)
        async with kit.server(handler) as server, kit.client(server.address) as client:
            with pytest.raises(FrameTooLargeError):
                await client.call("x" * 2000, 2)
            with pytest.raises(FrameTooLargeError):
                await client.send("x" * 2000)
            with pytest.raises(RemoteError) as info:
                await client.call("big reply", 2)
            assert info.value.type_name == "FrameTooLargeError"
            assert await client.call("small", 2) == "small"
    run(main())


def test_closed_client_refuses_calls_and_fails_waiting_ones(kind):
    async def main():
        kit = Kit(kind)
        async with kit.server(echo) as server:
            client = kit.client(server.address)
            assert await client.call(1, 2) == 1
            waiting = asyncio.create_task(client.call({"sleep_s": 5}, 10))
            await asyncio.sleep(0.05)
            await client.close()
            with pytest.raises(TransportClosedError):
                await waiting
            with pytest.raises(TransportClosedError):
                await client.call(2, 2)
    run(main())


# -- TCP only ------------------------------------------------------------------


def test_tcp_garbage_closes_only_that_connection():
    async def main():
        async with TcpServer("127.0.0.1", 0, echo) as server:
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(b"\xff" * 64)  # a header announcing a 4 GiB frame
            assert await asyncio.wait_for(reader.read(), 2) == b""
            writer.close()
            async with TcpClient(*server.address) as client:
                assert await client.call("still serving", 2) == "still serving"
    run(main())


def test_tcp_malformed_envelope_closes_connection():
    async def main():
        async with TcpServer("127.0.0.1", 0, echo) as server:
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(encode_frame({"not": "an envelope"}))
            assert await asyncio.wait_for(reader.read(), 2) == b""
            writer.close()
    run(main())


def test_tcp_client_sees_connection_lost_on_garbage_reply():
    async def main():
        async def bad_server(reader, writer):
            await reader.read(100)
            writer.write(b"\x01\x00\x00\x00\x00\x00\x00\x00\xc1")  # bad crc
            await writer.drain()
            await reader.read()  # until the client hangs up
            writer.close()

        server = await asyncio.start_server(bad_server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with TcpClient("127.0.0.1", port) as client:
            with pytest.raises(ConnectionLostError):
                await client.call("hi", 2)
        server.close()
        await server.wait_closed()
    run(main())


def test_tcp_works_on_the_default_event_loop():
    async def main():
        async with TcpServer("127.0.0.1", 0, echo) as server:
            async with TcpClient(*server.address) as client:
                assert await client.call("plain asyncio", 2) == "plain asyncio"
    run(main(), loop_factory=None)


# -- in-process only -----------------------------------------------------------


def test_inprocess_address_in_use():
    async def main():
        network = InProcessNetwork()
        async with network.server(("a", 1), echo):
            with pytest.raises(AddressInUseError):
                await network.server(("a", 1), echo).start()
    run(main())


def test_inprocess_messages_are_copied():
    async def main():
        network = InProcessNetwork()
        seen = []

        async def handler(message):
            seen.append(message)
            message["mutated"] = True
            return message

        async with network.server(("a", 1), handler):
            sent = {"items": [1, 2]}
            reply = await network.client(("a", 1)).call(sent, 2)
            assert sent == {"items": [1, 2]}
            assert reply == {"items": [1, 2], "mutated": True}
            assert reply is not seen[0]
    run(main())
