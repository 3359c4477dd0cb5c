"""A storage node: hosts one replica of many partitions and answers routers and peers.

The node's Database holds its catalogue (which follows the metadata log,
metadata/catalogue_follower.py) and, per table, one partition object per
hash range: this node's replica of the range's group (a NodePartition,
driven by the same ReplicaDriver everywhere) or an UnhostedPartition that
redirects. Peers are reached through one PeerNetwork (transport/mesh.py),
over TCP between processes (`triplica node`) or in-process (`triplica
serve`, where every node of the deployment lives in one process).

Router calls (`handle_call`, node/calls.py): DynamoDB operations with their
decoded parameters, run by the operation handlers of engine/operations/ on
this node's partitions. A router in the same process calls `handle_call`
directly; one in another process sends `{"call": [...]}` over the peer
address (node/calls.py has the wire form). Table operations go to the
control plane through `control` (set by the process that also hosts the
metadata role, hosting/); a partition that does not lead raises
NotLeaderError, a split one PartitionMovedError (common/redirects.py), and
the router follows.

A partition's group key and members are written to `group.json` in the
partition directory before its replica starts (its absence marks a
brand-new group).

Node requests over the peer address (transport/mesh.py `request`): those of
the metadata role (metadata/role.py, through `more_requests`), router calls,
and `{"repair_bound": <group key>}`, answered with this node's replica's
`RepairBound` (`{"promised": [round, node], "until": index}`) when it is
open and a healthy voter, otherwise `{"unavailable": <why>}`. A node whose
own replica of a group is damaged asks every other member this way before
repairing it (engine/node_partition.py, "Damaged replica").

Splits (engine/group_split.py): the control plane asks
`{"split_group": key, "boundary", "left", "right"}` (this node's replica
proposes the split entry if it leads: `{"index": A}` once applied, `{"proposed":
true}` while it is in flight, else `{"not_leader": hint}`), `{"split_applied": key}` (has this replica applied it, after a
bounded wait) and `{"split_reports": 1}` (what this node's SplitAdvisor
saw of each replica it hosts). When the catalogue switches to a split's
children, `prepare_child` builds this node's child replicas from its parent
replica off the event loop; `open_partition` builds them at start instead
if a crash came between the switch and the build, and opens a child it
cannot build as a replica to repair.

Moving replicas (metadata/replica_mover.py): `ping`, `group_status`,
`replica_config`, `host_replica`, `drop_replica`, `propose_members`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from typing import Any, Awaitable, Callable

from triplica.common.redirects import NotLeaderError
from triplica.engine.catalogue import METADATA_GROUP, PartitionInfo, TableInfo
from triplica.engine.database import Database
from triplica.engine.group_split import REPLICA_DIRECTORY, build_child
from triplica.engine.split_protocol import SplitMarker
from triplica.engine.node_config import NodeConfig
from triplica.engine.node_partition import NodePartition, UnhostedPartition
from triplica.engine.local_indexes import local_indexer_of
from triplica.engine.log_entries import stored_item_size
from triplica.engine.replica_repair import REPAIR_BOUND_CALL_S, RepairBound
from triplica.engine.split_advisor import SplitAdvisor
from triplica.node.calls import CALL_REQUEST, ControlHandler, NodeCalls
from triplica.storage.files import read_json, write_json_durably
from triplica.storage.lmdb_store import PartitionStore
from triplica.transport.base import Message, RemoteError, TransportError
from triplica.transport.mesh import PeerNetwork

log = logging.getLogger(__name__)

SPLIT_APPLY_WAIT_S = 2.0    # a member applies a committed split within a heartbeat or two
SPLIT_PROPOSE_WAIT_S = 5.0
ADVISE_EVERY_S = 1.0
ABANDONED_AFTER_S = 600.0  # a spare that learned no configuration in this long
ABANDONED_CHECK_ROUNDS = 10
GROUP_FILE = "group.json"
REPAIR_BOUND_REQUEST = "repair_bound"


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
        """Opens the node's catalogue and replicas; needs a running event loop."""
        self.config = config
        self.network = network
        self.replicas: dict[str, NodePartition] = {}  # group key -> this node's replica
        self.metadata: Any = None  # metadata/role.py MetadataRole, set by the host
        # Peer requests of other roles (metadata/role.py): None if not theirs.
        self.more_requests: Callable[[dict], Awaitable[Message | None]] | None = None
        self.db = Database(config.data_dir, self.open_partition)
        self.db.prepare_child = self.prepare_child
        limits = config.splits
        self.advisor = SplitAdvisor(self.db, limits.size_bytes, limits.window_s)
        self.calls = NodeCalls(self.db)
        self._advising: asyncio.Task | None = None
        network.serve_requests(self.answer)

    @property
    def node_id(self) -> int:
        return self.config.node_id

    def start(self) -> None:
        """Start the node's own background work (split reports, abandoned spares)."""
        assert self._advising is None
        self._advising = asyncio.get_running_loop().create_task(advise_splits(self.advisor, self))

    def set_control(self, control: ControlHandler) -> None:
        """Where table operations go (the metadata role of this process)."""
        self.calls.control = control

    def handle_call(self, operation: str, parameters: dict[str, Any], region: str,
                    host: str) -> Any:
        """A router's call (node/calls.py)."""
        return self.calls.handle(operation, parameters, region, host)

    async def close(self) -> None:
        if self._advising is not None:
            self._advising.cancel()
            await asyncio.gather(self._advising, return_exceptions=True)
            self._advising = None
        await self.db.close()

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
                                fresh=fresh, options=self.config.options,
                                ask_bound=lambda peer: self.ask_bound(peer, group_key),
                                repair_wait_s=self.config.repair_wait_s,
                                joining=not fresh and joining, indexer=local_indexer_of(info))
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
            if replica.split_state.proposing is not None:
                return {"proposed": True}  # it still leads, its split entry in flight: ask again
            return {"not_leader": error.leader_id}
        return {"index": index}

    # ----------------------------------------------------- moving replicas

    def _partition_of(self, table: str, group_key: str) -> tuple[TableInfo, PartitionInfo]:
        info = self.db.tables[table].info
        return info, next(p for p in info.partitions if p.group == group_key)

    def host_replica(self, table: str, group_key: str, members: list[int]) -> None:
        """Open a replica of an existing group that the control plane is adding here
        (metadata/replica_mover.py): empty, with no configuration, it catches up from the
        leader once proposed. Recorded in group.json as joining, so a restart reopens it."""
        if self._open_replica(group_key) is not None:
            return
        info, partition = self._partition_of(table, group_key)
        directory = self.db.partition_dir(info, partition)
        shutil.rmtree(directory, ignore_errors=True)  # a former member's leftovers
        os.makedirs(directory)
        peers = sorted(set(members) | {self.config.node_id})
        write_json_durably(os.path.join(directory, GROUP_FILE),
                           {"group": group_key, "members": peers, "joining": True})
        replica = NodePartition(directory, node_id=self.config.node_id, group_key=group_key,
                                members=peers, network=self.network, sync_mode=self.config.sync,
                                options=self.config.options,
                                ask_bound=lambda peer: self.ask_bound(peer, group_key),
                                repair_wait_s=self.config.repair_wait_s, joining=True,
                                indexer=local_indexer_of(info))
        self.replicas[group_key] = replica

    async def drop_replica(self, table: str, group_key: str) -> bool:
        """Close and delete this node's replica of a group it no longer belongs to."""
        replica = self._open_replica(group_key)
        if replica is None:
            return True
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
                self.metadata.join(members)
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
        call = request.get(CALL_REQUEST)
        if call is not None:
            return await self.calls.answer_remote(call)
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
