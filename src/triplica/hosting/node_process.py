"""`triplica node --config FILE`: one storage node and its metadata role, in one process.

The node's peers, MemDS servers and routers are other processes, reached
over TCP: Paxos traffic, node requests and routers' calls on the peer port
(transport/mesh.py), and an HTTP port where the node answers DynamoDB's API
itself, unrouted, for operators and tests (api/node_app.py). The classes
are those `triplica serve` runs (hosting/serve.py); only the transport and
the number of roles per process differ.
"""
from __future__ import annotations

import asyncio
import signal

from triplica.api.http_server import serve_until_stopped
from triplica.api.node_app import NodeApp
from triplica.engine.node_config import NodeConfig
from triplica.metadata.role import MetadataRole
from triplica.node.storage_node import StorageNode
from triplica.transport.mesh import PeerNetwork
from triplica.transport.tcp import TcpTransport


async def serve_node(config: NodeConfig, stop: asyncio.Event) -> None:
    transport = TcpTransport()
    network = PeerNetwork(config.node_id, transport, (config.listen_host, config.peer_port),
                          {n.id: (n.host, n.peer_port) for n in config.nodes
                           if n.id != config.node_id})
    await network.start()
    node = role = None
    try:
        node = StorageNode(config, network)
        role = MetadataRole(config, network, node.db, node,
                            memds=[transport.client((m.host, m.port)) for m in config.memds])
        node.metadata = role
        node.more_requests = role.answer
        node.set_control(role.handle_control)
        role.start()
        node.start()
        await serve_until_stopped(NodeApp(node), config.listen_host, config.http_port, stop)
    finally:
        if role is not None:
            await role.close()  # before the node's tables: the follower applies to them
        if node is not None:
            await node.close()
        await network.close()


def run_node(config: NodeConfig) -> None:
    import uvloop

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve_node(config, stop)

    uvloop.run(main())
