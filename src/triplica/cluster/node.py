"""A storage node process: `triplica node --config FILE`.

The node serves DynamoDB's HTTP API (for the router; no SigV4 check, the
router does it) over a Database whose partitions are NodePartitions: this
node's replica of each group, the other members reached over TCP through
one PeerNetwork (peer_network.py).

Its HTTP layer adds two things to TriplicaApp:
- a `NotLeaderError` from a partition becomes `421` with header
  `x-triplica-leader: <node id | none>` (internal: the router follows it,
  an SDK client never sees it);
- CreateTable needs the router's `x-triplica-group-token` header: every
  node derives the new partitions' group keys (the names their replicas use
  to find each other) from that token, so all nodes agree on them although
  each node picks its own table and partition ids. A CreateTable sent to a
  node directly is refused. Group key and members are written to
  `group.json` in the partition directory before the replica starts and
  read back on restart.

Node requests over the peer port (peer_network.py `request`), one kind so
far: `{"repair_bound": <group key>}`, answered with this node's replica's
`RepairBound` (`{"promised": [round, node], "until": index}`) when it is
open and a healthy voter, otherwise `{"unavailable": <why>}`. A node whose
own replica of a group is damaged asks every other member this way before
rebuilding it (engine/node_partition.py, "Damaged replica").
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from typing import Awaitable

import orjson

from triplica.api.app import TriplicaApp
from triplica.api.http_server import Request, Response, serve_until_stopped
from triplica.api import wire
from triplica.cluster.config import NodeConfig, placement
from triplica.cluster.peer_network import PeerNetwork
from triplica.engine.catalog import PartitionInfo, TableInfo
from triplica.engine.database import Database
from triplica.engine.node_partition import NodePartition, NotLeaderError, UnhostedPartition
from triplica.engine.replica_repair import REPAIR_BOUND_CALL_S, RepairBound
from triplica.errors import ValidationException
from triplica.storage.files import read_json, write_json_durably
from triplica.transport.base import Message, RemoteError, TransportError

log = logging.getLogger(__name__)

LEADER_HEADER = "x-triplica-leader"
GROUP_TOKEN_HEADER = "x-triplica-group-token"
GROUP_FILE = "group.json"
REPAIR_BOUND_REQUEST = "repair_bound"
_TOKEN = re.compile(r"[0-9a-f]{32}")


def redirect_response(error: NotLeaderError) -> Response:
    leader = "none" if error.leader_id is None else str(error.leader_id)
    body = orjson.dumps({"__type": "triplica#NotLeader", "message": str(error)})
    return error.status, body, {LEADER_HEADER: leader}


class StorageNode:
    """Builds this node's partitions (the Database's partition factory) and answers
    its peers' requests about them."""

    def __init__(self, config: NodeConfig, network: PeerNetwork) -> None:
        self.config = config
        self.network = network
        self.create_token: str | None = None  # set by NodeApp around a CreateTable
        self.replicas: dict[str, NodePartition] = {}  # group key -> this node's replica
        network.serve_requests(self.answer)

    def open_partition(self, info: TableInfo, partition: PartitionInfo,
                       directory: str) -> NodePartition | UnhostedPartition:
        path = os.path.join(directory, GROUP_FILE)
        fresh = not os.path.exists(path)
        if fresh:
            if self.create_token is None:
                raise ValidationException("Tables of a cluster are created through its router")
            group_key = f"{self.create_token}/{partition.hash_start:x}"
            members = placement(self.config.nodes, group_key)
            write_json_durably(path, {"group": group_key, "members": members})
        else:
            document = read_json(path)
            group_key, members = document["group"], document["members"]
        # The catalogue entry carries the group too (the router's partition map reads it).
        partition.group, partition.members = group_key, list(members)
        if self.config.node_id not in members:
            return UnhostedPartition(members)
        replica = NodePartition(directory, node_id=self.config.node_id, group_key=group_key,
                                members=members, network=self.network, sync_mode=self.config.sync,
                                fresh=fresh, ask_bound=lambda peer: self.ask_bound(peer, group_key),
                                repair_wait_s=self.config.repair_wait_s)
        # Deleted tables' replicas are closed; forget them here (bounds the dict).
        self.replicas = {key: r for key, r in self.replicas.items() if not r.closed}
        self.replicas[group_key] = replica
        return replica

    async def answer(self, request: dict) -> Message:
        """A peer's request (see the module docstring); unknown ones raise (RemoteError there)."""
        group_key = request.get(REPAIR_BOUND_REQUEST)
        if len(request) != 1 or not isinstance(group_key, str):
            raise ValueError(f"unknown request {request!r:.200}")
        replica = self.replicas.get(group_key)
        bound = "it hosts no open replica of the group" if replica is None else replica.repair_bound()
        if isinstance(bound, RepairBound):
            return bound.to_wire()
        return {"unavailable": bound}

    async def ask_bound(self, peer: int, group_key: str) -> RepairBound | str:
        """Node `peer`'s repair bound for a group, or why there is none (never raises)."""
        try:
            answer = await self.network.request(peer, {REPAIR_BOUND_REQUEST: group_key},
                                                REPAIR_BOUND_CALL_S)
        except RemoteError as error:  # it is up but could not answer (still starting)
            return f"refused ({error})"
        except TransportError as error:
            return f"unreachable ({error})"
        if isinstance(answer, dict) and isinstance(answer.get("unavailable"), str):
            return f"unavailable: {answer['unavailable']}"
        try:
            return RepairBound.from_wire(answer)
        except ValueError as error:
            return str(error)


class NodeApp:
    """TriplicaApp plus the node's internal redirect (421) and CreateTable token."""

    def __init__(self, app: TriplicaApp, node: StorageNode) -> None:
        self.app = app
        self.node = node

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        if not request.headers.get("x-amz-target", "").endswith(".CreateTable"):
            return self._handle(request)
        token = request.headers.get(GROUP_TOKEN_HEADER)
        if token is None or not _TOKEN.fullmatch(token):
            status, body = wire.error_response(ValidationException(
                "Tables of a cluster are created through its router"))
            return status, body, None
        self.node.create_token = token
        try:
            return self._handle(request)
        finally:
            self.node.create_token = None

    def _handle(self, request: Request) -> Response | Awaitable[Response]:
        try:
            result = self.app.handle(request)
        except NotLeaderError as error:
            return redirect_response(error)
        if type(result) is tuple:
            return result
        return self._finish(result)

    async def _finish(self, pending: Awaitable[Response]) -> Response:
        try:
            return await pending
        except NotLeaderError as error:
            return redirect_response(error)

    async def close(self) -> None:
        await self.app.close()


async def serve_node(config: NodeConfig, stop: asyncio.Event) -> None:
    network = PeerNetwork(config.node_id, config.listen_host, config.peer_port, config.nodes)
    await network.start()
    try:
        node = StorageNode(config, network)
        db = Database(config.data_dir, sync_mode=config.sync,
                      partition_factory=node.open_partition)
        app = NodeApp(TriplicaApp(db), node)
        await serve_until_stopped(app, config.listen_host, config.http_port, stop)
    finally:
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
