"""A storage node process: `triplica node --config FILE`.

The node serves DynamoDB's HTTP API (for the router; no SigV4 check, the
router does it) over a Database whose partitions are NodePartitions: this
node's replica of each group, the other members reached over TCP through
one PeerNetwork (peer_network.py).

Its HTTP layer adds to TriplicaApp:
- table operations go to the control plane (cluster/node_metadata.py
  `ControlPlaneApp`; metadata/control_plane.py), which places a new table's
  partitions and records them, with their group keys and members, in the
  metadata log that every node's catalogue follows. A node opens its
  replica of a partition when its catalogue gets the table; group key and
  members are also written to `group.json` in the partition directory
  before the replica starts (its absence marks a brand-new group);
- a `NotLeaderError` from a partition becomes `421` with header
  `x-triplica-leader: <node id | none>` (internal: the router follows it,
  an SDK client never sees it);
- `Triplica.PartitionMap` (X-Amz-Target; body `{"TableName": t}`): a
  table's partition map (router/map_source.py, the router's fallback when
  no MemDS server answers), from this node's catalogue at its epoch. An
  unknown table is ResourceNotFoundException as usual;
- internal request parameters (router/internal.py: a Scan restricted to one
  partition, a batch checked but not run) are honoured, because only the
  router talks to a node.

Node requests over the peer port (peer_network.py `request`): those of
the metadata role (cluster/node_metadata.py), and `{"repair_bound": <group key>}`, answered with this node's replica's
`RepairBound` (`{"promised": [round, node], "until": index}`) when it is
open and a healthy voter, otherwise `{"unavailable": <why>}`. A node whose
own replica of a group is damaged asks every other member this way before
rebuilding it (engine/node_partition.py, "Damaged replica").

Splits (engine/group_split.py): the control plane asks
`{"split_group": key, "boundary", "left", "right"}` (this node's replica
proposes the split entry if it leads: `{"index": A}`, else `{"not_leader":
hint}`), `{"split_applied": key}` (has this replica applied it, after a
bounded wait) and `{"split_reports": 1}` (what this node's SplitAdvisor
saw of each replica it hosts). A partition that was split answers 421 with
`x-triplica-moved: 1` (the router refreshes its map). When the catalogue
switches to a split's children, `prepare_child` builds this node's child
replicas from its parent replica off the event loop; `open_partition`
builds them at start instead if a crash came between the switch and the
build, and opens a child it cannot build as a replica to heal.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import time
from typing import Any, Awaitable, Callable

import orjson

from triplica.api.app import TriplicaApp
from triplica.api.http_server import Request, Response, serve_until_stopped
from triplica.api import wire
from triplica.cluster.config import NodeConfig
from triplica.cluster.node_metadata import ControlPlaneApp, MetadataRole
from triplica.cluster.peer_network import PeerNetwork
from triplica.engine.catalogue import PartitionInfo, TableInfo
from triplica.engine.database import Database
from triplica.engine.group_split import REPLICA_DIRECTORY, SplitMarker, build_child
from triplica.common.redirects import (LEADER_HEADER, MOVED_HEADER, NotLeaderError,
                                       PartitionMovedError)
from triplica.engine.node_partition import (NodePartition,
                                            UnhostedPartition)
from triplica.engine.partition import stored_item_size
from triplica.engine.split_advisor import SplitAdvisor
from triplica.storage.lmdb_store import PartitionStore
from triplica.engine.replica_repair import REPAIR_BOUND_CALL_S, RepairBound
from triplica.errors import DynamoError, ResourceNotFoundException
from triplica.common.internal import PARTITION_MAP_TARGET
from triplica.metadata.catalogue_log import table_map_of
from triplica.metadata.metadata_replica import METADATA_GROUP
from triplica.storage.files import read_json, write_json_durably
from triplica.transport.base import Message, RemoteError, TransportError

log = logging.getLogger(__name__)

SPLIT_APPLY_WAIT_S = 2.0    # a member applies a committed split within a heartbeat or two
SPLIT_PROPOSE_WAIT_S = 5.0
ADVISE_EVERY_S = 1.0
ABANDONED_AFTER_S = 600.0  # a spare that learned no configuration in this long
ABANDONED_CHECK_ROUNDS = 10
GROUP_FILE = "group.json"
REPAIR_BOUND_REQUEST = "repair_bound"


def redirect_response(error: NotLeaderError) -> Response:
    leader = "none" if error.leader_id is None else str(error.leader_id)
    body = orjson.dumps({"__type": "triplica#NotLeader", "message": str(error)})
    headers = {LEADER_HEADER: leader}
    if isinstance(error, PartitionMovedError):
        headers[MOVED_HEADER] = "1"
    return error.status, body, headers


async def advise_splits(advisor: SplitAdvisor, node: "StorageNode") -> None:
    """Keep this node's split reports current (engine/split_advisor.py), and drop
    abandoned spare replicas now and then."""
    rounds = 0
    while True:
        await asyncio.sleep(ADVISE_EVERY_S)
        rounds += 1
        try:
            await advisor.check()
            if rounds % ABANDONED_CHECK_ROUNDS == 0:
                await node.drop_abandoned()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("split advisor / spare check failed", exc_info=True)


class StorageNode:
    """Builds this node's partitions (the Database's partition factory) and answers
    its peers' requests about them."""

    def __init__(self, config: NodeConfig, network: PeerNetwork) -> None:
        self.config = config
        self.network = network
        self.replicas: dict[str, NodePartition] = {}  # group key -> this node's replica
        self.advisor: SplitAdvisor | None = None  # set once the Database exists
        self.db: Database | None = None
        self.metadata: Any = None  # cluster/node_metadata.py MetadataRole, set by serve_node
        # Peer requests of other roles (cluster/node_metadata.py): None if not theirs.
        self.more_requests: Callable[[dict], Awaitable[Message | None]] | None = None
        network.serve_requests(self.answer)

    def open_partition(self, info: TableInfo, partition: PartitionInfo,
                       directory: str) -> NodePartition | UnhostedPartition:
        path = os.path.join(directory, GROUP_FILE)
        fresh = not os.path.exists(path)
        joining = False
        if fresh:  # placed by the metadata system (metadata/planning.py)
            if partition.group is None or not partition.members:
                raise AssertionError(f"table {info.name}: a cluster partition without a group")
            group_key, members = partition.group, list(partition.members)
            if partition.split_from is not None and self.config.node_id in members:
                # A split child (engine/group_split.py): a new group if built from this
                # node's parent replica (possibly now, after a restart), else a replica
                # to heal from the child's other members.
                if not os.path.isdir(os.path.join(directory, REPLICA_DIRECTORY)):
                    self._build_child_now(partition, directory)
                fresh = os.path.isdir(os.path.join(directory, REPLICA_DIRECTORY))
            os.makedirs(directory, exist_ok=True)
            write_json_durably(path, {"group": group_key, "members": members})
        else:
            document = read_json(path)
            group_key, members = document["group"], document["members"]
            joining = bool(document.get("joining"))
        catalogue_members = list(partition.members or members)
        partition.group, partition.members = group_key, catalogue_members
        if self.config.node_id not in members or not (
                joining or self.config.node_id in catalogue_members):
            # Never a member, or moved away (the move is recorded: its files can go).
            shutil.rmtree(os.path.join(directory, REPLICA_DIRECTORY), ignore_errors=True)
            return UnhostedPartition(catalogue_members)
        if joining and self.config.node_id in catalogue_members:
            # The move that added it is recorded: from now on an ordinary member (which
            # a later move may remove like any other).
            write_json_durably(path, {"group": group_key, "members": members})
        open_already = self._open_replica(group_key)
        if open_already is not None:  # joined by the control plane (replica_mover.py)
            return open_already
        replica = NodePartition(directory, node_id=self.config.node_id, group_key=group_key,
                                members=members, network=self.network, sync_mode=self.config.sync,
                                fresh=fresh, ask_bound=lambda peer: self.ask_bound(peer, group_key),
                                repair_wait_s=self.config.repair_wait_s,
                                joining=not fresh and joining)
        # Deleted tables' replicas are closed; forget them here (bounds the dict).
        self.replicas = {key: r for key, r in self.replicas.items() if not r.closed}
        self.replicas[group_key] = replica
        return replica

    # ----------------------------------------------------------------- splits

    def _open_replica(self, group_key: str) -> NodePartition | None:
        replica = self.replicas.get(group_key)
        return replica if replica is not None and not replica.closed else None

    def _build_child_now(self, child: PartitionInfo, directory: str) -> bool:
        """Build a split child from the parent's directory (its replica is not open:
        a restart after the switch was saved). False when there is nothing to build from."""
        parent_directory = os.path.join(os.path.dirname(directory), str(child.split_from))
        items = os.path.join(parent_directory, REPLICA_DIRECTORY, "items")
        group_file = os.path.join(parent_directory, GROUP_FILE)
        if not os.path.isdir(items) or not os.path.exists(group_file):
            return False
        parent = self._open_replica(read_json(group_file)["group"])
        if parent is not None:
            if parent.driver is None:
                return False
            return build_child(parent.driver.store, directory, child.hash_start, child.hash_end,
                               list(child.members or ()), self.config.sync)
        with PartitionStore(items, value_size=stored_item_size) as store:
            return build_child(store, directory, child.hash_start, child.hash_end,
                               list(child.members or ()), self.config.sync)

    async def prepare_child(self, parent: Any, child: PartitionInfo, directory: str) -> None:
        """Before a split's switch is saved (Database.apply_split): wait (bounded) for this
        node's parent replica to apply the split, then build the child from it off the
        event loop. Without the marker the child opens as a replica to heal."""
        if not isinstance(parent, NodePartition) or os.path.isdir(directory):
            return
        marker = await parent.wait_moved(SPLIT_APPLY_WAIT_S)
        if marker is None or parent.driver is None:
            log.warning("group %s: split not applied here in %.0f s; child %s will heal",
                        parent.group_key, SPLIT_APPLY_WAIT_S, child.group)
            return
        store = parent.driver.store
        await asyncio.get_running_loop().run_in_executor(
            None, build_child, store, directory, child.hash_start, child.hash_end,
            list(child.members or ()), self.config.sync)

    async def split_group(self, request: dict) -> Message:
        """The control plane asks this node (the parent's leader, it hopes) to split a group."""
        group_key = str(request["split_group"])
        replica = self._open_replica(group_key)
        if replica is None:
            return {"not_leader": None}
        marker = SplitMarker(int(request["boundary"]), str(request["left"]), str(request["right"]))
        try:
            index = await replica.split(marker, SPLIT_PROPOSE_WAIT_S)
        except NotLeaderError as error:
            return {"not_leader": error.leader_id}
        return {"index": index}

    # ----------------------------------------------------- moving replicas

    def _partition_of(self, table: str, group_key: str) -> tuple[TableInfo, PartitionInfo]:
        assert self.db is not None
        info = self.db.tables[table].info
        return info, next(p for p in info.partitions if p.group == group_key)

    def host_replica(self, table: str, group_key: str, members: list[int]) -> None:
        """Open a replica of an existing group that the control plane is adding here
        (metadata/replica_mover.py): empty, with no configuration, it catches up from the
        leader once proposed. Recorded in group.json as joining, so a restart reopens it."""
        if self._open_replica(group_key) is not None:
            return
        info, partition = self._partition_of(table, group_key)
        directory = self.db.partition_dir(info, partition)  # type: ignore[union-attr]
        shutil.rmtree(directory, ignore_errors=True)  # a former member's leftovers
        os.makedirs(directory)
        peers = sorted(set(members) | {self.config.node_id})
        write_json_durably(os.path.join(directory, GROUP_FILE),
                           {"group": group_key, "members": peers, "joining": True})
        replica = NodePartition(directory, node_id=self.config.node_id, group_key=group_key,
                                members=peers, network=self.network, sync_mode=self.config.sync,
                                ask_bound=lambda peer: self.ask_bound(peer, group_key),
                                repair_wait_s=self.config.repair_wait_s, joining=True)
        self.replicas[group_key] = replica

    async def drop_replica(self, table: str, group_key: str) -> bool:
        """Close and delete this node's replica of a group it no longer belongs to."""
        replica = self._open_replica(group_key)
        if replica is None:
            return True
        assert self.db is not None
        info, partition = self._partition_of(table, group_key)
        if self.config.node_id in (partition.members or ()):
            return False  # the catalogue still routes to it
        del self.replicas[group_key]
        await replica.aclose()
        shutil.rmtree(self.db.partition_dir(info, partition), ignore_errors=True)
        return True

    async def drop_abandoned(self) -> int:
        """Drop joined replicas that no move will use: their group's configuration, as
        they learned it, leaves them out, or they learned none in ABANDONED_AFTER_S (the
        metadata leader that added them lost its leadership and its plan). Returns how
        many went."""
        if self.db is None:
            return 0
        dropped = 0
        for name, table in list(self.db.tables.items()):
            for info, partition in zip(list(table.info.partitions), list(table.partitions)):
                replica = self._open_replica(str(info.group))
                if replica is None or replica is partition:
                    continue  # not a joined spare (the Database serves it), or none
                path = os.path.join(self.db.partition_dir(table.info, info), GROUP_FILE)
                config = replica.committed_members()
                age_s = time.time() - os.path.getmtime(path) if os.path.exists(path) else 0.0
                left_out = config is not None and self.config.node_id not in config[0]
                if left_out or (config is None and age_s > ABANDONED_AFTER_S):
                    if await self.drop_replica(name, str(info.group)):
                        dropped += 1
                        log.warning("dropped an abandoned replica of group %s", info.group)
        return dropped

    async def answer_moves(self, request: dict) -> Message | None:
        """The control plane's requests about moving replicas (None: not one of them)."""
        if "ping" in request:
            return {"ok": True}
        key = request.get("group_status", request.get("replica_config"))
        if key is not None:
            replica = self._open_replica(str(key))
            if "replica_config" in request:
                config = None if replica is None else replica.committed_members()
                return {"config": None if config is None else list(config)}
            status = None if replica is None else replica.status()
            if status is None:
                return {"not_leader": None if replica is None else replica.leader_hint()}
            return status
        if "host_replica" in request:
            members = [int(m) for m in request["members"]]
            if request["host_replica"] == METADATA_GROUP:
                self.metadata.join(members)  # type: ignore[union-attr]
            else:
                self.host_replica(str(request["table"]), str(request["host_replica"]), members)
            return {"ok": True}
        if "drop_replica" in request:
            if request["drop_replica"] == METADATA_GROUP:
                return {"ok": await self.metadata.leave_if_removed(retired=True)}  # type: ignore
            return {"ok": await self.drop_replica(str(request["table"]),
                                                  str(request["drop_replica"]))}
        if "propose_members" in request:
            replica = self._open_replica(str(request["propose_members"]))
            try:
                if replica is None:
                    raise NotLeaderError(None)
                index = replica.propose_members([int(m) for m in request["members"]],
                                                [int(m) for m in request["log_replicas"]])
            except NotLeaderError as error:
                return {"not_leader": error.leader_id}
            return {"index": index}
        return None

    async def answer(self, request: dict) -> Message:
        """A peer's request (see the module docstring); unknown ones raise (RemoteError there)."""
        moves = await self.answer_moves(request)
        if moves is not None:
            return moves
        if "split_group" in request:
            return await self.split_group(request)
        if "split_applied" in request:  # the control plane waits for every live member
            replica = self._open_replica(str(request["split_applied"]))
            marker = None if replica is None else await replica.wait_moved(SPLIT_APPLY_WAIT_S)
            return {"applied": marker is not None}
        if "split_reports" in request:
            advisor = self.advisor
            return {"reports": [] if advisor is None else [r.to_wire() for r in advisor.reports]}
        if self.more_requests is not None and REPAIR_BOUND_REQUEST not in request:
            answer = await self.more_requests(request)
            if answer is not None:
                return answer
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
    """TriplicaApp plus the node's internal redirect (421) and partition map answer."""

    def __init__(self, app: TriplicaApp, node: StorageNode) -> None:
        self.app = app
        self.node = node

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        target = request.headers.get("x-amz-target", "")
        if target == PARTITION_MAP_TARGET:
            return self._partition_map(request)
        return self._handle(request)

    def _partition_map(self, request: Request) -> Response:
        """The router's map request (module docstring), at the catalogue's epoch."""
        try:
            parameters = wire.parse_body(request.body)
            name = parameters.get("TableName")
            table = self.app.db.tables.get(name) if type(name) is str else None
            if table is None:
                raise ResourceNotFoundException("Requested resource not found")
            map_doc = table_map_of(table.info, self.app.db.catalogue.epoch).to_doc()
            return 200, orjson.dumps(map_doc), None
        except DynamoError as error:
            status, body = wire.error_response(error)
            return status, body, None

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
        # The router routes per partition, so a table gets the partitions its
        # provisioned capacity needs (engine/partition_plan.py).
        db.partitions_follow_capacity = True
        db.prepare_child = node.prepare_child
        node.db = db
        limits = config.splits
        node.advisor = SplitAdvisor(db, limits.size_bytes, limits.window_s)
        advising = asyncio.get_running_loop().create_task(advise_splits(node.advisor, node))
        role = MetadataRole(config, network, db, node)
        node.metadata = role
        node.more_requests = role.answer
        role.start()
        app = ControlPlaneApp(NodeApp(TriplicaApp(db, accepts_internal=True), node), role, redirect_response)
        try:
            await serve_until_stopped(app, config.listen_host, config.http_port, stop)
        finally:
            advising.cancel()
            await asyncio.gather(advising, return_exceptions=True)
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
