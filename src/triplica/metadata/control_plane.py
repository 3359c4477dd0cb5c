"""The control plane: table operations, run on the metadata group's leader.

Paper: the partition metadata system owns tables' partitions and their
placement. A CreateTable, UpdateTable, DeleteTable, TagResource or
UntagResource reaches (through the router, which follows redirects) the node
whose metadata replica leads. There, one operation at a time:

1. the node's catalogue is brought up to the metadata log's last epoch;
2. DynamoDB's own handler (engine/operations/tables.py) runs against a
   PlanningDatabase (planning.py): same checks, same errors, same answer,
   and placement of a new table's partitions (three nodes in three AZs);
3. the changes it recorded are committed to the metadata log one by one
   (metadata_replica.py), applied to this node's catalogue, and published:
   every other node is asked to apply them before the answer (bounded; a
   node down applies them when it is back: catalogue_follower.py);
4. a new table is CREATING until every one of its groups has a leader that
   may serve (asked of the members); then a second record makes it ACTIVE.
   The answer waits for that, until ANSWER_BY_S after the request arrived
   (the router gives up at 15 s, and committing the ACTIVE record and
   publishing it may take a few seconds more), so a client's next request
   usually finds the table ACTIVE (DynamoDB Local and moto behave the same).
   A table left CREATING (wait exceeded, leader lost, crash) is activated
   by `reconcile`, which the node runs every RECONCILE_S on the leader.

An operation that waits longer than ANSWER_BY_S for the one before it to
finish changes nothing and answers ServiceUnavailable (the SDKs retry it).
A NotLeaderError before anything was committed becomes the node's 421 and
the router retries at the new leader; after a commit the answer is given
regardless (the change is in the log and every node will apply it).

Splits (`split`, driven by `run_splitter` from what the nodes saw,
engine/split_advisor.py and metadata/split_reports.py), one at a time like every other operation:
1. an intent record: the table with `split_intent` = the two children (new
   partition ids and group keys, the parent's members, `split_from`);
2. the parent group's leader puts the split entry in the group's own log
   (engine/group_split.py; asked until it answers, each member in turn);
   from then on the parent serves nothing, the router retries;
3. the switch record: the children replace the parent. Every node builds its
   child replicas from its own parent replica and drops the parent; MemDS
   gets the new map; the router's next try finds the children.
A crash or lost leadership between 1 and 3 leaves the intent in the log;
`reconcile` (on whichever node leads next) finishes it: step 2 is
idempotent (a group already split the same way answers at once). Children
get group keys whose first campaigners differ, so their leaders start on
different nodes where the members allow.
"""
from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import uuid
from typing import Any, Awaitable, Callable

from triplica.engine.operations.service import OPERATIONS, Service
from triplica.engine.catalogue import LINEAGE_MAX, PartitionInfo, TableInfo
from triplica.engine.database import Database
from triplica.engine.split_protocol import (ACTION_ASK, ACTION_SWITCH, SplitMarker, SplitProgress,
                                            first_campaigner, split_refusal)
from triplica.common.redirects import NotLeaderError
from triplica.metadata.split_reports import SplitSuggestion
from triplica.metadata import index_lifecycle
from triplica.metadata.index_lifecycle import AskGroup
from triplica.engine.global_index_keys import is_index_table
from triplica.metadata.catalogue_follower import CatalogueFollower
from triplica.metadata.catalogue_log import put_table, set_draining, set_metadata_members
from triplica.metadata.metadata_replica import METADATA_GROUP, MetadataReplica
from triplica.metadata.planning import Placement, PlanningDatabase
from triplica.errors import InternalServerError, ServiceUnavailable

log = logging.getLogger(__name__)

CONTROL_OPERATIONS = frozenset({"CreateTable", "UpdateTable", "DeleteTable", "TagResource",
                                "UntagResource"})
ANSWER_BY_S = 7.0  # + one commit (metadata_replica.OUTCOME_WAIT_S at most) and publish
                   # stays within the router's CONTROL_DEADLINE_S
ACTIVATE_POLL_S = 0.02
RECONCILE_S = 1.0
SPLIT_CHECK_S = 1.0
MOVE_CHECK_S = 0.5
CHILD_KEY_TRIES = 16

# (group key, member node ids) -> does the group have a leader that may serve now?
GroupReady = Callable[[str, list[int]], Awaitable[bool]]
# (parent partition, its split at step 2) -> did the parent group's leader apply the split?
# (it takes the progress through `SplitProgress.after_answer`, metadata/role.py)
AskSplit = Callable[[PartitionInfo, SplitProgress], Awaitable[bool]]
# -> every reachable node's split suggestions
Suggestions = Callable[[], Awaitable[list[SplitSuggestion]]]


class ControlPlane:
    def __init__(self, db: Database, metadata: MetadataReplica, follower: CatalogueFollower,
                 placement: Placement, group_ready: GroupReady,
                 publish: Callable[[int], Awaitable[None]],
                 ask_split: AskSplit | None = None, suggestions: Suggestions | None = None,
                 ask_group: AskGroup | None = None) -> None:
        """`ask_group`: asks a partition's group leader about its global indexes
        (index_lifecycle.py); None where there is no node to ask (tables with global
        indexes then stay CREATING)."""
        self.db = db
        self.ask_group = ask_group
        self.ask_split = ask_split
        self.suggestions = suggestions
        self.splits: list[tuple[str, str, int]] = []  # (table, reason, boundary), done
        self.mover: Any = None  # metadata/replica_mover.py ReplicaMover, set by the node
        self.metadata = metadata
        self.follower = follower
        self.placement = placement
        self.group_ready = group_ready
        self.publish = publish
        self._lock = asyncio.Lock()
        self.operations = 0

    async def handle(self, operation: str, parameters: dict[str, Any], region: str,
                     host: str, restore: TableInfo | None = None) -> dict[str, Any]:
        """`restore`: a CreateTable that brings back a table of an earlier data
        directory keeps its identity (planning.py; hosting/migrate.py)."""
        assert operation in CONTROL_OPERATIONS, operation
        assert restore is None or operation == "CreateTable", operation
        self.metadata.require_leader()
        loop = asyncio.get_running_loop()
        answer_by = loop.time() + ANSWER_BY_S
        try:
            async with asyncio.timeout(ANSWER_BY_S):  # not wait_for: it may leak the lock
                await self._lock.acquire()
        except TimeoutError:
            raise ServiceUnavailable("Another table operation is in progress; "
                                     "nothing was changed, try again") from None
        try:
            self.metadata.require_leader()
            await self.follower.catch_up(self.metadata.last_epoch())
            planning = PlanningDatabase(self.db, self.placement, restore)
            service = Service(planning)  # type: ignore[arg-type]
            service.request_region, service.request_host = region, host
            result = OPERATIONS[operation](service, parameters)
            if inspect.isawaitable(result):
                result = await result
            changes = planning.changes()
            committed = 0
            try:
                for change in changes:
                    await self._commit(change)
                    committed += 1
            except NotLeaderError:
                if committed == 0:
                    raise
                log.warning("%s: leadership lost after %d of %d records", operation, committed,
                            len(changes))
                return result
            self.operations += 1
            # Index tables first: a table with global indexes is ACTIVE once they are.
            for name in sorted(planning.created(), key=lambda n: (not is_index_table(n), n)):
                await self._activate(name, max(0.0, answer_by - loop.time()))
            for name in sorted(planning.updated()):  # index changes start now (adoption);
                await self._indexes_step(name)       # the reconciler carries them on
        finally:
            self._lock.release()
        return result

    async def _activate(self, name: str, wait_s: float) -> bool:
        """Make a CREATING table ACTIVE once its groups have leaders and its global
        indexes are ACTIVE (bounded wait). Called with the lock held."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            table = self.db.tables.get(name)
            if table is None or table.info.status != "CREATING":
                return False
            ready = await asyncio.gather(*(self.group_ready(p.group, list(p.members or ()))
                                           for p in table.info.partitions))
            if all(ready) and await self._indexes_step(name):
                break
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(ACTIVATE_POLL_S)
        table = self.db.tables[name]
        info = copy.deepcopy(table.info)
        info.status = "ACTIVE"
        try:
            await self._commit(put_table(info))
        except (NotLeaderError, InternalServerError):
            return False  # `reconcile` activates it on whichever node leads
        return True

    async def _indexes_step(self, name: str) -> bool:
        """One lifecycle pass over a table's global indexes (index_lifecycle.py), its
        changes committed; True if all of them are ACTIVE. Lock held."""
        table = self.db.tables.get(name)
        if table is None:
            return False
        if not table.info.global_indexes:
            return True
        if self.ask_group is None:
            return False
        changes, active = await index_lifecycle.step(self.db, table.info, self.ask_group)
        for change in changes:
            await self._commit(change)
        return active

    async def _commit(self, change: dict[str, Any]) -> int:
        """Append one record, apply it here, publish it (see the module docstring)."""
        epoch = await self.metadata.append(change)
        await self.follower.catch_up(epoch)
        await self.publish(epoch)
        return epoch

    # ------------------------------------------------------------------ splits

    async def split(self, table_name: str, group: str, boundary: int, reason: str) -> bool:
        """Split one partition of a table at hash `boundary` (module docstring)."""
        if self.ask_split is None or not self.metadata.is_leader():
            return False
        async with self._lock:
            self.metadata.require_leader()
            await self.follower.catch_up(self.metadata.last_epoch())
            table = self.db.tables.get(table_name)
            if table is None:
                return False
            parent = next((p for p in table.info.partitions if p.group == group), None)
            # One change to a group at a time: a move finishes first.
            refusal = split_refusal(
                None if parent is None else (parent.hash_start, parent.hash_end), boundary,
                intent_pending=bool(table.info.split_intent),
                table_active=table.info.status == "ACTIVE",
                moving=self.mover is not None and self.mover.moving(group))
            if refusal is not None or parent is None:
                return False
            info = copy.deepcopy(table.info)
            info.split_intent = list(_children(parent, boundary))
            await self._commit(put_table(info))
            done = await self._finish_split(table_name)
            if done:
                self.splits.append((table_name, reason, boundary))
                log.warning("table %s: split group %s for %s at hash %#x", table_name, group,
                            reason, boundary)
            return done

    async def _finish_split(self, table_name: str) -> bool:
        """Steps 2 and 3 of a split whose intent is in the log (lock held); reconcile
        calls it too, so the steps are engine/split_protocol.py's `SplitProgress`."""
        assert self.ask_split is not None
        table = self.db.tables.get(table_name)
        if table is None or len(table.info.split_intent) != 2:
            return False
        left, right = table.info.split_intent
        position = next(i for i, p in enumerate(table.info.partitions)
                        if p.partition_id == left.split_from)
        parent = table.info.partitions[position]
        progress = SplitProgress(str(parent.group),
                                 SplitMarker(left.hash_end, str(left.group), str(right.group)),
                                 list(parent.members or ()))
        if progress.action == ACTION_ASK and not await self.ask_split(parent, progress):
            return False  # reconcile tries again
        assert progress.action == ACTION_SWITCH, progress.step
        info = copy.deepcopy(table.info)
        info.partitions[position:position + 1] = [copy.deepcopy(left), copy.deepcopy(right)]
        info.split_intent = []
        await self._commit(put_table(info))
        progress.switched()
        return True

    async def split_suggested(self) -> bool:
        """On the leader: carry out one of the nodes' split suggestions, if any."""
        if self.suggestions is None or not self.metadata.is_leader() or self._lock.locked():
            return False
        for suggestion in await self.suggestions():
            if await self.split(suggestion.table, suggestion.group, suggestion.boundary,
                                suggestion.reason):
                return True
        return False

    # ----------------------------------------------------------- moving replicas

    async def set_draining(self, node: int, drain: bool) -> list[int]:
        """Start (or stop) moving every replica off `node` (replica_mover.py)."""
        self.metadata.require_leader()
        async with self._lock:
            self.metadata.require_leader()
            await self.follower.catch_up(self.metadata.last_epoch())
            nodes = set(self.db.catalogue.draining)
            nodes = nodes | {node} if drain else nodes - {node}
            if sorted(nodes) != self.db.catalogue.draining:
                await self._commit(set_draining(sorted(nodes)))
            return list(self.db.catalogue.draining)

    async def record_members(self, table_name: str, group: str, members: list[int]) -> None:
        """A group's new members after a move (lock held by the caller); the metadata
        group's own under the empty table name."""
        if table_name == "" and group == METADATA_GROUP:
            await self._commit(set_metadata_members(members))
            return
        table = self.db.tables.get(table_name)
        if table is None:
            return
        info = copy.deepcopy(table.info)
        for partition in info.partitions:
            if partition.group == group:
                partition.members = list(members)
        await self._commit(put_table(info))

    async def move_step(self) -> bool:
        if self.mover is None or not self.metadata.is_leader() or self._lock.locked():
            return False
        async with self._lock:
            await self.follower.catch_up(self.metadata.last_epoch())
            return await self.mover.step()

    async def run_mover(self) -> None:
        await repeat(MOVE_CHECK_S, self.move_step, "replica move")

    async def run_splitter(self) -> None:
        await repeat(SPLIT_CHECK_S, self.split_suggested, "split")

    async def reconcile(self) -> None:
        """On the leader: activate tables a previous attempt left CREATING."""
        if not self.metadata.is_leader() or self._lock.locked():
            return
        async with self._lock:
            await self.follower.catch_up(self.metadata.last_epoch())
            for name in sorted((n for n, t in self.db.tables.items()
                                if t.info.status == "CREATING"),
                               key=lambda n: (not is_index_table(n), n)):
                await self._activate(name, 0.0)
            for name in sorted(n for n, t in self.db.tables.items()
                               if t.info.status == "ACTIVE" and
                               any(i.status != "ACTIVE" for i in t.info.global_indexes)):
                await self._indexes_step(name)
            if self.ask_split is not None:
                for name in sorted(n for n, t in self.db.tables.items() if t.info.split_intent):
                    await self._finish_split(name)

    async def run_reconciler(self) -> None:
        await repeat(RECONCILE_S, self.reconcile, "reconcile")


async def repeat(period_s: float, step: Callable[[], Awaitable[Any]], what: str) -> None:
    """Run `step` every `period_s` until cancelled; a failed step is logged and retried."""
    while True:
        await asyncio.sleep(period_s)
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("control plane %s failed", what, exc_info=True)


def _children(parent: PartitionInfo, boundary: int) -> tuple[PartitionInfo, PartitionInfo]:
    """The two children of `parent` cut at `boundary`: same members, new group keys
    whose first campaigners differ when the members allow (module docstring)."""
    members = list(parent.members or ())
    ancestors = ([parent.partition_id] + parent.lineage())[:LINEAGE_MAX]
    left_key = right_key = uuid.uuid4().hex
    for _ in range(CHILD_KEY_TRIES):
        right_key = uuid.uuid4().hex
        if len(members) < 2 or first_campaigner(left_key, members) != \
                first_campaigner(right_key, members):
            break
    return (PartitionInfo(uuid.uuid4().hex[:12], parent.hash_start, boundary, group=left_key,
                          members=list(members), split_from=parent.partition_id,
                          ancestors=list(ancestors)),
            PartitionInfo(uuid.uuid4().hex[:12], boundary, parent.hash_end, group=right_key,
                          members=list(members), split_from=parent.partition_id,
                          ancestors=list(ancestors)))
