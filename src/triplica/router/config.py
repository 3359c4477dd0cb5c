"""A router process's configuration file (JSON or TOML):

    {"listen_host": "0.0.0.0", "port": 8000, "credentials": null,
     "nodes": [...the nodes' list, as in a node's config...],
     "memds": [{"host": "10.0.0.9", "port": 8301}, ...]}

The router reaches each node at its `host` and `peer_port` (router/
node_client.py), and MemDS servers at theirs; without MemDS servers it asks
the nodes for partition maps (router/map_source.py).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from triplica.common.topology import MemdsSpec, NodeSpec, memds_of, nodes_of, read_config_file


@dataclass(frozen=True)
class RouterConfig:
    port: int
    nodes: tuple[NodeSpec, ...]
    listen_host: str = "127.0.0.1"
    credentials: str | None = None  # file of 'ACCESS_KEY_ID SECRET' lines
    memds: tuple[MemdsSpec, ...] = ()  # where the partition map comes from (router/map_cache.py)

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError("a router needs the nodes' list")


def load_router_config(path: str) -> RouterConfig:
    data = read_config_file(path)
    return RouterConfig(port=int(data["port"]), nodes=nodes_of(data),
                        listen_host=str(data.get("listen_host", "127.0.0.1")),
                        credentials=data.get("credentials"), memds=memds_of(data))


def write_router_config(path: str, config: RouterConfig) -> None:
    with open(path, "w") as file:
        json.dump(asdict(config), file, indent=2)
