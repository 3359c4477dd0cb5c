"""A replication group of three NodePartitions in one event loop, for driver tests.

The one partition class (engine/node_partition.py) on three in-process
nodes: each replica has its own PeerNetwork (transport/mesh.py) on one
InProcessNetwork, exactly as `triplica serve` wires its nodes, so messages
between the replicas take the same paths (direct local delivery, images
through the transport). Stopping a replica closes it (a power-off as far
as its peers can tell); starting it reopens it from its directory.

pytest-asyncio is not installed: each test runs its own loop (`run`).
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Awaitable, Callable

from triplica.common.redirects import NotLeaderError
from triplica.engine.node_partition import NodePartition
from triplica.engine.replica_repair import RepairBound
from triplica.replication.driver import COMPACT_ENTRIES_DEFAULT, ReplicaDriver
from triplica.replication.options import ReplicaOptions
from triplica.transport.inprocess import InProcessNetwork
from triplica.transport.mesh import PeerNetwork

GROUP_KEY = "group-under-test"
MEMBERS = (1, 2, 3)
WAIT_S_MAX = 5.0
# The timing `triplica serve` uses (hosting/serve.py SERVE_OPTIONS).
SLOW = ReplicaOptions(heartbeat_interval_ms=400, election_timeout_base_ms=1500,
                      election_timeout_jitter_ms=500)


def image(text: str) -> bytes:
    body = text.encode()
    return len(body).to_bytes(4, "big") + body  # u32 size prefix, as stored items have


async def until(predicate: Callable[[], bool], timeout_s: float = WAIT_S_MAX) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


class LocalGroup:
    """Three replicas of one group, one per in-process node (module docstring)."""

    def __init__(self, directory: str, options: ReplicaOptions = SLOW,
                 compact_entries: int = COMPACT_ENTRIES_DEFAULT,
                 network: InProcessNetwork | None = None, indexer: Any = None) -> None:
        """`indexer`: the local secondary indexes every replica's store keeps."""
        self.directory = directory
        self.indexer = indexer
        self.options = options
        self.compact_entries = compact_entries
        self.network = network if network is not None else InProcessNetwork()
        self.meshes: dict[int, PeerNetwork] = {}
        self.replicas: dict[int, NodePartition | None] = {node: None for node in MEMBERS}

    async def start(self) -> "LocalGroup":
        fresh = not os.path.exists(self.replica_directory(MEMBERS[0]))
        for node in MEMBERS:
            mesh = PeerNetwork(node, self.network, ("node", node),
                               {other: ("node", other) for other in MEMBERS if other != node})
            await mesh.start()
            self.meshes[node] = mesh
        for node in MEMBERS:
            self._open(node, fresh)
        await until(lambda: self.usable_leader() is not None)
        return self

    def partition_directory(self, node: int) -> str:
        return os.path.join(self.directory, f"node-{node}")

    def replica_directory(self, node: int) -> str:
        return os.path.join(self.partition_directory(node), "replica")

    def _open(self, node: int, fresh: bool) -> NodePartition:
        assert self.replicas[node] is None, f"replica {node} is running"
        replica = NodePartition(self.partition_directory(node), replica_id=node,
                                group_key=GROUP_KEY, members=list(MEMBERS),
                                network=self.meshes[node], fresh=fresh, options=self.options,
                                compact_entries=self.compact_entries, ask_bound=self._ask_bound,
                                indexer=self.indexer)
        self.replicas[node] = replica
        return replica

    async def _ask_bound(self, peer: int) -> RepairBound | str:
        """A peer's repair bound (what a node asks over the mesh, asked directly)."""
        replica = self.replicas.get(peer)
        return "its replica is stopped" if replica is None else replica.repair_bound()

    @property
    def drivers(self) -> dict[int, ReplicaDriver | None]:
        return {node: None if r is None else r.driver for node, r in self.replicas.items()}

    def leader(self) -> ReplicaDriver | None:
        for driver in self.drivers.values():
            if driver is not None and driver.is_leader:
                return driver
        return None

    def usable_leader(self) -> NodePartition | None:
        for replica in self.replicas.values():
            if replica is not None and replica.serving():
                return replica
        return None

    def leading(self) -> NodePartition:
        replica = self.usable_leader()
        if replica is None:
            raise NotLeaderError(None)
        return replica

    def propose(self, writes: list[tuple[bytes, bytes | None]]) -> Any:
        return self.leading().propose(writes)

    async def stop_replica(self, node: int) -> None:
        replica = self.replicas[node]
        assert replica is not None, f"replica {node} is not running"
        self.replicas[node] = None
        await replica.aclose()

    def start_replica(self, node: int) -> NodePartition:
        return self._open(node, fresh=False)

    def contents(self, node: int) -> tuple[int, list]:
        driver = self.drivers[node]
        assert driver is not None
        return driver.store.applied_index(), list(driver.store.scan(b"", None))

    async def converged(self) -> None:
        nodes = [n for n, d in self.drivers.items() if d is not None]
        try:
            await until(lambda: len({repr(self.contents(n)) for n in nodes}) == 1)
        except AssertionError:
            seen = {n: (self.contents(n)[0], len(self.contents(n)[1])) for n in nodes}
            raise AssertionError(f"not converged: (applied, items) per node {seen}") from None

    async def close(self) -> None:
        for node, replica in list(self.replicas.items()):
            if replica is not None:
                self.replicas[node] = None
                await replica.drain()
                await replica.aclose()
        for mesh in self.meshes.values():
            await mesh.close()
