"""A storage node's configuration, and its config file.

A config file is JSON (`.json`) or TOML (`.toml`, read with tomllib):

    {"node_id": 1, "az": "az-a", "data_dir": "/var/lib/triplica",
     "listen_host": "0.0.0.0", "http_port": 8001, "peer_port": 9001,
     "sync": "batch", "repair_wait_s": 60,
     "nodes": [{"id": 1, "az": "az-a", "host": "10.0.0.1", "http_port": 8001, "peer_port": 9001},
               {"id": 2, "az": "az-b", "host": "10.0.0.2", "http_port": 8001, "peer_port": 9001},
               {"id": 3, "az": "az-c", "host": "10.0.0.3", "http_port": 8001, "peer_port": 9001}]}

`nodes` lists every node of the deployment (this one included, the same
list on every node); `host` and the ports are where the others reach it.
Optional: `replicas` (copies per partition, 3 or 1), `replace_after_s` (how
long a node may be silent before the control plane moves its replicas,
metadata/replica_mover.py), `repair_wait_s` (how long a damaged replica
waits for its peers' repair bounds, engine/node_partition.py), `memds` (the
MemDS servers the metadata leader pushes map changes to), and `splits`
(when the metadata system splits a partition; defaults are DynamoDB's
per-partition limits, benchmarks and tests scale them down):

    "splits": {"size_bytes": 10000000000, "read_units": 3000, "write_units": 1000,
               "window_s": 5.0, "for_traffic": true}

`triplica serve` builds the same NodeConfig for each node it hosts, with
its own timing (`options`: one process hosts every replica, see
hosting/serve.py).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from triplica.common.topology import (MemdsSpec, NodeSpec, check_zones, memds_of, nodes_of,
                                      read_config_file)
from triplica.engine.replica_repair import REPAIR_BOUND_WAIT_S_DEFAULT
from triplica.engine.split_policy import (READ_UNITS_PER_PARTITION, SIZE_BYTES_MAX,
                                          WRITE_UNITS_PER_PARTITION)
from triplica.replication.options import ReplicaOptions

REPLICA_COUNTS = (1, 3)
SYNC_MODES = ("always", "batch", "none")
REPAIR_WAIT_S_MAX = 24 * 3600.0
REPLACE_AFTER_S_DEFAULT = 60.0


@dataclass(frozen=True)
class SplitLimits:
    """When a partition splits (engine/split_advisor.py, metadata/split_reports.py)."""
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
    nodes: tuple[NodeSpec, ...]
    http_port: int = 0
    peer_port: int = 0
    listen_host: str = "127.0.0.1"
    sync: str = "batch"
    replicas: int = 3
    repair_wait_s: float = REPAIR_BOUND_WAIT_S_DEFAULT
    replace_after_s: float = REPLACE_AFTER_S_DEFAULT
    memds: tuple[MemdsSpec, ...] = ()  # the control plane pushes map changes to them
    splits: SplitLimits = SplitLimits()
    options: ReplicaOptions = field(default_factory=ReplicaOptions)

    def __post_init__(self) -> None:
        me = [n for n in self.nodes if n.id == self.node_id]
        if not me:
            raise ValueError(f"node {self.node_id} is not in the nodes list")
        if me[0].az != self.az:
            raise ValueError(f"node {self.node_id}: az {self.az} differs from the list's {me[0].az}")
        if self.sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {SYNC_MODES}")
        if self.replicas not in REPLICA_COUNTS:
            raise ValueError(f"replicas must be one of {REPLICA_COUNTS}")
        if not 0 <= self.repair_wait_s <= REPAIR_WAIT_S_MAX:
            raise ValueError(f"repair_wait_s must be between 0 and {REPAIR_WAIT_S_MAX}")
        if not 0 < self.replace_after_s <= REPAIR_WAIT_S_MAX:
            raise ValueError(f"replace_after_s must be between 0 and {REPAIR_WAIT_S_MAX}")
        check_zones(self.nodes, self.replicas)

    @property
    def zones(self) -> dict[int, str]:
        return {n.id: n.az for n in self.nodes}


def load_node_config(path: str) -> NodeConfig:
    data = read_config_file(path)
    return NodeConfig(node_id=int(data["node_id"]), az=str(data["az"]),
                      data_dir=str(data["data_dir"]), http_port=int(data["http_port"]),
                      peer_port=int(data["peer_port"]), nodes=nodes_of(data),
                      listen_host=str(data.get("listen_host", "127.0.0.1")),
                      sync=str(data.get("sync", "batch")),
                      replicas=int(data.get("replicas", 3)),
                      repair_wait_s=float(data.get("repair_wait_s", REPAIR_BOUND_WAIT_S_DEFAULT)),
                      replace_after_s=float(data.get("replace_after_s", REPLACE_AFTER_S_DEFAULT)),
                      memds=memds_of(data), splits=_splits(data))


def _splits(data: dict[str, Any]) -> SplitLimits:
    given = data.get("splits") or {}
    known = set(SplitLimits.__dataclass_fields__)
    unknown = set(given) - known
    if unknown:
        raise ValueError(f"unknown split settings {sorted(unknown)}")
    return SplitLimits(**given)


def write_node_config(path: str, config: NodeConfig) -> None:
    """The config file of a node (cluster/local.py); timing options are not written:
    a node process runs with the defaults."""
    data = asdict(config)
    data.pop("options")
    with open(path, "w") as file:
        json.dump(data, file, indent=2)
