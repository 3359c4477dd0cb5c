"""One node's end of the node mesh: many replication groups and node requests over one
server address, on any transport.

`ReplicaDriver` asks its network for a server at its own address and a
client per peer address. A node hosts one replica of many groups but has a
single server address on the transport (a TCP peer port, or a name in an
in-process network), so addresses here are virtual, `(group_key, node_id)`:
- `server((group, me), handler, local)` registers `handler` (and `local`,
  for direct in-process delivery) for `group` in this node's dispatch table
  (on `start`), removes it on `close`/`stop_now`;
- `client((group, peer))` sends `[group, batch]` through the one shared
  transport client to `peer` (one multiplexed channel per peer), and hands
  `try_local` on to it as `(group, message)`.

Incoming frames for a group this node does not host (a table created while
it was down, or already deleted) are dropped: Paxos tolerates loss.

Requests to the node itself (not to a group's replica) share the address:
`request(peer, body, deadline_s)` is a transport CALL whose body is a dict
(group traffic is always a list, so the two never mix), answered by the
handler the node gave `serve_requests`. No handler yet, or a handler that
raises (an unknown request): the caller gets a RemoteError.

The same class runs over TCP (`triplica node`: addresses are host and peer
port) and over an in-process network (`triplica serve`: every node in one
process); everything inherits the transport's bounds and deadlines.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from triplica.transport.base import Address, Client, Handler, LocalHandler, Message, Transport

log = logging.getLogger(__name__)

RequestHandler = Callable[[dict], Awaitable[Message]]


class PeerNetwork:
    """One node's end of the mesh, handed to every ReplicaDriver it runs."""

    def __init__(self, node_id: int, transport: Transport, listen: Address,
                 peers: Mapping[int, Address]) -> None:
        """`peers`: every other node's server address on `transport`."""
        assert node_id not in peers, node_id
        self.node_id = node_id
        self._handlers: dict[str, tuple[Handler, LocalHandler | None]] = {}
        self._request_handler: RequestHandler | None = None
        self._server = transport.server(listen, self._on_frame, self._on_local)
        self._peers: dict[int, Client] = {node: transport.client(address)
                                          for node, address in peers.items()}
        self.dropped_frames = 0

    @property
    def address(self) -> Address:
        return self._server.address

    async def start(self) -> None:
        await self._server.start()

    async def close(self) -> None:
        await self._server.close()
        for client in self._peers.values():
            await client.close()

    def serve_requests(self, handler: RequestHandler) -> None:
        """Answer node requests (dict bodies) with `handler` from now on."""
        self._request_handler = handler

    async def request(self, peer: int, body: dict, deadline_s: float) -> Message:
        """Ask node `peer` (transport errors and the handler's RemoteError propagate)."""
        return await self._peers[peer].call(body, deadline_s)

    async def _on_frame(self, body: Any) -> Message | None:
        if isinstance(body, dict):
            if self._request_handler is None:
                raise RuntimeError("this node does not answer requests yet")
            return await self._request_handler(body)
        if not isinstance(body, list) or len(body) != 2 or not isinstance(body[0], str):
            self.dropped_frames += 1
            return None
        entry = self._handlers.get(body[0])
        if entry is None:
            self.dropped_frames += 1
            return None
        await entry[0](body[1])
        return None

    def _on_local(self, framed: Any) -> bool:
        group, message = framed
        entry = self._handlers.get(group)
        if entry is None or entry[1] is None:
            return False
        return entry[1](message)

    # ------------------------------------------------- the driver's network

    def server(self, address: Address, handler: Handler,
               local: LocalHandler | None = None) -> "_GroupServer":
        group, node = address
        assert node == self.node_id, (address, self.node_id)
        return _GroupServer(self, str(group), handler, local)

    def client(self, address: Address) -> "_GroupClient":
        group, node = address
        return _GroupClient(self._peers[int(node)], str(group))

    def unregister(self, server: "_GroupServer") -> None:
        entry = self._handlers.get(server.group)
        if entry is not None and entry[0] is server.handler:
            del self._handlers[server.group]

    def register(self, server: "_GroupServer") -> None:
        if server.group in self._handlers:
            raise RuntimeError(f"group {server.group} already has a replica on this node")
        self._handlers[server.group] = (server.handler, server.local)


class _GroupServer:
    def __init__(self, network: PeerNetwork, group: str, handler: Handler,
                 local: LocalHandler | None) -> None:
        self.network = network
        self.group = group
        self.handler = handler
        self.local = local

    @property
    def address(self) -> Address:
        return (self.group, self.network.node_id)

    async def start(self) -> None:
        self.network.register(self)

    def stop_now(self) -> None:
        self.network.unregister(self)

    async def close(self) -> None:
        self.network.unregister(self)


class _GroupClient:
    def __init__(self, client: Client, group: str) -> None:
        self._client = client
        self.group = group

    async def call(self, message: Any, deadline_s: float) -> Any:
        raise NotImplementedError("group traffic is one-way")

    async def send(self, message: Any, deadline_s: float) -> None:
        await self._client.send([self.group, message], deadline_s)

    def try_local(self, message: Any) -> bool:
        return self._client.try_local((self.group, message))

    async def close(self) -> None:
        return None  # the transport client is shared: PeerNetwork closes it
