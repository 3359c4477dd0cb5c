"""Node and router configuration files, and replica placement.

A config file is JSON (`.json`) or TOML (`.toml`, read with tomllib). A node's:

    {"node_id": 1, "az": "az-a", "data_dir": "/var/lib/triplica",
     "listen_host": "0.0.0.0", "http_port": 8001, "peer_port": 9001,
     "sync": "batch", "repair_wait_s": 60,
     "nodes": [{"id": 1, "az": "az-a", "host": "10.0.0.1", "http_port": 8001, "peer_port": 9001},
               {"id": 2, "az": "az-b", "host": "10.0.0.2", "http_port": 8001, "peer_port": 9001},
               {"id": 3, "az": "az-c", "host": "10.0.0.3", "http_port": 8001, "peer_port": 9001}]}

`nodes` lists every node of the cluster (this one included, same list on
every node); `host` is where the others reach it. `replace_after_s`
(optional, default 60): how long a node may be silent before the control
plane moves its replicas elsewhere (metadata/replica_mover.py).
`repair_wait_s` (optional):
how long a damaged replica waits for its peers' repair bounds
(engine/node_partition.py). A router's config:

    {"listen_host": "0.0.0.0", "port": 8000, "credentials": null, "nodes": [...same list...],
     "memds": [{"host": "10.0.0.9", "port": 8301}, ...]}

`splits` (nodes, optional; engine/split_advisor.py): when the metadata
system splits a partition. Defaults are DynamoDB's per-partition limits;
benchmarks and tests scale them down:

    "splits": {"size_bytes": 10000000000, "read_units": 3000, "write_units": 1000,
               "window_s": 5.0, "for_traffic": true}

`memds` (routers and nodes, optional): the MemDS servers (memds/server.py);
routers look partitions up there, the metadata leader pushes map changes
to them. A router without MemDS servers asks the nodes for maps.

Placement: a partition's replicas are three nodes in three different AZs,
never two in one AZ. Per AZ the node is chosen by rendezvous hashing of the
partition's group key, and the three AZs by the same hash, so placement is a
pure function every node computes alike; with 3 nodes in 3 AZs every
partition lives on all three.
"""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass
from typing import Any

from triplica.engine.replica_repair import REPAIR_BOUND_WAIT_S_DEFAULT
from triplica.engine.split_policy import (READ_UNITS_PER_PARTITION, SIZE_BYTES_MAX,
                                            WRITE_UNITS_PER_PARTITION)

REPLICAS_PER_PARTITION = 3
SYNC_MODES = ("always", "batch", "none")
REPAIR_WAIT_S_MAX = 24 * 3600.0
REPLACE_AFTER_S_DEFAULT = 60.0


@dataclass(frozen=True)
class NodeSpec:
    id: int
    az: str
    host: str
    http_port: int
    peer_port: int


@dataclass(frozen=True)
class MemdsSpec:
    """A MemDS server (memds/server.py) as nodes and routers reach it."""
    host: str
    port: int


@dataclass(frozen=True)
class SplitLimits:
    """When a cluster partition splits (engine/split_advisor.py)."""
    size_bytes: int = SIZE_BYTES_MAX
    read_units: float = READ_UNITS_PER_PARTITION
    write_units: float = WRITE_UNITS_PER_PARTITION
    window_s: float = 5.0
    for_traffic: bool = True

    def __post_init__(self) -> None:
        if not (self.size_bytes > 0 and self.read_units > 0 and self.write_units > 0
                and 0.1 <= self.window_s <= 3600):
            raise ValueError(f"bad split limits {self}")


@dataclass(frozen=True)
class NodeConfig:
    node_id: int
    az: str
    data_dir: str
    http_port: int
    peer_port: int
    nodes: tuple[NodeSpec, ...]
    listen_host: str = "127.0.0.1"
    sync: str = "batch"
    repair_wait_s: float = REPAIR_BOUND_WAIT_S_DEFAULT
    replace_after_s: float = REPLACE_AFTER_S_DEFAULT
    memds: tuple[MemdsSpec, ...] = ()  # the control plane pushes map changes to them
    splits: SplitLimits = SplitLimits()

    def __post_init__(self) -> None:
        ids = [n.id for n in self.nodes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate node ids in {ids}")
        me = [n for n in self.nodes if n.id == self.node_id]
        if not me:
            raise ValueError(f"node {self.node_id} is not in the nodes list")
        if me[0].az != self.az:
            raise ValueError(f"node {self.node_id}: az {self.az} differs from the list's {me[0].az}")
        if self.sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {SYNC_MODES}")
        if not 0 <= self.repair_wait_s <= REPAIR_WAIT_S_MAX:
            raise ValueError(f"repair_wait_s must be between 0 and {REPAIR_WAIT_S_MAX}")
        if not 0 < self.replace_after_s <= REPAIR_WAIT_S_MAX:
            raise ValueError(f"replace_after_s must be between 0 and {REPAIR_WAIT_S_MAX}")
        check_zones(self.nodes)


@dataclass(frozen=True)
class RouterConfig:
    port: int
    nodes: tuple[NodeSpec, ...]
    listen_host: str = "127.0.0.1"
    credentials: str | None = None  # file of 'ACCESS_KEY_ID SECRET' lines
    memds: tuple[MemdsSpec, ...] = ()  # where the partition map comes from (router/map_cache.py)


def check_zones(nodes: tuple[NodeSpec, ...]) -> None:
    if len({n.az for n in nodes}) < REPLICAS_PER_PARTITION:
        raise ValueError(f"need nodes in at least {REPLICAS_PER_PARTITION} availability zones")


def _read(path: str) -> dict[str, Any]:
    with open(path, "rb") as file:
        if path.endswith(".toml"):
            return tomllib.load(file)
        return json.load(file)


def _nodes(data: dict[str, Any]) -> tuple[NodeSpec, ...]:
    return tuple(NodeSpec(int(n["id"]), str(n["az"]), str(n["host"]), int(n["http_port"]),
                          int(n["peer_port"])) for n in data["nodes"])


def _memds(data: dict[str, Any]) -> tuple[MemdsSpec, ...]:
    return tuple(MemdsSpec(str(m["host"]), int(m["port"])) for m in data.get("memds", ()))


def load_node_config(path: str) -> NodeConfig:
    data = _read(path)
    return NodeConfig(node_id=int(data["node_id"]), az=str(data["az"]),
                      data_dir=str(data["data_dir"]), http_port=int(data["http_port"]),
                      peer_port=int(data["peer_port"]), nodes=_nodes(data),
                      listen_host=str(data.get("listen_host", "127.0.0.1")),
                      sync=str(data.get("sync", "batch")),
                      repair_wait_s=float(data.get("repair_wait_s", REPAIR_BOUND_WAIT_S_DEFAULT)),
                      replace_after_s=float(data.get("replace_after_s", REPLACE_AFTER_S_DEFAULT)),
                      memds=_memds(data), splits=_splits(data))


def _splits(data: dict[str, Any]) -> SplitLimits:
    given = data.get("splits") or {}
    known = set(SplitLimits.__dataclass_fields__)
    unknown = set(given) - known
    if unknown:
        raise ValueError(f"unknown split settings {sorted(unknown)}")
    return SplitLimits(**given)


def load_router_config(path: str) -> RouterConfig:
    data = _read(path)
    nodes = _nodes(data)
    check_zones(nodes)
    return RouterConfig(port=int(data["port"]), nodes=nodes,
                        listen_host=str(data.get("listen_host", "127.0.0.1")),
                        credentials=data.get("credentials"), memds=_memds(data))


def write_json(path: str, config: Any) -> None:
    data = asdict(config)
    with open(path, "w") as file:
        json.dump(data, file, indent=2)


def _score(group_key: str, name: str) -> bytes:
    return hashlib.sha256(f"{group_key}\0{name}".encode()).digest()


def placement(nodes: tuple[NodeSpec, ...], group_key: str) -> list[int]:
    """The member node ids of a partition: one node in each of three AZs."""
    by_zone: dict[str, list[NodeSpec]] = {}
    for node in nodes:
        by_zone.setdefault(node.az, []).append(node)
    zones = sorted(by_zone, key=lambda zone: _score(group_key, zone))[:REPLICAS_PER_PARTITION]
    assert len(zones) == REPLICAS_PER_PARTITION, "check_zones guarantees three AZs"
    members = [max(by_zone[zone], key=lambda n: _score(group_key, str(n.id))).id
               for zone in zones]
    return sorted(members)
