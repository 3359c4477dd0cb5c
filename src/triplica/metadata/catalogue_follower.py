"""Every storage node's copy of the catalogue follows the metadata log, in epoch order.

A node's Database catalogue (engine/catalogue.py) is the metadata log folded
up to `catalogue.epoch`. The follower fetches the records after that epoch
(from its own metadata replica when the node hosts one, else from a member
over the peer port) and applies each in order: a new table opens this
node's replicas of its partitions, a new definition replaces the old one
(with new partitions: a split's switch, whose children this node builds
from its replica of the parent, engine/group_split.py), a deletion closes
and removes the table's replicas. Each application saves
the catalogue with the record's epoch in the same atomic write, so a crash
between two records resumes at the next one; a node that was down when a
table was created or deleted catches up when it comes back.

It runs every POLL_S and whenever the control plane asks the node to apply
an epoch at once (metadata/role.py); a lock keeps records applied
one at a time.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from triplica.engine.catalogue import TableInfo
from triplica.engine.database import Database
from triplica.metadata.catalogue_log import Change

log = logging.getLogger(__name__)

POLL_S = 1.0
FETCH_FAILURE_BACKOFF_S = 0.2

# after_epoch -> [(epoch, change), ...] in order (possibly empty); raises on failure.
Fetch = Callable[[int], Awaitable[list[tuple[int, Change]]]]


class CatalogueFollower:
    def __init__(self, db: Database, fetch: Fetch, poll_s: float = POLL_S) -> None:
        assert poll_s > 0
        self.db = db
        self.fetch = fetch
        self.poll_s = poll_s
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self.applied_changes = 0

    @property
    def epoch(self) -> int:
        return self.db.catalogue.epoch

    def start(self) -> None:
        assert self._task is None
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a peer down, a record we could not apply
                log.warning("catalogue follower at epoch %d: %s", self.epoch, error)
                await asyncio.sleep(FETCH_FAILURE_BACKOFF_S)
            await asyncio.sleep(self.poll_s)

    async def catch_up(self, until_epoch: int | None = None) -> int:
        """Fetch and apply until nothing is left (or `until_epoch` is reached)."""
        async with self._lock:
            while until_epoch is None or self.epoch < until_epoch:
                changes = await self.fetch(self.epoch)
                if not changes:
                    break
                for epoch, change in changes:
                    if epoch <= self.epoch:
                        continue  # fetched twice: already applied
                    assert epoch == self.epoch + 1, f"gap in the metadata log: {self.epoch} -> {epoch}"
                    await self._apply(epoch, change)
            return self.epoch

    async def _apply(self, epoch: int, change: Change) -> None:
        db = self.db
        if change["op"] == "set_draining":
            db.set_draining(list(change["nodes"]), epoch)
        elif change["op"] == "set_metadata_members":
            db.set_metadata_members(list(change["nodes"]), epoch)
        elif change["op"] == "delete_table":
            if change["name"] in db.tables:
                await db.delete_table(change["name"], epoch)
            else:
                db.note_epoch(epoch)
        else:
            info = TableInfo.from_json(dict(change["info"]))
            current = db.tables.get(info.name)
            if current is None:
                db.adopt_table(info, epoch)
            elif current.info.table_id != info.table_id:
                # Deleted and created again while this node was away from both records?
                # Impossible: records apply one by one; a mismatch is a bug.
                raise AssertionError(f"table {info.name}: id {current.info.table_id} "
                                     f"!= {info.table_id} at epoch {epoch}")
            elif [p.partition_id for p in info.partitions] != \
                    [p.partition_id for p in current.info.partitions]:
                await db.apply_split(info, epoch)  # a split's switch (control_plane.py)
            elif [p.members for p in info.partitions] != \
                    [p.members for p in current.info.partitions]:
                await db.replace_members(info, epoch)  # a replica moved (replica_mover.py)
            else:
                db.replace_table_info(info, epoch)
        self.applied_changes += 1

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
