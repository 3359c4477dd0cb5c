"""Global secondary index propagation on a storage node (docs/GLOBAL_INDEXES.md).

Three parts, all I/O around the pure engine/index_batches.py:

- `IndexRequests` answers peers' requests about index state on this node's
  replicas: `gsi_apply` (an index partition's leader applies a batch as
  one log entry), `gsi_adopt` / `gsi_drop` (a base partition's leader
  proposes the operation; the control plane asks), `gsi_status` (what a
  base partition keeps, what is still backfilling, how many deltas of each
  index wait in its outbox).
- engine/leader_asks.py `ask_leader` sends one of them to a group's leader.
- `IndexPropagator` runs on every node: for each base replica it leads
  whose table has global indexes, one round at a time: backfill chunks
  while the outbox is short, then the outbox's next run cut by destination,
  every batch delivered, then the trim entry. A round that cannot reach a
  destination stops there (nothing trimmed) and the next one starts over
  from the outbox; a new leader does the same.
"""
from __future__ import annotations

import asyncio
import bisect
import logging
import time
from typing import Any, Callable, Hashable

from triplica.common.redirects import NotLeaderError, PartitionMovedError
from triplica.engine.catalogue import PartitionInfo, TableInfo
from triplica.engine.database import Database
from triplica.engine.global_index_keys import index_table_name
from triplica.engine.index_definitions import DELETING
from triplica.engine.index_batches import (adopt_entry, backfill_entry, cursor_entry, cut,
                                           drop_entry, run_of, trim_entry)
from triplica.engine.leader_asks import (ADOPT_REQUEST, APPLY_REQUEST, ASK_S, DROP_REQUEST,
                                         REQUESTS, STATUS_REQUEST, Request, ask_leader)
from triplica.engine.log_entries import decode_entry, encode_entry
from triplica.engine.node_partition import NodePartition
from triplica.storage.index_outbox import OP_CURSOR, OpKey, sequence_index
from triplica.transport.base import Message

log = logging.getLogger(__name__)

PROPAGATE_IDLE_S = 0.02     # how often a node looks for work when there was none
RETRY_S = 0.2               # after a round that could not reach a destination
OUTBOX_READ_MAX = 4000
BACKFILL_CHUNK = 500        # items read by one backfill entry
BACKFILL_OUTBOX_MAX = 2000  # backfill waits while the outbox holds more than this
STATUS_COUNT_MAX = 100_000  # outbox records counted for a status answer
APPLY_WAIT_S = ASK_S - 1.0  # an index operation's commit, within the asker's deadline
ROUND_S = 30.0              # one propagation round, at most


class IndexRequests:
    """This node's answers to index requests (module docstring)."""

    def __init__(self, replica_for: Callable[[str], NodePartition | None]) -> None:
        self._replica_for = replica_for

    async def answer(self, request: dict) -> Message | None:
        """The answer, or None if the request is not an index request."""
        kind = next((k for k in REQUESTS if k in request), None)
        if kind is None:
            return None
        replica = self._replica_for(str(request[kind]))
        try:
            if replica is None:
                raise NotLeaderError(None)
            if kind == STATUS_REQUEST:
                return status_of(replica)
            if kind == APPLY_REQUEST:
                writes = decode_entry(request["entry"])
                assert writes and type(writes[0][0]) is OpKey and writes[0][0] == OP_CURSOR
            elif kind == ADOPT_REQUEST:
                writes = adopt_entry(dict(request["definition"]))
            else:
                writes = drop_entry(str(request["index"]))
            # Bounded: a leader that lost its quorum may accept and never commit.
            await asyncio.wait_for(replica.propose_internal(writes), APPLY_WAIT_S)
        except TimeoutError:
            return {"timeout": True}
        except NotLeaderError as error:
            return {"not_leader": error.leader_id}
        except PartitionMovedError:
            return {"moved": True}
        return {"ok": True}


def status_of(replica: NodePartition) -> dict[str, Any]:
    """A base partition leader's index state (raises NotLeaderError elsewhere)."""
    store = replica.leader_store()
    kept = [d["name"] for d in store.global_definitions()]
    ended = {name: store.backfilled_at(name) for name in kept}
    # Deltas still to deliver from before each index's backfill ended: once none are
    # left, the index holds everything up to there and the rest follows (writes that
    # keep coming never hold an index in CREATING).
    waiting: dict[str, int] = {}
    for seq, _, name, _, _ in store.outbox(STATUS_COUNT_MAX):
        end = ended.get(name)
        if end is None or sequence_index(seq) <= end:
            waiting[name] = waiting.get(name, 0) + 1
    return {"ok": True, "kept": kept, "backfilling": sorted(store.backfilling()),
            "waiting": waiting}


class Unroutable(Exception):
    """A delta whose destination this node's catalogue does not know yet."""


class IndexPropagator:
    """Delivers the outboxes of the base replicas this node leads (module docstring)."""

    def __init__(self, db: Database, replicas: Callable[[], list[NodePartition]],
                 request: Request) -> None:
        self._db = db
        self._replicas = replicas
        self._request = request
        self._hints: dict[str, int] = {}          # group -> node that led it last
        self._running: dict[str, asyncio.Task] = {}
        self._resting: dict[str, float] = {}      # group -> monotonic time to retry at
        self.delivered = 0                        # deltas, for tests and the operator

    async def run(self) -> None:
        while True:
            await asyncio.sleep(PROPAGATE_IDLE_S)
            try:
                self._start_rounds()
            except Exception:
                log.warning("index propagation failed", exc_info=True)

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start_rounds(self) -> None:
        now = time.monotonic()
        bases = self._base_groups()
        if not bases:
            return
        for replica in self._replicas():
            group = replica.group_key
            found = bases.get(group)
            if found is None or not replica.serving():
                continue
            try:  # counted every tick, not per round: a round may wait on a destination
                replica.index_backlog = replica.leader_store().outbox_size()
            except (NotLeaderError, PartitionMovedError):
                continue
            if group in self._running or self._resting.get(group, 0.0) > now:
                continue
            info, partition = found
            task = asyncio.get_running_loop().create_task(self._round(replica, info, partition))
            self._running[group] = task
            task.add_done_callback(lambda _, g=group: self._running.pop(g, None))

    def _base_groups(self) -> dict[str, tuple[TableInfo, PartitionInfo]]:
        """Group -> (table, partition) of the tables with global indexes (a deleted
        index's deltas still wait until its last one is dropped: the table then has
        none left and its replicas' outboxes are empty, the drop entry came first)."""
        return {str(partition.group): (table.info, partition)
                for table in self._db.tables.values() if table.info.global_indexes
                for partition in table.info.partitions}

    async def _round(self, replica: NodePartition, info: TableInfo,
                     partition: PartitionInfo) -> None:
        group = replica.group_key
        try:
            async with asyncio.timeout(ROUND_S):  # its own entries may wait on a lost quorum
                moved = await self._propagate(replica, info, partition)
        except (NotLeaderError, PartitionMovedError, TimeoutError):
            moved = False
        except Exception:
            log.warning("index propagation of group %s failed", group, exc_info=True)
            moved = False
        if not moved:
            self._resting[group] = time.monotonic() + RETRY_S

    async def _propagate(self, replica: NodePartition, info: TableInfo,
                         partition: PartitionInfo) -> bool:
        """One round; True if it delivered something or had nothing to deliver."""
        store = replica.leader_store()
        replica.index_backlog = backlog = store.outbox_size()
        if backlog <= BACKFILL_OUTBOX_MAX:
            for name in sorted(store.backfilling()):
                await replica.propose_internal(backfill_entry(name, BACKFILL_CHUNK))
        records = run_of(store.outbox(OUTBOX_READ_MAX))
        kept = {str(d["name"]) for d in store.global_definitions()}
        try:
            round_ = cut(records, lambda name, key: self._route(info, kept, name, key))
        except Unroutable as error:
            log.info("index propagation of group %s waits: %s", replica.group_key, error)
            return False
        if round_ is None:
            return True
        source = partition.partition_id
        # Every split ancestor, not only the parent: a grandparent's batch sent before two
        # splits may land at an index partition its child never sent to (the propagation
        # sweep's seed 65, tests/sim/test_index_sweep.py).
        ancestors = partition.lineage()
        answers = await asyncio.gather(*(
            self._deliver(batch.destination, encode_entry(cursor_entry(
                source, round_.high, ancestors, batch.writes)))
            for batch in round_.batches.values()))
        if not all(answers):
            return False
        await replica.propose_internal(trim_entry(round_.high))
        self.delivered += len(records) - round_.dropped
        return True

    def _route(self, info: TableInfo, kept: set[str], name: str,
               index_key: bytes) -> tuple[Hashable, str] | None:
        """The destination of a delta; None for an index no longer kept (its deltas go).
        The partition's own definitions decide what is kept, not this node's catalogue,
        which may be behind: an index the partition keeps but the catalogue does not
        show yet is waited for (Unroutable), never dropped."""
        index = info.index(name)
        if name not in kept or (index is not None and index.status == DELETING):
            return None
        table = self._db.tables.get(index_table_name(info.name, name))
        if table is None:
            raise Unroutable(f"index table of {info.name}/{name} not in this node's catalogue")
        partitions = table.info.partitions
        key_hash = int.from_bytes(index_key[:8], "big")
        position = bisect.bisect_right([p.hash_start for p in partitions], key_hash) - 1
        target = partitions[position]
        return (str(target.group), tuple(target.members or ())), table.info.name

    async def _deliver(self, destination: Hashable, entry: bytes) -> bool:
        group, members = destination  # type: ignore[misc]
        answer = await ask_leader(self._request, list(members),
                                  {APPLY_REQUEST: group, "entry": entry}, self._hints, group)
        return isinstance(answer, dict) and answer.get("ok") is True

