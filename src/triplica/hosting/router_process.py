"""A router process: `python -m triplica.hosting.router_process --config router.json`.

Started by `triplica cluster up`. It serves DynamoDB's HTTP API (api/app.py:
SigV4 when given credentials, the envelope) and routes every request
(router/router.py) to node processes over TCP (router/node_client.py
`RemoteNodes`, their peer ports), with partition maps from MemDS through the
constant-work cache, or from the nodes while no MemDS server is configured
or answering. It imports neither the engine nor the storage: a router holds
no data.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from triplica.api import sigv4
from triplica.api.app import DynamoApp
from triplica.api.http_server import serve_until_stopped
from triplica.memds.client import MemdsClient
from triplica.router.config import RouterConfig, load_router_config
from triplica.router.map_cache import MapCache
from triplica.router.map_source import MapSource, MemdsFirstMaps, NodeMapSource
from triplica.router.node_client import RemoteNodes
from triplica.router.router import Router


def build_router(config: RouterConfig) -> Router:
    nodes = RemoteNodes({n.id: (n.host, n.peer_port) for n in config.nodes})
    ids = [n.id for n in config.nodes]
    maps: MapSource = NodeMapSource(nodes, ids)
    if config.memds:
        cache = MapCache(MemdsClient([(m.host, m.port) for m in config.memds]))
        maps = MemdsFirstMaps(cache, NodeMapSource(nodes, ids))
    return Router(nodes, ids, maps)


def run_router(config: RouterConfig) -> None:
    import uvloop

    credentials = sigv4.load_credentials(config.credentials) if config.credentials else None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        app = DynamoApp(build_router(config), credentials)
        await serve_until_stopped(app, config.listen_host, config.port, stop)

    uvloop.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triplica-router")
    parser.add_argument("--config", required=True)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_router(load_router_config(args.config))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
