"""`triplica serve`: the whole deployment in one process, over the in-process transport.

The same roles as a cluster, built from the same classes (DESIGN.md, "One
engine"): storage nodes (by default three, one per AZ az-a/az-b/az-c;
`nodes` for more), each with its metadata role (so the metadata group has
a replica on each of the first three), a MemDS service fed like a MemDS
server (pushes from the metadata leader, polls of the nodes), and the
request router, whose node client calls the nodes' handlers directly and
whose map cache asks the MemDS service inline. Nodes talk to each other
over an InProcessNetwork: Paxos messages go straight from one driver to the
other (transport/base.py `try_local`), node requests are copied through
msgpack as over TCP. `replicas=1` is one node whose groups have one member:
the same code with a quorum of one.

Data directory layout (format 2): `D/node-<id>/` is each node's data
directory, exactly as `triplica node` keeps it, and `D/deployment.json`
records the format, the node count and the replica count (a directory is
reopened with the counts it was made with). A directory written by the
release before the one engine (a `catalog.json` at the top) is refused with
the command that converts it (hosting/migrate.py).

Start-up: every node opens its replicas (repairing a damaged one from its
peers in the background, engine/node_partition.py); a group with fewer
healthy voters than a majority can never repair, so the start stops with
an error naming it instead (nothing is moved). `wait_ready` then waits,
bounded, until every group has a leader that may serve.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass

from triplica.api.app import DynamoApp
from triplica.common.topology import NodeSpec
from triplica.engine.catalogue import CATALOGUE_FILE_NAME
from triplica.engine.node_config import NodeConfig, SplitLimits
from triplica.memds.feed import NodeFeed, run_feed
from triplica.memds.local import LocalMemds
from triplica.memds.server import MemdsService
from triplica.metadata.role import MetadataRole
from triplica.node.storage_node import StorageNode
from triplica.replication.options import ReplicaOptions
from triplica.router.map_cache import MapCache
from triplica.router.map_source import MemdsFirstMaps, NodeMapSource
from triplica.router.node_client import LocalNodes
from triplica.router.router import Router
from triplica.storage.files import write_json_durably
from triplica.transport.inprocess import InProcessNetwork
from triplica.transport.mesh import PeerNetwork

log = logging.getLogger(__name__)

DEPLOYMENT_FILE = "deployment.json"
DEPLOYMENT_FORMAT = 2
AVAILABILITY_ZONES = ("az-a", "az-b", "az-c")
MEMDS_ADDRESS = ("memds", 1)
MEMDS_POLL_S = 0.5
READY_WAIT_S_DEFAULT = 10.0
READY_POLL_S = 0.01
NODES_MAX = 64
# One process hosts every replica, so a short election timeout buys little (a
# stalled process stalls them all) and costs spurious elections when the machine is
# loaded; an idle group costs one heartbeat round per 400 ms. The lease follows from
# the timeout (replication/options.py): about 1.4 s, renewed every heartbeat.
SERVE_OPTIONS = ReplicaOptions(heartbeat_interval_ms=400, election_timeout_base_ms=1500,
                               election_timeout_jitter_ms=500)


class DataDirectoryError(Exception):
    """The data directory can't be served as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class ServeSettings:
    data_dir: str
    nodes: int = 3
    replicas: int = 3
    sync: str = "batch"
    splits: SplitLimits = SplitLimits(for_traffic=False)
    replace_after_s: float = 30.0
    repair_wait_s: float = 60.0
    options: ReplicaOptions = SERVE_OPTIONS

    def __post_init__(self) -> None:
        if self.replicas not in (1, 3):
            raise ValueError("replicas must be 1 or 3")
        if not self.replicas <= self.nodes <= NODES_MAX:
            raise ValueError(f"need {self.replicas} <= nodes <= {NODES_MAX}")


def node_specs(nodes: int, replicas: int) -> tuple[NodeSpec, ...]:
    zones = AVAILABILITY_ZONES[:max(replicas, min(nodes, len(AVAILABILITY_ZONES)))]
    return tuple(NodeSpec(i, zones[(i - 1) % len(zones)]) for i in range(1, nodes + 1))


def check_data_dir(settings: ServeSettings) -> None:
    """Refuse a directory of another layout or made with other counts; record ours."""
    data_dir = settings.data_dir
    os.makedirs(data_dir, exist_ok=True)
    if os.path.exists(os.path.join(data_dir, CATALOGUE_FILE_NAME)):
        raise DataDirectoryError(
            f"{data_dir} was written by an earlier triplica release (one catalogue for the "
            f"whole server); convert it once with: triplica migrate --data-dir {data_dir}")
    path = os.path.join(data_dir, DEPLOYMENT_FILE)
    wanted = {"format": DEPLOYMENT_FORMAT, "nodes": settings.nodes, "replicas": settings.replicas}
    if os.path.exists(path):
        with open(path) as file:
            found = json.load(file)
        if found.get("format") != DEPLOYMENT_FORMAT:
            raise DataDirectoryError(f"{path}: unknown format {found.get('format')!r}")
        if (found.get("nodes"), found.get("replicas")) != (settings.nodes, settings.replicas):
            raise DataDirectoryError(
                f"{data_dir} holds a deployment of {found.get('nodes')} nodes with "
                f"{found.get('replicas')} replicas per partition; serve it with "
                f"--nodes {found.get('nodes')} --replicas {found.get('replicas')}")
        return
    write_json_durably(path, wanted)


class Deployment:
    """Every role of one deployment, in this process (module docstring)."""

    def __init__(self, settings: ServeSettings, credentials: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.credentials = credentials
        self.network = InProcessNetwork()
        self.specs = node_specs(settings.nodes, settings.replicas)
        self.meshes: dict[int, PeerNetwork] = {}
        self.nodes: dict[int, StorageNode] = {}
        self.roles: dict[int, MetadataRole] = {}
        self.memds = MemdsService()
        self._memds_server = self.network.server(MEMDS_ADDRESS, self.memds.handle)
        self._feed: NodeFeed | None = None
        self._feeding: asyncio.Task | None = None
        self.router: Router | None = None
        self.app: DynamoApp | None = None

    def config_of(self, spec: NodeSpec) -> NodeConfig:
        s = self.settings
        return NodeConfig(node_id=spec.id, az=spec.az,
                          data_dir=os.path.join(s.data_dir, f"node-{spec.id}"),
                          nodes=self.specs, sync=s.sync, replicas=s.replicas,
                          repair_wait_s=s.repair_wait_s, replace_after_s=s.replace_after_s,
                          splits=s.splits, options=s.options)

    async def start(self) -> DynamoApp:
        """Open every role (needs the running loop); the app to serve over HTTP."""
        check_data_dir(self.settings)
        await self._memds_server.start()
        for spec in self.specs:
            mesh = PeerNetwork(spec.id, self.network, ("node", spec.id),
                               {other.id: ("node", other.id) for other in self.specs
                                if other.id != spec.id})
            await mesh.start()
            self.meshes[spec.id] = mesh
            self.nodes[spec.id] = StorageNode(self.config_of(spec), mesh)
        self._check_quorums()
        for spec in self.specs:
            node = self.nodes[spec.id]
            role = MetadataRole(node.config, self.meshes[spec.id], node.db, node,
                                memds=[self.network.client(MEMDS_ADDRESS)])
            node.metadata = role
            node.more_requests = role.answer
            node.set_control(role.handle_control)
            self.roles[spec.id] = role
        for spec in self.specs:
            self.roles[spec.id].start()
            self.nodes[spec.id].start()
        self._feed = NodeFeed([("node", spec.id) for spec in self.specs], transport=self.network)
        self._feeding = asyncio.get_running_loop().create_task(
            run_feed(self.memds.store, self._feed, MEMDS_POLL_S))
        local = LocalNodes(self.nodes)
        ids = [spec.id for spec in self.specs]
        maps = MemdsFirstMaps(MapCache(LocalMemds(self.memds)), NodeMapSource(local, ids))
        self.router = Router(local, ids, maps, eventual_reads_to_leader=True)
        self.app = DynamoApp(self.router, self.credentials)
        return self.app

    def _check_quorums(self) -> None:
        """Refuse to start when a group has too few healthy replicas to ever repair."""
        damaged: dict[str, list[str]] = {}
        members: dict[str, int] = {}
        for node in self.nodes.values():
            for (group, _), replica in node.replicas.items():
                members[group] = len(replica.members)
                if replica.damaged is not None:
                    damaged.setdefault(group, []).append(f"node {node.node_id}: {replica.damaged}")
        for group, reasons in sorted(damaged.items()):
            if members[group] - len(reasons) < members[group] // 2 + 1:
                raise DataDirectoryError(
                    f"group {group}: only {members[group] - len(reasons)} healthy replicas of "
                    f"{members[group]} (damaged: {'; '.join(reasons)}); refusing to start "
                    f"(no files were moved)")

    def groups_not_ready(self) -> list[str]:
        """The groups hosted here with no member that leads and may serve (a split
        parent counts as served: its children serve its keys)."""
        serving: dict[str, bool] = {}
        for node in self.nodes.values():
            for (group, _), replica in node.replicas.items():
                served = not replica.closed and (replica.moved is not None or replica.serving())
                serving[group] = serving.get(group, False) or served
        return sorted(group for group, served in serving.items() if not served)

    async def wait_ready(self, timeout_s: float = READY_WAIT_S_DEFAULT) -> list[str]:
        """Wait (bounded) until every group can serve; the groups that still cannot."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            waiting = self.groups_not_ready()
            if not waiting or loop.time() >= deadline:
                return waiting
            await asyncio.sleep(READY_POLL_S)

    async def close(self) -> None:
        if self._feeding is not None:
            self._feeding.cancel()
            await asyncio.gather(self._feeding, return_exceptions=True)
        if self._feed is not None:
            await self._feed.close()
        if self.router is not None:
            await self.router.close()
        for role in self.roles.values():
            await role.close()
        for node in self.nodes.values():
            await node.close()
        for mesh in self.meshes.values():
            await mesh.close()
        await self._memds_server.close()
