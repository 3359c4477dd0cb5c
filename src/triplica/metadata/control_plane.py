"""The control plane: table operations, run on the metadata group's leader.

Paper: the partition metadata system owns tables' partitions and their
placement. A CreateTable, UpdateTable, DeleteTable, TagResource or
UntagResource reaches (through the router, which follows redirects) the node
whose metadata replica leads. There, one operation at a time:

1. the node's catalogue is brought up to the metadata log's last epoch;
2. DynamoDB's own handler (api/ops_tables.py) runs against a
   PlanningDatabase (planning.py): same checks, same errors, same answer,
   and placement of a new table's partitions (three nodes in three AZs);
3. the changes it recorded are committed to the metadata log one by one
   (metadata_replica.py), applied to this node's catalogue, and published:
   every other node is asked to apply them before the answer (bounded; a
   node down applies them when it is back: catalogue_follower.py);
4. a new table is CREATING until every one of its groups has a leader that
   may serve (asked of the members); then a second record makes it ACTIVE.
   The answer waits for that, bounded by ACTIVATE_WAIT_S, so a client's
   next request finds the table (DynamoDB Local and moto behave the same).
   A table left CREATING (wait exceeded, leader lost, crash) is activated
   by `reconcile`, which the node runs every RECONCILE_S on the leader.

A NotLeaderError before anything was committed becomes the node's 421 and
the router retries at the new leader; after a commit the answer is given
regardless (the change is in the log and every node will apply it).
"""
from __future__ import annotations

import asyncio
import copy
import inspect
import logging
from typing import Any, Awaitable, Callable

from triplica.api.service import OPERATIONS, Service
from triplica.engine.database import Database
from triplica.engine.node_partition import NotLeaderError
from triplica.metadata.catalogue_follower import CatalogueFollower
from triplica.metadata.catalogue_log import put_table
from triplica.metadata.metadata_replica import MetadataReplica
from triplica.metadata.planning import Placement, PlanningDatabase

log = logging.getLogger(__name__)

CONTROL_OPERATIONS = frozenset({"CreateTable", "UpdateTable", "DeleteTable", "TagResource",
                                "UntagResource"})
ACTIVATE_WAIT_S = 8.0  # + two publishes stays within the router's CONTROL_DEADLINE_S
ACTIVATE_POLL_S = 0.02
RECONCILE_S = 1.0

# (group key, member node ids) -> does the group have a leader that may serve now?
GroupReady = Callable[[str, list[int]], Awaitable[bool]]


class ControlPlane:
    def __init__(self, db: Database, metadata: MetadataReplica, follower: CatalogueFollower,
                 placement: Placement, group_ready: GroupReady,
                 publish: Callable[[int], Awaitable[None]]) -> None:
        self.db = db
        self.metadata = metadata
        self.follower = follower
        self.placement = placement
        self.group_ready = group_ready
        self.publish = publish
        self._lock = asyncio.Lock()
        self.operations = 0

    async def handle(self, operation: str, parameters: dict[str, Any], region: str,
                     host: str) -> dict[str, Any]:
        assert operation in CONTROL_OPERATIONS, operation
        self.metadata.require_leader()
        async with self._lock:
            self.metadata.require_leader()
            await self.follower.catch_up(self.metadata.last_epoch())
            planning = PlanningDatabase(self.db, self.placement)
            service = Service(planning)  # type: ignore[arg-type]
            service.request_region, service.request_host = region, host
            result = OPERATIONS[operation](service, parameters)
            if inspect.isawaitable(result):
                result = await result
            changes = planning.changes()
            committed = 0
            try:
                for change in changes:
                    epoch = await self.metadata.append(change)
                    committed += 1
                    await self.follower.catch_up(epoch)
                    await self.publish(epoch)
            except NotLeaderError:
                if committed == 0:
                    raise
                log.warning("%s: leadership lost after %d of %d records", operation, committed,
                            len(changes))
                return result
            self.operations += 1
            for name in sorted(planning.created()):
                await self._activate(name, ACTIVATE_WAIT_S)
        return result

    async def _activate(self, name: str, wait_s: float) -> bool:
        """Make a CREATING table ACTIVE once its groups have leaders (bounded wait).
        Called with the lock held."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            table = self.db.tables.get(name)
            if table is None or table.info.status != "CREATING":
                return False
            ready = await asyncio.gather(*(self.group_ready(p.group, list(p.members or ()))
                                           for p in table.info.partitions))
            if all(ready):
                break
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(ACTIVATE_POLL_S)
        info = copy.deepcopy(table.info)
        info.status = "ACTIVE"
        try:
            epoch = await self.metadata.append(put_table(info))
        except NotLeaderError:
            return False
        await self.follower.catch_up(epoch)
        await self.publish(epoch)
        return True

    async def reconcile(self) -> None:
        """On the leader: activate tables a previous attempt left CREATING."""
        if not self.metadata.is_leader() or self._lock.locked():
            return
        async with self._lock:
            await self.follower.catch_up(self.metadata.last_epoch())
            for name in sorted(n for n, t in self.db.tables.items()
                               if t.info.status == "CREATING"):
                await self._activate(name, 0.0)

    async def run_reconciler(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_S)
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("control plane reconcile failed", exc_info=True)
