"""Paxos messages between storage nodes: many groups over one TCP port per node.

`ReplicaDriver` asks its network for a server at its own address and a
client per peer address (the in-process network's shape). A node hosts one
replica of many groups but listens on a single peer port, so addresses here
are virtual, `(group_key, node_id)`:
- `server((group, me), handler)` registers `handler` for `group` in this
  node's dispatch table (on `start`), removes it on `close`/`unregister`;
- `client((group, peer))` sends `[group, batch]` through the one shared
  TcpClient to `peer`'s peer port (one multiplexed connection per peer).

Incoming frames for a group this node does not host (a table created while
it was down, or already deleted) are dropped: Paxos tolerates loss.

Requests to the node itself (not to a group's replica) share the port:
`request(peer, body, deadline_s)` is a transport CALL whose body is a dict
(group traffic is always a list, so the two never mix), answered by the
handler the node gave `serve_requests` (cluster/node.py: the repair bound
of a group). No handler yet, or a handler that raises (an unknown
request): the caller gets a RemoteError.

Everything inherits the TCP transport's bounds and deadlines (transport/).
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from triplica.cluster.config import NodeSpec
from triplica.transport.base import Address, Handler, Message
from triplica.transport.tcp import TcpClient, TcpServer

log = logging.getLogger(__name__)

RequestHandler = Callable[[dict], Awaitable[Message]]


class PeerNetwork:
    """One node's end of the peer mesh, handed to every ReplicaDriver it runs."""

    def __init__(self, node_id: int, listen_host: str, peer_port: int,
                 nodes: tuple[NodeSpec, ...]) -> None:
        self.node_id = node_id
        self._handlers: dict[str, Handler] = {}
        self._request_handler: RequestHandler | None = None
        self._server = TcpServer(listen_host, peer_port, self._on_frame)
        self._peers = {n.id: TcpClient(n.host, n.peer_port) for n in nodes if n.id != node_id}
        self.dropped_frames = 0

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
        handler = self._handlers.get(body[0])
        if handler is None:
            self.dropped_frames += 1
            return None
        await handler(body[1])
        return None

    # ------------------------------------------------- the driver's network

    def server(self, address: Address, handler: Handler) -> "_GroupServer":
        group, node = address
        assert node == self.node_id, (address, self.node_id)
        return _GroupServer(self, group, handler)

    def client(self, address: Address) -> "_GroupClient":
        group, node = address
        return _GroupClient(self._peers[node], group)

    def unregister(self, server: "_GroupServer") -> None:
        if self._handlers.get(server.group) is server.handler:
            del self._handlers[server.group]

    def register(self, server: "_GroupServer") -> None:
        if server.group in self._handlers:
            raise RuntimeError(f"group {server.group} already has a replica on this node")
        self._handlers[server.group] = server.handler


class _GroupServer:
    def __init__(self, network: PeerNetwork, group: str, handler: Handler) -> None:
        self.network = network
        self.group = group
        self.handler = handler

    @property
    def address(self) -> Address:
        return (self.group, self.network.node_id)  # type: ignore[return-value]

    async def start(self) -> None:
        self.network.register(self)

    async def close(self) -> None:
        self.network.unregister(self)


class _GroupClient:
    def __init__(self, client: TcpClient, group: str) -> None:
        self._client = client
        self.group = group

    async def send(self, message: Any, deadline_s: float) -> None:
        await self._client.send([self.group, message], deadline_s)

    async def close(self) -> None:
        return None  # the TcpClient is shared, PeerNetwork closes it
