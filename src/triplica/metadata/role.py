"""A storage node's part in the metadata system (the I/O around metadata/).

Every process that hosts a storage node hosts its metadata role too
(hosting/): `triplica node` one, `triplica serve` one per node it runs.

Every node follows the catalogue (metadata/catalogue_follower.py); the
metadata group's members (the placement rule's three at first, then as the
last `set_metadata_members` record says: replica_mover.py moves them off
dead and drained nodes) also host a replica of the metadata group, and the one whose replica leads runs the control
plane (metadata/control_plane.py). Table operations reach it through the
node's calls (node/calls.py `control` is `handle_control` here); any other
node raises NotLeaderError with its best guess of the leader, as for a
partition, and the router follows.

Peer requests this role answers (over the node's peer address, next to the
requests of node/storage_node.py):
- `{"catalogue_after": E}` -> `{"changes": [[epoch, change], ...]}` from
  this node's metadata replica (members only; a consistent prefix of the
  log, possibly behind the leader's);
- `{"catalogue_poke": E}` -> `{"epoch": applied}`: the control plane
  committed epoch E; the node applies up to it at once (bounded by
  PUBLISH_WAIT_S) instead of at its next poll, and says where it is;
- `{"group_serving": key}` -> `{"serving": bool}`: does this node's replica
  of the group lead with a valid lease (the control plane's "has a leader");
- `{"map_changes_after": E}` -> `{"changes": [map change, ...]}`: the same
  records as routing-map changes (metadata/catalogue_log.py
  `map_change_of`), the feed MemDS servers poll.
The control plane also asks nodes (answered in node/storage_node.py)
`{"split_reports": 1}` -> `{"reports": [GroupReport, ...]}` (merged into
split decisions here, metadata/split_reports.py) and `{"split_group": key, "boundary", "left", "right"}` ->
`{"index": A}` once the split entry is applied there, `{"proposed": true}`
(it leads and its split entry is still in flight: ask it again) or
`{"not_leader": hint}` (whom to ask next: engine/split_protocol.py), then `{"split_applied": key}` -> `{"applied": bool}` of the other
members (each waits a bounded time for its replica to apply it).

Every LEADER_REPORT_S the node also tells each MemDS server which groups it
leads (`{"leader": [group, node, term]}`), once per leadership, so MemDS
answers carry leader hints.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
from typing import Any

from triplica.common.replica_ids import node_of
from triplica.common.internal import DRAIN_TARGET, STOP_REPLICA_TARGET
from triplica.common.redirects import NotLeaderError
from triplica.engine.catalogue import METADATA_GROUP, PartitionInfo
from triplica.engine.database import Database
from triplica.engine.group_report import GroupReport
from triplica.engine.leader_asks import ask_leader
from triplica.engine.split_protocol import (ACTION_ASK, ANSWER_APPLIED, ANSWER_NONE,
                                            ANSWER_NOT_LEADER, ANSWER_PROPOSED, SplitAnswer,
                                            SplitProgress)
from triplica.engine.node_config import NodeConfig
from triplica.errors import ResourceNotFoundException, ValidationException
from triplica.metadata.catalogue_follower import CatalogueFollower
from triplica.metadata.catalogue_log import Change, map_changes_of
from triplica.metadata.control_plane import CONTROL_OPERATIONS, ControlPlane
from triplica.metadata.metadata_replica import MetadataReplica, read_marker
from triplica.metadata.placement import placement
from triplica.metadata.replica_mover import ReplicaMover
from triplica.metadata.split_reports import Limits, SplitSuggestion, decide_splits
from triplica.transport.base import Client, Message, RemoteError, TransportError

log = logging.getLogger(__name__)

PEER_CALL_S = 1.0
MEMBER_POLL_S = 0.1     # a member reads its own replica: cheap
PUBLISH_WAIT_S = 3.0  # a loaded node may need a while; a dead one fails at once
LEADER_REPORT_S = 0.5
LEADER_REPORTS_PER_TICK_MAX = 256
TERM_NODE_SLOTS = 128  # > any node id (cluster/local.py NODES_MAX = 99)
CATCH_UP_POLL_S = 0.005
SPLIT_ASK_S = 10.0
SPLIT_RETRY_S = 0.05
SPLIT_APPLIED_WAIT_S = 3.0
MEMBERSHIP_CHECK_S = 0.5
REMOTE_CHECK_S = 1.0
ABANDONED_AFTER_S = 600.0  # a joined replica that learned no configuration in this long


class MetadataRole:
    def __init__(self, config: NodeConfig, network: Any, db: Database, node: Any,
                 memds: list[Client]) -> None:
        """`node`: the storage node hosting this role (node/storage_node.py: its
        replicas, repair bounds, split reports); `memds`: a client per MemDS server."""
        self.config = config
        self.network = network
        self.db = db
        self.node = node
        self._placed = placement(config.nodes, METADATA_GROUP, config.replicas)
        self.others = [n.id for n in config.nodes if n.id != config.node_id]
        self.replica: MetadataReplica | None = None
        self.control: ControlPlane | None = None
        self._control_tasks: list[asyncio.Task] = []
        self._leader_hints: dict[str, int] = {}  # group -> node that led it last
        self._started = False
        self._remote_checked = 0.0
        self.follower = CatalogueFollower(db, self._fetch, MEMBER_POLL_S)
        if config.node_id in self.members or read_marker(config.data_dir).get("joining"):
            self._open_replica(joining=False)
        self._reporter: asyncio.Task | None = None
        self._membership: asyncio.Task | None = None
        self._memds = list(memds)

    @property
    def members(self) -> list[int]:
        """The metadata group's members: as last moved (a catalogue record), else placed."""
        return list(self.db.catalogue.metadata_members or self._placed)

    def _open_replica(self, joining: bool, members: list[int] | None = None) -> None:
        """Host a replica of the metadata group (and so, when it leads, the control plane)."""
        config = self.config
        self.replica = MetadataReplica(
            config.data_dir, node_id=config.node_id, members=members or self.members,
            network=self.network, sync_mode=config.sync,
            ask_bound=lambda peer: self.node.ask_bound(peer, METADATA_GROUP),
            repair_wait_s=config.repair_wait_s, joining=joining, options=config.options)
        self.node.add_replica(self.replica.partition)
        self.control = ControlPlane(self.db, self.replica, self.follower,
                                    self._place,
                                    self._group_serving, self._publish,
                                    ask_split=self._ask_split, suggestions=self._suggestions,
                                    ask_group=self._ask_group)
        self.control.mover = ReplicaMover(self.db, {n.id: n.az for n in config.nodes}, self._ask,
                                          self.control.record_members,
                                          config.replace_after_s,
                                          metadata_members=lambda: self.members)
        if self._started:
            self._start_control()

    def _place(self, group: str) -> list[int]:
        """Members of a new table's group: the placement rule over the nodes that are
        neither draining nor silent (replica_mover.py), while they span three AZs."""
        down = self.control.mover.down_nodes() if self.control is not None else set()
        usable = tuple(n for n in self.config.nodes
                       if n.id not in down and n.id not in self.db.catalogue.draining)
        if len({n.az for n in usable}) < self.config.replicas:
            usable = self.config.nodes  # too few AZs left: place as if all were well
        return placement(usable, group, self.config.replicas)

    def _start_control(self) -> None:
        assert self.control is not None and not self._control_tasks
        loop = asyncio.get_running_loop()
        self._control_tasks = [loop.create_task(self.control.run_reconciler()),
                               loop.create_task(self.control.run_splitter()),
                               loop.create_task(self.control.run_mover())]

    async def _close_replica(self) -> None:
        tasks, self._control_tasks = self._control_tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.control is not None and self.control.mover is not None:
            await self.control.mover.close()
        replica, self.replica, self.control = self.replica, None, None
        if replica is not None:
            self.node.forget_replica(METADATA_GROUP, replica.partition.replica_id)
            await replica.aclose()

    def join(self, members: list[int]) -> None:
        """A move adds this node to the metadata group (replica_mover.py `host_replica`)."""
        if self.replica is None:
            self._open_replica(joining=True,
                               members=sorted(set(members) | {self.config.node_id}))

    async def leave_if_removed(self, retired: bool = False) -> bool:
        """A move took this node out of the metadata group: close and delete its replica.
        False while the catalogue still lists it, or (unless the mover `retired` it) while
        it is a joined replica waiting for its move to be recorded."""
        if self.replica is None:
            return True
        if self.config.node_id in self.members or (self.replica.joining and not retired):
            return False
        directory = self.replica.directory
        await self._close_replica()
        shutil.rmtree(directory, ignore_errors=True)
        log.warning("node %s left the metadata group", self.config.node_id)
        return True

    async def _follow_membership(self) -> None:
        """Every MEMBERSHIP_CHECK_S: a recorded move makes a joined replica an ordinary
        member, or takes a removed one away."""
        while True:
            await asyncio.sleep(MEMBERSHIP_CHECK_S)
            replica = self.replica
            if replica is None:
                continue
            if replica.joining and self.config.node_id in self.members:
                replica.joined()
            elif not replica.joining and self.config.node_id not in self.members:
                await self.leave_if_removed()
            elif replica.joining and replica.abandoned(ABANDONED_AFTER_S):
                log.warning("dropping an abandoned metadata replica")
                await self.leave_if_removed(retired=True)

    def start(self) -> None:
        self._started = True
        self.follower.start()
        loop = asyncio.get_running_loop()
        if self.control is not None:
            self._start_control()
        self._membership = loop.create_task(self._follow_membership())
        if self._memds:
            self._reporter = loop.create_task(self._report_leaders())

    async def _report_leaders(self) -> None:
        """Tell MemDS which groups this node leads (its answers carry leader hints).
        Each leadership is reported once, by its ballot (term = round, then node id)."""
        reported: dict[str, int] = {}
        while True:
            await asyncio.sleep(LEADER_REPORT_S)
            reports = []
            for (group, _), replica in list(self.node.replicas.items()):
                driver = replica.driver
                if replica.closed or driver is None or not driver.is_leader:
                    continue
                ballot = driver.replica.ballot
                term = ballot.round * TERM_NODE_SLOTS + ballot.node
                if reported.get(group) != term and len(reports) < LEADER_REPORTS_PER_TICK_MAX:
                    reports.append((group, term))
            for group, term in reports:
                body = {"leader": [group, self.config.node_id, term]}
                results = await asyncio.gather(*(c.call(body, PEER_CALL_S) for c in self._memds),
                                               return_exceptions=True)
                if not all(isinstance(r, BaseException) for r in results):
                    reported[group] = term
            live = {group for group, _ in self.node.replicas}
            for group in [g for g in reported if g not in live]:
                del reported[group]

    def leader_hint(self) -> int:
        """Where a table operation should go, as far as this node knows."""
        hint = self.replica.leader_hint() if self.replica is not None else None
        return hint if hint is not None else self.members[0]

    # -------------------------------------------------------------- catalogue

    async def _fetch(self, after: int) -> list[tuple[int, Change]]:
        """Records after `after`: from this node's own replica when it is a full member,
        and (when it has nothing new, at most every REMOTE_CHECK_S) from the other members,
        the longest answer: a replica that a move removed while its node was down does
        not know it, and only the others can tell it (by the record that moved it)."""
        replica = self.replica
        if replica is not None and not replica.joining and replica.serves_log():
            changes = replica.changes_after(after)
            now = asyncio.get_running_loop().time()
            if changes or now - self._remote_checked < REMOTE_CHECK_S:
                return changes
            self._remote_checked = now
            try:
                return await self._fetch_remote(after)
            except ConnectionError:
                return changes
        return await self._fetch_remote(after)

    async def _fetch_remote(self, after: int) -> list[tuple[int, Change]]:
        members = [m for m in self.members if m != self.config.node_id]
        answers = await asyncio.gather(
            *(self.network.request(m, {"catalogue_after": after}, PEER_CALL_S) for m in members),
            return_exceptions=True)
        found = [a for a in answers if isinstance(a, dict) and isinstance(a.get("changes"), list)]
        if not found:
            raise ConnectionError(f"no metadata member answered: {answers!r:.300}")
        best = max(found, key=lambda a: len(a["changes"]))
        return [(int(epoch), change) for epoch, change in best["changes"]]

    async def _publish(self, epoch: int) -> None:
        """Every other node applies `epoch`, and every MemDS server has its map change,
        before the control plane answers (bounded: a node or MemDS server down or slow
        catches up later by polling)."""
        changes = self.replica.changes_after(epoch - 1, 1) if self.replica is not None else []
        pushes = map_changes_of([(e, change) for e, change in changes if e == epoch])
        await asyncio.gather(*(self._poke_one(peer, epoch) for peer in self.others),
                             *(self._push_one(client, pushes) for client in self._memds))

    async def _push_one(self, client: Client, changes: list[dict]) -> None:
        if not changes:
            return
        try:
            await client.call({"map_changes": changes}, PUBLISH_WAIT_S)
        except (TransportError, RemoteError):
            pass  # it polls the nodes (memds/feed.py)

    async def _poke_one(self, peer: int, epoch: int) -> None:
        try:
            await self.network.request(peer, {"catalogue_poke": epoch}, PUBLISH_WAIT_S)
        except (TransportError, RemoteError):
            pass  # down or starting: it fetches when it runs

    async def _catch_up_to(self, epoch: int) -> int:
        """Apply up to `epoch` (bounded): this node's source may lag the leader briefly."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PUBLISH_WAIT_S
        while self.follower.epoch < epoch and loop.time() < deadline:
            await self.follower.catch_up(epoch)
            if self.follower.epoch < epoch:
                await asyncio.sleep(CATCH_UP_POLL_S)
        return self.follower.epoch

    async def _group_serving(self, group: str, members: list[int]) -> bool:
        for member in sorted({node_of(m) for m in members}):  # members are replica ids
            if member == self.config.node_id:
                if self._serving_here(group):
                    return True
                continue
            try:
                answer = await self.network.request(member, {"group_serving": group},
                                                    PEER_CALL_S)
            except (TransportError, RemoteError):
                continue
            if isinstance(answer, dict) and answer.get("serving") is True:
                return True
        return False

    async def _ask(self, node: int, request: dict, deadline_s: float = PEER_CALL_S) -> Any:
        """A node's answer to a control plane request, or None if it gave none in time."""
        try:
            if node == self.config.node_id:
                return await self.node.answer(request)
            return await self.network.request(node, request, deadline_s)
        except (TransportError, RemoteError, KeyError):
            return None

    async def _ask_group(self, partition: PartitionInfo, request: dict) -> Any:
        """A partition group leader's answer to an index request (index_lifecycle.py)."""
        return await ask_leader(self._ask, list(partition.members or ()), request,
                                self._leader_hints, partition.group)

    # ----------------------------------------------------------------- splits

    async def _ask_split(self, parent: PartitionInfo, progress: SplitProgress) -> bool:
        """Ask the parent group's leader to split it (whom to ask next after each answer is
        `progress.after_answer`; bounded by SPLIT_ASK_S); True once the split entry is
        applied there."""
        marker = progress.marker
        request = {"split_group": parent.group, "boundary": str(marker.boundary),
                   "left": marker.left_group, "right": marker.right_group}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SPLIT_ASK_S
        while progress.action == ACTION_ASK and loop.time() < deadline:
            target = node_of(progress.target)  # a member's or a hint's replica id
            try:
                if target == self.config.node_id:
                    answer = await self.node.split_group(request)
                else:
                    answer = await self.network.request(target, request, SPLIT_ASK_S / 2)
            except (TransportError, RemoteError) as error:
                log.info("split of %s: node %s: %s", parent.group, target, error)
                answer = None
            decision = progress.after_answer(_split_answer(answer))
            if decision.done:
                await self._wait_applied(parent, target)
                return True
            if decision.wait:
                await asyncio.sleep(SPLIT_RETRY_S)
        log.warning("split of group %s: no leader applied it in %.0f s", parent.group,
                    SPLIT_ASK_S)
        return False

    async def _wait_applied(self, parent: PartitionInfo, leader: int) -> None:
        """Give the parent's other members the moment they need to apply the split
        (a heartbeat): once the switch is published the leader closes the parent, and a
        member that never learned the split's commit would have to heal its children
        from its peers. A member down or slow heals; this only makes that rare."""
        async def ask(member: int) -> None:
            request = {"split_applied": parent.group}
            try:
                if member == self.config.node_id:
                    await self.node.answer(request)
                else:
                    await self.network.request(member, request, SPLIT_APPLIED_WAIT_S)
            except (TransportError, RemoteError):
                pass
        await asyncio.gather(*(ask(node) for node in {node_of(m) for m in parent.members or ()}
                               if node != leader))

    async def _suggestions(self) -> list[SplitSuggestion]:
        """The splits every reachable node's reports call for (metadata/split_reports.py)."""
        reports: list[GroupReport] = []
        if self.node.advisor is not None:
            reports.extend(self.node.advisor.reports)
        answers = await asyncio.gather(
            *(self.network.request(peer, {"split_reports": 1}, PEER_CALL_S)
              for peer in self.others), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, dict):
                reports.extend(GroupReport.from_wire(r) for r in answer.get("reports", ()))
        limits = self.config.splits
        return decide_splits(reports, Limits(limits.size_bytes, limits.read_units,
                                             limits.write_units, limits.for_traffic))

    def _serving_here(self, group: str) -> bool:
        replica = self.node.replica_for(group)
        return replica is not None and replica.serving()

    async def answer(self, request: dict) -> Message | None:
        """This role's peer requests (module docstring); None: not one of them."""
        if "catalogue_poke" in request:
            return {"epoch": await self._catch_up_to(int(request["catalogue_poke"]))}
        if "group_serving" in request:
            return {"serving": self._serving_here(str(request["group_serving"]))}
        if "catalogue_after" in request or "map_changes_after" in request:
            if self.replica is None or not self.replica.serves_log():
                raise ValueError("this node hosts no metadata replica of the group")
            after = int(request.get("catalogue_after", request.get("map_changes_after")))
            changes = self.replica.changes_after(after)
            if "catalogue_after" in request:
                return {"changes": [[epoch, change] for epoch, change in changes]}
            return {"changes": map_changes_of(changes)}
        return None

    async def handle_control(self, operation: str, parameters: dict[str, Any], region: str,
                             host: str) -> dict[str, Any]:
        """A table operation, or the operator's drain request (node/calls.py `control`):
        run by the control plane when this node's metadata replica leads, else
        NotLeaderError naming the leader as far as this node knows."""
        control = self.control
        if control is None:
            raise NotLeaderError(self.leader_hint())
        if operation == DRAIN_TARGET:
            return await self._drain(control, parameters)
        if operation == STOP_REPLICA_TARGET:
            return await self._stop_replicas(parameters)
        assert operation in CONTROL_OPERATIONS, operation
        return await control.handle(operation, parameters, region, host)

    async def _drain(self, control: ControlPlane, parameters: dict[str, Any]) -> dict[str, Any]:
        """`{"Node": id, "Drain": true|false}`: start or stop draining a node."""
        node, drain = parameters.get("Node"), parameters.get("Drain", True)
        if type(node) is not int or node not in {n.id for n in self.config.nodes} \
                or type(drain) is not bool:
            raise ValidationException(f"Node must be one of the cluster's node ids: {node!r:.50}")
        return {"Draining": await control.set_draining(node, drain)}

    async def _stop_replicas(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """`{"TableName": name, "Node": id}`: fault injection, node `id` stops its
        replicas of the table as a disk failure would; the replica ids it stopped."""
        node, name = parameters.get("Node"), parameters.get("TableName")
        if type(node) is not int or node not in {n.id for n in self.config.nodes}:
            raise ValidationException(f"Node must be one of the cluster's node ids: {node!r:.50}")
        table = self.db.tables.get(name) if type(name) is str else None
        if table is None:
            raise ResourceNotFoundException("Requested resource not found")
        stopped: list[int] = []
        for partition in table.info.partitions:
            answer = await self._ask(node, {"stop_replica": partition.group})
            if isinstance(answer, dict) and isinstance(answer.get("stopped"), int):
                stopped.append(answer["stopped"])
        return {"Stopped": stopped}

    async def close(self) -> None:
        for task in (self._membership, self._reporter):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self.follower.close()
        for client in self._memds:
            await client.close()
        await self._close_replica()


def _split_answer(answer: Any) -> SplitAnswer:
    """A node's answer to `split_group` (node/storage_node.py) for SplitProgress."""
    if not isinstance(answer, dict):
        return SplitAnswer(ANSWER_NONE)
    if "index" in answer:
        return SplitAnswer(ANSWER_APPLIED, index=int(answer["index"]))
    if answer.get("proposed"):
        return SplitAnswer(ANSWER_PROPOSED)
    hint = answer.get("not_leader")
    return SplitAnswer(ANSWER_NOT_LEADER, hint=hint if isinstance(hint, int) else None)
