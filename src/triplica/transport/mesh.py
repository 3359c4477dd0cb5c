"""One node's end of the node mesh: many replication groups and node requests over one
server address, on any transport.

`ReplicaDriver` asks its network for a server at its own address and a
client per peer address. A node hosts replicas of many groups (now and then
two of one group: a replica replacing a stopped one on the same node) but
has a single server address on the transport (a TCP peer port, or a name in
an in-process network), so addresses here are virtual, `(group_key,
replica_id)`, the replica id carrying its node (common/replica_ids.py):
- `server((group, replica), handler, local)` registers `handler` (and
  `local`, for direct in-process delivery) for that replica in this node's
  dispatch table (on `start`), removes it on `close`/`stop_now`;
- `client((group, replica))` sends `[group, replica, batch]` through the one
  shared transport client to the replica's node (one multiplexed channel
  per node), and hands `try_local` on to it as `(group, replica, message)`.

Incoming frames for a replica this node does not host (a table created
while it was down, already deleted, or a replica already dropped) are
dropped: Paxos tolerates loss.

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

from triplica.common.replica_ids import node_of
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
        # (group, replica id) -> the replica's handlers
        self._handlers: dict[tuple[str, int], tuple[Handler, LocalHandler | None]] = {}
        self._request_handler: RequestHandler | None = None
        self._server = transport.server(listen, self._on_frame, self._on_local)
        self._peers: dict[int, Client] = {node: transport.client(address)
                                          for node, address in peers.items()}
        self._transport = transport
        self._listen = listen
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
        return await self._peer(peer).call(body, deadline_s)

    async def _on_frame(self, body: Any) -> Message | None:
        if isinstance(body, dict):
            if self._request_handler is None:
                raise RuntimeError("this node does not answer requests yet")
            return await self._request_handler(body)
        if not isinstance(body, list) or len(body) != 3 or not isinstance(body[0], str) \
                or not isinstance(body[1], int):
            self.dropped_frames += 1
            return None
        entry = self._handlers.get((body[0], body[1]))
        if entry is None:
            self.dropped_frames += 1
            return None
        await entry[0](body[2])
        return None

    def _on_local(self, framed: Any) -> bool:
        group, replica, message = framed
        entry = self._handlers.get((group, replica))
        if entry is None or entry[1] is None:
            return False
        return entry[1](message)

    # ------------------------------------------------- the driver's network

    def server(self, address: Address, handler: Handler,
               local: LocalHandler | None = None) -> "_GroupServer":
        group, replica = address
        assert node_of(int(replica)) == self.node_id, (address, self.node_id)
        return _GroupServer(self, str(group), int(replica), handler, local)

    def client(self, address: Address) -> "_GroupClient":
        group, replica = address
        return _GroupClient(self._peer(node_of(int(replica))), str(group), int(replica))

    def _peer(self, node: int) -> Client:
        """The transport client to `node`; to this node itself too (two replicas of one
        group on this node talk through it), made when first needed."""
        client = self._peers.get(node)
        if client is None and node == self.node_id:
            client = self._peers[node] = self._transport.client(self._listen)
        if client is None:
            raise KeyError(f"node {node} is not a peer of node {self.node_id}")
        return client

    def unregister(self, server: "_GroupServer") -> None:
        key = (server.group, server.replica)
        entry = self._handlers.get(key)
        if entry is not None and entry[0] is server.handler:
            del self._handlers[key]

    def register(self, server: "_GroupServer") -> None:
        key = (server.group, server.replica)
        if key in self._handlers:
            raise RuntimeError(f"replica {server.replica} of group {server.group} is already "
                               "open on this node")
        self._handlers[key] = (server.handler, server.local)


class _GroupServer:
    def __init__(self, network: PeerNetwork, group: str, replica: int, handler: Handler,
                 local: LocalHandler | None) -> None:
        self.network = network
        self.group = group
        self.replica = replica
        self.handler = handler
        self.local = local

    @property
    def address(self) -> Address:
        return (self.group, self.replica)

    async def start(self) -> None:
        self.network.register(self)

    def stop_now(self) -> None:
        self.network.unregister(self)

    async def close(self) -> None:
        self.network.unregister(self)


class _GroupClient:
    def __init__(self, client: Client, group: str, replica: int) -> None:
        self._client = client
        self.group = group
        self.replica = replica

    async def call(self, message: Any, deadline_s: float) -> Any:
        raise NotImplementedError("group traffic is one-way")

    async def send(self, message: Any, deadline_s: float) -> None:
        await self._client.send([self.group, self.replica, message], deadline_s)

    def try_local(self, message: Any) -> bool:
        return self._client.try_local((self.group, self.replica, message))

    async def close(self) -> None:
        return None  # the transport client is shared: PeerNetwork closes it
