"""A storage node: hosts replicas of many partitions and answers routers and peers.

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

Replicas are named by replica ids (common/replica_ids.py: node id plus a
generation), so a node may hold two of one group while one replaces the
other; each has a home under the partition directory (engine/
replica_homes.py), whose `group.json` (group key, members, replica id) is
written before the replica starts (its absence marks a brand-new group).

Node requests over the peer address (transport/mesh.py `request`): those of
the metadata role (metadata/role.py, through `more_requests`), router calls,
and `{"repair_bound": <group key>, "replica": <id>}`, answered with that
replica's
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

Moving replicas (metadata/replica_mover.py): `ping` (answered with the
replicas this node holds open but not running, which the mover replaces),
`group_status`, `replica_config`, `host_replica`, `drop_replica` (these
three name the replica id), `propose_members`; and `stop_replica`, the
fault injection behind `Triplica.StopReplica` (metadata/role.py).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Awaitable, Callable

from triplica.common.redirects import NotLeaderError
from triplica.common.replica_ids import node_of
from triplica.engine.catalogue import METADATA_GROUP, PartitionInfo, TableInfo
from triplica.engine.database import Database
from triplica.engine.group_split import REPLICA_DIRECTORY, build_child
from triplica.engine.split_protocol import SplitMarker
from triplica.engine.node_config import NodeConfig
from triplica.engine.node_partition import NodePartition, UnhostedPartition
from triplica.engine.local_indexes import local_indexer_of
from triplica.engine.log_entries import stored_item_size
from triplica.engine.replica_homes import GROUP_FILE, home_of, read_homes, remove_home
from triplica.engine.replica_repair import REPAIR_BOUND_CALL_S, RepairBound
from triplica.engine.split_advisor import SplitAdvisor
from triplica.node.calls import CALL_REQUEST, ControlHandler, NodeCalls
from triplica.node.index_propagation import ASK_S as INDEX_ASK_S
from triplica.node.index_propagation import IndexPropagator, IndexRequests
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
        # (group key, replica id) -> an open replica on this node: one per group, two
        # while a replica replaces a stopped one here (replica_homes.py)
        self.replicas: dict[tuple[str, int], NodePartition] = {}
        self.metadata: Any = None  # metadata/role.py MetadataRole, set by the host
        # Peer requests of other roles (metadata/role.py): None if not theirs.
        self.more_requests: Callable[[dict], Awaitable[Message | None]] | None = None
        self._retiring: set[asyncio.Task] = set()  # replicas closing, then deleted
        self.db = Database(config.data_dir, self.open_partition)
        self.db.prepare_child = self.prepare_child
        limits = config.splits
        self.advisor = SplitAdvisor(self.db, limits.size_bytes, limits.window_s)
        self.calls = NodeCalls(self.db)
        self._advising: asyncio.Task | None = None
        self.index_requests = IndexRequests(self.replica_for)
        self.propagator = IndexPropagator(
            self.db, lambda: [r for r in self.replicas.values() if not r.closed],
            self._request)
        self._propagating: asyncio.Task | None = None
        network.serve_requests(self.answer)

    @property
    def node_id(self) -> int:
        return self.config.node_id

    def start(self) -> None:
        """Start the node's own background work (split reports, abandoned spares)."""
        assert self._advising is None
        loop = asyncio.get_running_loop()
        self._advising = loop.create_task(advise_splits(self.advisor, self))
        self._propagating = loop.create_task(self.propagator.run())

    async def _request(self, node: int, body: dict) -> Any:
        """A peer's answer to a request (this node's own, asked directly)."""
        if node == self.config.node_id:
            return await asyncio.wait_for(self.answer(body), INDEX_ASK_S)
        return await self.network.request(node, body, INDEX_ASK_S)

    def set_control(self, control: ControlHandler) -> None:
        """Where table operations go (the metadata role of this process)."""
        self.calls.control = control

    def handle_call(self, operation: str, parameters: dict[str, Any], region: str,
                    host: str) -> Any:
        """A router's call (node/calls.py)."""
        return self.calls.handle(operation, parameters, region, host)

    async def close(self) -> None:
        for task in (self._advising, self._propagating):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._advising = self._propagating = None
        await self.propagator.close()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await self.db.close()

    # ------------------------------------------------------------- replicas

    def add_replica(self, replica: NodePartition) -> None:
        # Closed replicas (deleted tables, dropped ones) are forgotten here: bounds the dict.
        self.replicas = {key: r for key, r in self.replicas.items() if not r.closed}
        self.replicas[(replica.group_key, replica.replica_id)] = replica

    def forget_replica(self, group_key: str, replica_id: int) -> None:
        self.replicas.pop((group_key, replica_id), None)

    def _open_replica(self, group_key: str, replica_id: int) -> NodePartition | None:
        replica = self.replicas.get((group_key, replica_id))
        return replica if replica is not None and not replica.closed else None

    def replica_for(self, group_key: str) -> NodePartition | None:
        """This node's open replica of a group; of two (one replacing the other), the one
        that leads, else a running one, else the older."""
        found = sorted((r for (group, _), r in self.replicas.items()
                        if group == group_key and not r.closed),
                       key=lambda r: (not r.running, r.replica_id))
        for replica in found:
            if replica.leader_hint() == replica.replica_id:
                return replica
        return found[0] if found else None

    def _mine(self, members: list[int]) -> int | None:
        """This node's replica id among a group's members, if any."""
        mine = [m for m in members if node_of(m) == self.config.node_id]
        assert len(mine) <= 1, (members, self.config.node_id)
        return mine[0] if mine else None

    def open_partition(self, info: TableInfo, partition: PartitionInfo,
                       directory: str) -> NodePartition | UnhostedPartition:
        """This node's object for a partition: its replica the catalogue names, else a
        joining one not yet recorded, else a stand-in that redirects. Every replica of
        the partition kept on this node is opened; those a recorded move removed go."""
        if partition.group is None or not partition.members:
            raise AssertionError(f"table {info.name}: a cluster partition without a group")
        group_key, catalogue_members = partition.group, list(partition.members)
        mine = self._mine(catalogue_members)
        homes = read_homes(directory, self.config.node_id)
        fresh = False
        if mine is not None and mine not in homes:
            # Placed by the metadata system (metadata/planning.py) or a split child
            # (engine/group_split.py): a new group if built from this node's parent
            # replica (possibly now, after a restart), else a replica to heal from the
            # child's other members.
            home = home_of(directory, mine)
            fresh = True
            if partition.split_from is not None:
                if not os.path.isdir(os.path.join(home, REPLICA_DIRECTORY)):
                    self._build_child_now(partition, directory, mine)
                fresh = os.path.isdir(os.path.join(home, REPLICA_DIRECTORY))
            os.makedirs(home, exist_ok=True)
            homes[mine] = {"group": group_key, "members": catalogue_members, "replica": mine}
            write_json_durably(os.path.join(home, GROUP_FILE), homes[mine])
        serving: NodePartition | None = None
        for replica_id, document in sorted(homes.items()):
            joining = bool(document.get("joining"))
            if replica_id != mine and not joining:
                self._retire(group_key, replica_id, directory)  # moved away, the move recorded
                continue
            if joining and replica_id == mine:
                # The move that added it is recorded: from now on an ordinary member
                # (which a later move may remove like any other).
                document = {k: v for k, v in document.items() if k != "joining"}
                write_json_durably(os.path.join(home_of(directory, replica_id), GROUP_FILE),
                                   document)
            replica = self._open_replica(group_key, replica_id)
            if replica is None:  # else joined by the control plane (replica_mover.py)
                replica = self._new_replica(info, home_of(directory, replica_id), replica_id,
                                            group_key, list(document["members"]),
                                            fresh=fresh and replica_id == mine,
                                            joining=joining)
            if replica_id == mine or serving is None:
                serving = replica
        partition.group, partition.members = group_key, catalogue_members
        return serving if serving is not None else UnhostedPartition(catalogue_members)

    def _new_replica(self, info: TableInfo, home: str, replica_id: int, group_key: str,
                     members: list[int],
                     fresh: bool = False, joining: bool = False) -> NodePartition:
        replica = NodePartition(home, replica_id=replica_id, group_key=group_key,
                                members=members, network=self.network, sync_mode=self.config.sync,
                                fresh=fresh, options=self.config.options,
                                ask_bound=lambda peer: self.ask_bound(peer, group_key),
                                repair_wait_s=self.config.repair_wait_s, joining=joining,
                                indexer=local_indexer_of(info))
        self.add_replica(replica)
        return replica

    def _retire(self, group_key: str, replica_id: int, directory: str) -> None:
        """Close a replica a recorded move removed and delete its files (after it closed,
        in a task when it is open: the partition factory cannot wait)."""
        replica = self.replicas.pop((group_key, replica_id), None)
        if replica is None:
            remove_home(directory, replica_id)
            return

        async def retire() -> None:
            await replica.aclose()
            remove_home(directory, replica_id)
        task = asyncio.get_running_loop().create_task(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    # ----------------------------------------------------------------- splits

    def _build_child_now(self, child: PartitionInfo, directory: str, mine: int) -> bool:
        """Build a split child from the parent's directory (its replica is not open:
        a restart after the switch was saved). False when there is nothing to build from.
        The child's members are the parent's: this node's replica id is the same in both."""
        parent_directory = os.path.join(os.path.dirname(directory), str(child.split_from))
        parent_home = home_of(parent_directory, mine)
        items = os.path.join(parent_home, REPLICA_DIRECTORY, "items")
        group_file = os.path.join(parent_home, GROUP_FILE)
        if not os.path.isdir(items) or not os.path.exists(group_file):
            return False
        os.makedirs(directory, exist_ok=True)
        home = home_of(directory, mine)
        parent = self._open_replica(read_json(group_file)["group"], mine)
        if parent is not None:
            if parent.driver is None:
                return False
            return build_child(parent.driver.store, home, child.hash_start, child.hash_end,
                               list(child.members or ()), self.config.sync)
        with PartitionStore(items, value_size=stored_item_size) as store:
            return build_child(store, home, child.hash_start, child.hash_end,
                               list(child.members or ()), self.config.sync)

    async def prepare_child(self, parent: Any, child: PartitionInfo, directory: str) -> None:
        """Before a split's switch is saved (Database.apply_split): wait (bounded) for this
        node's parent replica to apply the split, then build the child from it off the
        event loop. Without the marker the child opens as a replica to heal."""
        if not isinstance(parent, NodePartition):
            return
        home = home_of(directory, parent.replica_id)
        if os.path.isdir(home):
            return
        marker = await parent.wait_moved(SPLIT_APPLY_WAIT_S)
        if marker is None or parent.driver is None:
            log.warning("group %s: split not applied here in %.0f s; child %s will heal",
                        parent.group_key, SPLIT_APPLY_WAIT_S, child.group)
            return
        store = parent.driver.store
        os.makedirs(directory, exist_ok=True)
        await asyncio.get_running_loop().run_in_executor(
            None, build_child, store, home, child.hash_start, child.hash_end,
            list(child.members or ()), self.config.sync)

    async def split_group(self, request: dict) -> Message:
        """The control plane asks this node (the parent's leader, it hopes) to split a group."""
        group_key = str(request["split_group"])
        replica = self.replica_for(group_key)
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

    def host_replica(self, table: str, group_key: str, members: list[int],
                     replica_id: int) -> None:
        """Open a replica of an existing group that the control plane is adding here
        (metadata/replica_mover.py): empty, with no configuration, it catches up from the
        leader once proposed. Recorded in its group file as joining, so a restart reopens
        it."""
        assert node_of(replica_id) == self.config.node_id, replica_id
        if self._open_replica(group_key, replica_id) is not None:
            return
        info, partition = self._partition_of(table, group_key)
        directory = self.db.partition_dir(info, partition)
        remove_home(directory, replica_id)  # a former replica's leftovers
        home = home_of(directory, replica_id)
        os.makedirs(home, exist_ok=True)
        peers = sorted(set(members) | {replica_id})
        write_json_durably(os.path.join(home, GROUP_FILE),
                           {"group": group_key, "members": peers, "replica": replica_id,
                            "joining": True})
        self._new_replica(info, home, replica_id, group_key, peers, joining=True)

    async def drop_replica(self, table: str, group_key: str, replica_id: int) -> bool:
        """Close and delete this node's replica of a group it no longer belongs to."""
        info, partition = self._partition_of(table, group_key)
        if replica_id in (partition.members or ()):
            return False  # the catalogue still routes to it
        replica = self.replicas.pop((group_key, replica_id), None)
        if replica is not None:
            await replica.aclose()
        remove_home(self.db.partition_dir(info, partition), replica_id)
        return True

    async def drop_abandoned(self) -> int:
        """Drop joined replicas that no move will use: their group's configuration, as
        they learned it, leaves them out, or they learned none in ABANDONED_AFTER_S (the
        metadata leader that added them lost its leadership and its plan). Returns how
        many went."""
        dropped = 0
        for name, table in list(self.db.tables.items()):
            for info, partition in zip(list(table.info.partitions), list(table.partitions)):
                for (group, replica_id), replica in list(self.replicas.items()):
                    if group != info.group or replica is partition or replica.closed:
                        continue  # not a joined spare (the Database serves it)
                    path = os.path.join(home_of(self.db.partition_dir(table.info, info),
                                                replica_id), GROUP_FILE)
                    config = replica.committed_members()
                    age_s = time.time() - os.path.getmtime(path) if os.path.exists(path) else 0.0
                    left_out = config is not None and replica_id not in config[0]
                    if left_out or (config is None and age_s > ABANDONED_AFTER_S):
                        if await self.drop_replica(name, group, replica_id):
                            dropped += 1
                            log.warning("dropped an abandoned replica %s of group %s",
                                        replica_id, group)
        return dropped

    def down_replicas(self) -> list[tuple[str, int]]:
        """(group key, replica id) of this node's replicas that are open but not running:
        stopped by a disk failure or a bug, or damaged and not rebuilt (the mover replaces
        them)."""
        return sorted(key for key, replica in self.replicas.items()
                      if not replica.closed and not replica.healing and not replica.running)

    def _replica_asked(self, request: dict, key: str) -> NodePartition | None:
        """The replica a request names (`replica`: its id), else the group's best here."""
        group_key = str(request[key])
        if "replica" in request:
            return self._open_replica(group_key, int(request["replica"]))
        return self.replica_for(group_key)

    async def answer_moves(self, request: dict) -> Message | None:
        """The control plane's requests about moving replicas (None: not one of them)."""
        if "ping" in request:
            return {"ok": True, "down": self.down_replicas()}
        if "replica_config" in request:
            replica = self._replica_asked(request, "replica_config")
            config = None if replica is None else replica.committed_members()
            return {"config": None if config is None else list(config)}
        if "group_status" in request:
            replica = self.replica_for(str(request["group_status"]))
            status = None if replica is None else replica.status()
            if status is None:
                return {"not_leader": None if replica is None else replica.leader_hint()}
            return status
        if "host_replica" in request:
            members = [int(m) for m in request["members"]]
            replica_id = int(request.get("replica", self.config.node_id))
            if request["host_replica"] == METADATA_GROUP:
                self.metadata.join(members)
            else:
                self.host_replica(str(request["table"]), str(request["host_replica"]), members,
                                  replica_id)
            return {"ok": True}
        if "drop_replica" in request:
            if request["drop_replica"] == METADATA_GROUP:
                return {"ok": await self.metadata.leave_if_removed(retired=True)}  # type: ignore
            replica_id = int(request.get("replica", self.config.node_id))
            return {"ok": await self.drop_replica(str(request["table"]),
                                                  str(request["drop_replica"]), replica_id)}
        if "propose_members" in request:
            replica = self.replica_for(str(request["propose_members"]))
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
        indexes = await self.index_requests.answer(request)
        if indexes is not None:
            return indexes
        if "split_group" in request:
            return await self.split_group(request)
        if "split_applied" in request:  # the control plane waits for every live member
            replica = self.replica_for(str(request["split_applied"]))
            marker = None if replica is None else await replica.wait_moved(SPLIT_APPLY_WAIT_S)
            return {"applied": marker is not None}
        if "stop_replica" in request:  # fault injection (metadata/role.py)
            replica = self.replica_for(str(request["stop_replica"]))
            if replica is None or not replica.running:
                return {"stopped": None}
            replica.fail("stopped by a Triplica.StopReplica request (fault injection)")
            return {"stopped": replica.replica_id}
        if "split_reports" in request:
            advisor = self.advisor
            return {"reports": [] if advisor is None else [r.to_wire() for r in advisor.reports]}
        if self.more_requests is not None and REPAIR_BOUND_REQUEST not in request:
            answer = await self.more_requests(request)
            if answer is not None:
                return answer
        group_key = request.get(REPAIR_BOUND_REQUEST)
        if not isinstance(group_key, str) or len(set(request) - {"replica"}) != 1:
            raise ValueError(f"unknown request {request!r:.200}")
        replica = self._replica_asked(request, REPAIR_BOUND_REQUEST)
        bound = "it hosts no open replica of the group" if replica is None else replica.repair_bound()
        if isinstance(bound, RepairBound):
            return bound.to_wire()
        return {"unavailable": bound}

    async def ask_bound(self, peer: int, group_key: str) -> RepairBound | str:
        """Replica `peer`'s repair bound for a group, or why there is none (never raises)."""
        try:
            answer = await self.network.request(node_of(peer), {REPAIR_BOUND_REQUEST: group_key,
                                                                "replica": peer},
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
