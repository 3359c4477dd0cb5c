"""Who is where: the storage nodes and MemDS servers of a deployment.

Plain descriptions that every role reads (nodes to place replicas and reach
their peers, routers to reach nodes, MemDS to poll nodes); how they are
reached (TCP ports, or names in one process) is the transport's business.
A node's `host`/ports are unused when every role runs in one process.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from typing import Any

NODE_ID_MAX = 1023  # replica ids keep the node id in their low bits (replica_ids.py)


@dataclass(frozen=True)
class NodeSpec:
    id: int
    az: str
    host: str = "127.0.0.1"
    http_port: int = 0
    peer_port: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.id <= NODE_ID_MAX:
            raise ValueError(f"node ids go from 1 to {NODE_ID_MAX}, not {self.id}")


@dataclass(frozen=True)
class MemdsSpec:
    """A MemDS server (memds/server.py) as nodes and routers reach it."""
    host: str
    port: int


def check_zones(nodes: tuple[NodeSpec, ...], replicas: int) -> None:
    """Every partition's `replicas` copies go to as many different AZs."""
    ids = [n.id for n in nodes]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate node ids in {ids}")
    if len({n.az for n in nodes}) < replicas:
        raise ValueError(f"need nodes in at least {replicas} availability zones")


def read_config_file(path: str) -> dict[str, Any]:
    with open(path, "rb") as file:
        if path.endswith(".toml"):
            return tomllib.load(file)
        return json.load(file)


def nodes_of(data: dict[str, Any]) -> tuple[NodeSpec, ...]:
    return tuple(NodeSpec(int(n["id"]), str(n["az"]), str(n.get("host", "127.0.0.1")),
                          int(n.get("http_port", 0)), int(n.get("peer_port", 0)))
                 for n in data["nodes"])


def memds_of(data: dict[str, Any]) -> tuple[MemdsSpec, ...]:
    return tuple(MemdsSpec(str(m["host"]), int(m["port"])) for m in data.get("memds", ()))
