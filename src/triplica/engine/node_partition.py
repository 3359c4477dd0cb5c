"""A storage node's replica of one partition; its peers are on other nodes.

A `NodePartition` is one replica of a group (the node's, named by its
replica id, common/replica_ids.py), driven by a `ReplicaDriver`; it reaches
the other members' replicas over whatever network the node hands it
(transport/mesh.py, over TCP between processes or in-process in `triplica
serve`). Placement (metadata/placement.py) puts the members in three
different AZs.

Who serves what (paper: "the leader ... replicating all the customer
mutations and serving strongly consistent reads"):
- writes and strongly consistent reads only on the replica that leads and
  holds a valid lease; anywhere else they raise `NotLeaderError` carrying
  the leader this replica believes in (None if it knows none). The node's
  HTTP layer turns it into an internal 421 for the router, which follows it;
- eventually consistent reads and `stats` from the local applied state.

The leader evaluates a write against its latest state: the applied store
plus an overlay of its own proposed-but-not-applied writes
(engine/queued_writes.py: pending writes belong to one ballot of this
replica; a leadership change fails them with a 500 whose outcome the
client must treat as unknown, as with any DynamoDB 500).

A brand-new group (the metadata system just placed the table, see
metadata/control_plane.py) back-dates its clock: every member may promise at once and one member campaigns
at its first tick, so a new table has a leader in a few ms. That member is
picked by a stable hash of the group key (`first_campaigner`, the same on
every node), not the lowest id, so leaders spread over the nodes. A restart
never back-dates (the driver asserts it).

Split (engine/group_split.py): `split` proposes the group's split entry
on the leader and refuses every write after it; once a replica has applied
it (`moved`, read from its store, so it survives restarts and images) it
serves nothing and raises `PartitionMovedError`. `meter` (set by
engine/split_advisor.py) records the reads this replica serves and, on the
leader, the writes.

Damaged replica (checked at open: the log fails
its checks, the LMDB data file is missing while the log has state, or the
replica directory is missing in an existing partition). The healthy
replicas are on other nodes, so the bound for the rebuilt log comes over
the network (`ask_bound` asks one peer; engine/replica_repair.py
`collect_bound`: every other member must answer as a healthy voter, asked
again every 0.5 s for up to `repair_wait_s`). The partition is still
constructed at once, in a "healing" state: no driver, nothing registered
on the network, every request raises `NotLeaderError(None)` (the router
tries another member) and `stats` is (0, 0). A task owned by the partition
collects the bound, then quarantines the directory, puts the repairing
empty one in place (`rebuild_in_place`) and starts the driver; from then on
it is an ordinary replica that catches up from the leader (log or LMDB
image) and votes again once it has learned every index up to the marker.
If the bound can't be had in time the partition stays unopened, with an
error logged and no file moved; restarting the node tries again.
Why a task and not a wait inside the constructor: partitions are built by
the Database's synchronous factory on the event loop, and a minute's wait
there would stall the whole node, including the answers its peers need,
so two nodes each healing a different partition would wait on each other.
Moving files and opening the driver stay synchronous (a few ms, and no
cancellation can land between them).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Iterator

from triplica.common.redirects import NotLeaderError, PartitionMovedError
from triplica.errors import ProvisionedThroughputExceededException
from triplica.engine.access_meter import AccessMeter
from triplica.engine.global_index_keys import indexer_of as global_indexer_of
from triplica.engine.group_split import REPLICA_DIRECTORY, marker_of
from triplica.engine.split_protocol import (ASK_DONE, ASK_MISMATCH, ASK_PROPOSE, MOVED, ReplicaSplit,
                                            SplitMarker, first_campaigner, split_writes,
                                            start_back_ms)
from triplica.engine.log_entries import Write, decode_entry, encode_entry, stored_item_size
from triplica.engine.queued_writes import QueuedWrites
from triplica.engine.replica_repair import (
    REPAIR_BOUND_WAIT_S_DEFAULT,
    AskBound,
    RepairBound,
    bound_of,
    collect_bound,
    discard_interrupted,
    rebuild_in_place,
)
from triplica.replication.membership import Membership
from triplica.replication.driver import COMPACT_ENTRIES_DEFAULT, ReplicaDriver
from triplica.replication.replica_files import ReplicaDamagedError
from triplica.replication.log import LogEntry
from triplica.replication.options import ReplicaOptions
from triplica.storage.lmdb_store import PartitionStore, SecondaryIndexer

log = logging.getLogger(__name__)

GROUP_ID = 1
# Global index deltas a partition may hold undelivered before its writes are throttled.
INDEX_BACKLOG_MAX = int(os.environ.get("TRIPLICA_INDEX_BACKLOG_MAX", 200_000))
INDEX_BACKLOG_MESSAGE = (
    "The level of configured provisioned throughput for one or more global secondary "
    "indexes of the table was exceeded. Consider increasing your provisioning level for "
    "the under-provisioned global secondary indexes with the UpdateTable API")
DRAIN_S_MAX = 10.0
DRAIN_POLL_S = 0.005
DECIDED_POLL_S = 0.01

__all__ = ["NodePartition", "UnhostedPartition", "first_campaigner"]


class NodePartition:
    """This node's replica of one partition; same interface as Partition."""

    def __init__(self, directory: str, *, replica_id: int, group_key: str, members: list[int],
                 network: Any, sync_mode: str = "batch", fresh: bool = False,
                 options: ReplicaOptions = ReplicaOptions(), ask_bound: AskBound | None = None,
                 repair_wait_s: float = REPAIR_BOUND_WAIT_S_DEFAULT, joining: bool = False,
                 compact_entries: int = COMPACT_ENTRIES_DEFAULT,
                 indexer: SecondaryIndexer | None = None) -> None:
        """`ask_bound`: how to ask a peer for its repair bound; without it a damaged
        replica raises ReplicaDamagedError here, as before (see the module docstring).
        `joining`: a replica added to an existing group (metadata/replica_mover.py); it
        starts with no configuration and learns it from the leader; `members` are the
        peers it can reach at first. `replica_id` and `members` are replica ids
        (common/replica_ids.py), the directory this replica's home (replica_homes.py).
        `indexer`: the table's local secondary indexes (engine/local_indexes.py), kept by
        the store from every entry it applies."""
        assert (replica_id in members or joining) and len(set(members)) == len(members), \
            (replica_id, members)
        assert not (joining and fresh)
        self.directory = directory
        self.replica_id = replica_id
        self.group_key = group_key
        self._members = sorted(set(members) | {replica_id})
        self._joining = joining
        self._network = network
        self._sync_mode = sync_mode
        self._options = options
        self._compact_entries = compact_entries
        self._indexer = indexer
        self.index_backlog = 0   # undelivered global index deltas (index_propagation.py)
        self._loop = asyncio.get_running_loop()
        # Writes proposed by this replica's current leadership (owner: its ballot).
        self._queued = QueuedWrites(directory)
        self._usable_cache: tuple[int, bool] | None = None
        self._closed = False
        self.driver: ReplicaDriver | None = None  # None while healing, or if healing failed
        self.damaged: str | None = None  # why the replica was found damaged at open
        self.failure: str | None = None  # why it could not be rebuilt (stays unopened)
        self._healer: asyncio.Task | None = None
        # Split (engine/split_protocol.py): the marker once applied here, and the
        # split entry this leadership has in flight (no write may follow it).
        self.split_state = ReplicaSplit()
        # Reads and writes this replica served while leading (split for consumption).
        self.meter: AccessMeter | None = None
        start_ms = None
        if fresh:  # see the module docstring: only a group with no state at all
            back_ms = start_back_ms(replica_id, group_key, members, options.election_timeout_base_ms,
                                    options.election_timeout_jitter_ms)
            start_ms = int(self._loop.time() * 1000) - back_ms
        else:
            discard_interrupted(directory)
        try:
            if not fresh and not joining and not os.path.isdir(self._replica_path):
                raise ReplicaDamagedError(self._replica_path, "its directory is missing")
            self.driver = self._make_driver(start_ms)
        except ReplicaDamagedError as error:
            if ask_bound is None:
                raise
            self.damaged = error.reason
            self._healer = self._loop.create_task(self._heal(ask_bound, repair_wait_s))
            return
        self._refresh_moved()
        self._reach_members(self.driver)
        self.driver.start()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def healing(self) -> bool:
        """Damaged at open and still being rebuilt from its peers."""
        return self.driver is None and self.failure is None and not self._closed

    @property
    def running(self) -> bool:
        """Its driver runs (False while healing, after a failed rebuild, after a disk
        failure stopped it, and once closed)."""
        return self.driver is not None and self.driver.running and not self._closed

    @property
    def moved(self) -> SplitMarker | None:
        """The group's split, once this replica applied it (it serves nothing then)."""
        return self.split_state.moved

    @property
    def members(self) -> list[int]:
        """The members this replica was opened with (its node's view of the group)."""
        return list(self._members)

    @property
    def _replica_path(self) -> str:
        return os.path.join(self.directory, REPLICA_DIRECTORY)

    def _make_driver(self, start_ms: int | None) -> ReplicaDriver:
        return ReplicaDriver(
            node_id=self.replica_id, group=GROUP_ID,
            membership=None if self._joining else Membership.of(self._members),
            directory=self._replica_path, network=self._network,
            addresses={member: (self.group_key, member) for member in self._members},
            sync_mode=self._sync_mode, decode=decode_entry, listener=self, options=self._options,
            value_size=stored_item_size, compact_entries=self._compact_entries, start_ms=start_ms,
            indexer=self._indexer, global_of=global_indexer_of)

    # ------------------------------------------------------------- healing

    async def _heal(self, ask_bound: AskBound, wait_s: float) -> None:
        """Rebuild the damaged replica from its peers' bound, then start it."""
        assert self.damaged is not None and self.driver is None
        label = f"partition {self.directory} (group {self.group_key}): replica {self.replica_id}"
        peers = [member for member in self._members if member != self.replica_id]
        try:
            bound = await collect_bound(ask_bound, peers, label, wait_s)
            if bound is None:
                self.failure = f"damaged ({self.damaged}) and not every peer gave a repair bound"
                return
            if self._closed:
                return
            rebuild_in_place(self._replica_path, bound, label, self.damaged)
            driver = self._make_driver(None)
        except Exception as error:  # a disk failure or a bug: stay unopened, say why
            log.error("%s could not be rebuilt", label, exc_info=True)
            self.failure = f"rebuild failed: {error}"
            return
        self.driver = driver
        self._refresh_moved()
        driver.start()

    def repair_bound(self) -> RepairBound | str:
        """This replica's contribution to a peer's repair bound, or why it can't give one."""
        driver = self.driver
        if self._closed:
            return "its replica is closed"
        if driver is None:
            return f"its own replica is damaged ({self.failure or self.damaged})"
        if not driver.running:
            return "its replica is stopped"
        if driver.replica.repairing:
            return "its replica is repairing"
        return bound_of(driver.log)

    # ---------------------------------------------------------- leadership

    def leader_hint(self) -> int | None:
        driver = self.driver
        if driver is None or not driver.running:
            return None
        if driver.is_leader:
            return self.replica_id
        return driver.replica.leader_id

    def _usable(self, driver: ReplicaDriver) -> bool:
        """Leader with a valid lease now (cached for the current ms: a request asks
        several times, and the lease check reads the clock)."""
        now_ms = int(self._loop.time() * 1000)
        cache = self._usable_cache
        if cache is not None and cache[0] == now_ms:
            return cache[1]
        usable = driver.is_leader and driver.read_allowed()
        self._usable_cache = (now_ms, usable)
        return usable

    def _leader(self, write: bool = False) -> ReplicaDriver:
        driver = self.driver
        usable = not self._closed and driver is not None and self._usable(driver)
        refusal = self.split_state.refusal(usable, write)
        if refusal == MOVED:
            raise PartitionMovedError()
        if refusal is not None or driver is None:
            raise NotLeaderError(self.leader_hint())
        return driver

    def leader_store(self) -> PartitionStore:
        """The store, on the leader only (else NotLeaderError / PartitionMovedError): what
        global index propagation reads (node/index_propagation.py)."""
        return self._leader().store

    def require_leader(self) -> None:
        """Raise NotLeaderError (with the believed leader) unless this replica may serve
        as leader now (leads, holds a lease, has applied its predecessors' entries)."""
        self._leader()

    def serving(self) -> bool:
        try:
            self._leader()
        except NotLeaderError:
            return False
        return True

    def _local_store(self) -> PartitionStore:
        if self.moved is not None:
            raise PartitionMovedError()
        if self.driver is None:  # healing: the router tries another member
            raise NotLeaderError(None)
        return self.driver.store

    # --------------------------------------------------------------- reads

    def read_applied(self, key: bytes, consistent: bool = False) -> bytes | None:
        store = self._leader().store if consistent else self._local_store()
        value = store.get(key)
        if self.meter is not None:
            self.meter.read(key, len(value) if value is not None else 0, consistent)
        return value

    def read_latest(self, key: bytes) -> bytes | None:
        driver = self._leader()
        self._own_leadership(driver)
        found, value = self._queued.latest(key)
        return value if found else driver.store.get(key)

    def pending_write(self, key: bytes) -> asyncio.Future | None:
        """The future of the latest queued (not yet committed) write to `key`, if any."""
        return self._queued.future_of(key)

    def scan(self, start: bytes, end: bytes | None, reverse: bool = False,
             start_inclusive: bool = True, consistent: bool = False) -> Iterator[tuple[bytes, bytes]]:
        store = self._leader().store if consistent else self._local_store()
        return store.scan(start, end, reverse=reverse, start_inclusive=start_inclusive)

    def scan_index(self, name: str, start: bytes, end: bytes | None, reverse: bool = False,
                   start_inclusive: bool = True, consistent: bool = False, fetch: bool = False,
                   ) -> Iterator[tuple[bytes, bytes, bytes | None]]:
        """A local secondary index's entries (and the items, when `fetch`), as `scan`."""
        store = self._leader().store if consistent else self._local_store()
        return store.scan_index(name, start, end, reverse=reverse,
                                start_inclusive=start_inclusive, fetch=fetch)

    def stats(self) -> tuple[int, int]:
        if self.driver is None:
            return 0, 0
        return self.driver.store.stats()

    def index_stats(self, name: str) -> tuple[int, int]:
        """(entries, bytes) of a local secondary index in this replica."""
        if self.driver is None:
            return 0, 0
        return self.driver.store.index_stats(name)

    def collection_size(self, collection: bytes) -> int:
        """Bytes of an item collection in this replica's applied state (the leader's
        estimate: writes still in flight are not in it)."""
        if self.driver is None:
            return 0
        return self.driver.store.collection_size(collection)

    # -------------------------------------------------------------- writes

    def propose(self, writes: list[Write]) -> asyncio.Future:
        """Replicate writes as one log entry; resolves once committed and applied here."""
        return self.propose_indexed(writes)[1]

    def check_index_backlog(self) -> None:
        """Refuse a client's write while the global index deltas waiting in this
        partition's outbox (as the propagator last counted them) are past the bound:
        an index that falls behind slows its table's writes with DynamoDB's throttling
        error instead of letting the lag grow without bound."""
        if self.index_backlog > INDEX_BACKLOG_MAX:
            raise ProvisionedThroughputExceededException(INDEX_BACKLOG_MESSAGE)

    def propose_internal(self, writes: list[Write]) -> asyncio.Future:
        """`propose` for the partition's own entries (index operations), which the index
        backlog never refuses."""
        driver = self._leader(write=True)
        return self._propose_on(driver, writes)[1]

    def propose_indexed(self, writes: list[Write]) -> tuple[int, asyncio.Future]:
        """`propose`, also giving the log index the entry was proposed at: once this
        replica's `applied_index` reaches it, the slot is decided either way (how a
        writer that lost its leadership learns whether its entry was committed)."""
        assert writes, "empty log entry"
        driver = self._leader(write=True)  # refused after this leadership's split entry
        self.check_index_backlog()
        if self.meter is not None:
            for key, value in writes:
                self.meter.write(key, len(value) if value is not None else 0)
        return self._propose_on(driver, writes)

    def applied_index(self) -> int:
        """The last log index applied to this replica's store (0 while healing)."""
        return 0 if self.driver is None else self.driver.store.applied_index()

    async def decided(self, index: int, wait_s: float) -> bool:
        """Wait (at most `wait_s`) until log `index` is applied here, whoever led when
        it was decided; False if it was not in time."""
        deadline = self._loop.time() + wait_s
        while self.applied_index() < index:
            if self._loop.time() >= deadline or self._closed:
                return False
            await asyncio.sleep(DECIDED_POLL_S)
        return True

    def _propose_on(self, driver: ReplicaDriver,
                    writes: list[Write]) -> tuple[int, asyncio.Future]:
        self._queued.check_capacity()
        self._own_leadership(driver)
        payload = encode_entry(writes)
        index = driver.propose(payload)
        if index is None:
            raise NotLeaderError(self.leader_hint())
        future = self._loop.create_future()
        self._queued.add(index, writes, payload, future)
        return index, future

    async def split(self, marker: SplitMarker, wait_s: float) -> int:
        """Split this group (engine/group_split.py); the split entry's index once applied
        here. Idempotent: a group already split the same way answers at once."""
        decision = self.split_state.on_ask(marker)
        if decision == ASK_MISMATCH:
            raise ValueError(f"group {self.group_key} was split differently: {self.moved}")
        if decision == ASK_DONE:
            assert self.moved is not None
            return self.moved.index
        driver = self._leader()
        if decision == ASK_PROPOSE:
            self.split_state.proposed(driver.replica.ballot)
            try:
                future = self._propose_on(driver, split_writes(marker))[1]
            except BaseException:
                self.split_state.proposal_failed()
                raise
            try:
                await asyncio.wait_for(asyncio.shield(future), wait_s)
            except asyncio.TimeoutError:
                raise NotLeaderError(self.leader_hint()) from None
        else:  # a split already in flight: wait for it to land
            deadline = self._loop.time() + wait_s
            while (self.moved is None and self.split_state.proposing is not None
                   and self._loop.time() < deadline):
                await asyncio.sleep(DRAIN_POLL_S)
        self._refresh_moved()
        if self.moved is None:
            raise NotLeaderError(self.leader_hint())
        return await self.split(marker, wait_s)

    async def wait_moved(self, wait_s: float) -> SplitMarker | None:
        """Wait (bounded) until this replica has applied its group's split."""
        deadline = self._loop.time() + wait_s
        while self.moved is None and not self._closed and self._loop.time() < deadline:
            await asyncio.sleep(DRAIN_POLL_S * 4)
            self._refresh_moved()
        return self.moved

    def _refresh_moved(self) -> None:
        driver = self.driver
        if self.moved is None and driver is not None and not self._closed:
            marker = marker_of(driver.store)
            if marker is not None:
                self.split_state.applied(marker)

    def _own_leadership(self, driver: ReplicaDriver) -> None:
        """Queued writes and the overlay belong to one ballot of this replica."""
        self._queued.own(driver.replica.ballot)

    def _fail_pending(self) -> None:
        self._queued.fail_all()

    # ----------------------------------------------- DriverListener (callbacks)

    def _reach_members(self, driver: ReplicaDriver) -> None:
        """Every member of the configurations this replica knows is reachable (a replica
        added by the control plane joins after this one started)."""
        core = driver.replica
        for config in (core.committed_config, core.pending_config):
            if config is not None:
                for member in config.members:
                    driver.add_peer(member, (self.group_key, member))

    def status(self) -> dict[str, Any] | None:
        """The group as this replica sees it while leading (metadata/replica_mover.py)."""
        driver = self.driver
        if driver is None or self._closed or not driver.is_leader:
            return None
        core = driver.replica
        config = core.committed_config
        if config is None:
            return None
        now_ms = driver.now_ms()
        return {"leader": self.replica_id, "commit_index": core.commit_index,
                "committed": [sorted(config.members), sorted(config.log_replicas)],
                "pending": None if core.pending_config is None else
                [sorted(core.pending_config.members), sorted(core.pending_config.log_replicas)],
                "caught_up": sorted(n for n, p in core.progress.items()
                                    if p.match_index >= core.commit_index),
                "silent_ms": {str(n): max(0, now_ms - p.acked_sent_ms)
                              for n, p in core.progress.items()}}

    def committed_members(self) -> tuple[list[int], list[int]] | None:
        driver = self.driver
        config = None if driver is None else driver.replica.committed_config
        return None if config is None else (sorted(config.members), sorted(config.log_replicas))

    def propose_members(self, members: list[int], log_replicas: list[int]) -> int | None:
        """Propose the next configuration on the leader (one member added or removed)."""
        driver = self._leader()
        for member in members:
            driver.add_peer(member, (self.group_key, member))
        return driver.propose_membership(Membership.of(members, log_replicas))

    def applied(self, driver: ReplicaDriver, entries: tuple[LogEntry, ...]) -> None:
        self._reach_members(driver)
        self._refresh_moved()
        self._queued.settle(entries, self._queued.owner)

    def role_changed(self, driver: ReplicaDriver) -> None:
        self._usable_cache = None
        self._reach_members(driver)
        # A split entry in flight is the next leader's to decide (split_protocol.py).
        self.split_state.leadership(driver.is_leader, driver.replica.ballot)
        self._refresh_moved()
        owner = self._queued.owner
        if owner is None:
            return
        if not driver.is_leader or driver.replica.ballot != owner:
            self._fail_pending()

    # ----------------------------------------------------------- lifecycle

    def fail(self, reason: str) -> None:
        """Stop this replica as a disk failure would (fault injection): it keeps its
        files, answers nothing, and its node reports it down until it is replaced or
        the node restarts."""
        if self.driver is not None and self.driver.running:
            self.driver.fail(RuntimeError(reason))

    async def drain(self) -> None:
        """Wait (bounded) until every proposed write has an answer."""
        deadline = time.monotonic() + DRAIN_S_MAX
        while len(self._queued) and time.monotonic() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fail_pending()
        if self._healer is not None:
            self._healer.cancel()
            await asyncio.gather(self._healer, return_exceptions=True)
        if self.driver is not None:
            await self.driver.close()

    def close(self) -> None:
        """Synchronous close (prefer `aclose`): a healer is cancelled, not awaited;
        it moves no file once closed (see `_heal`)."""
        if self._closed:
            return
        self._closed = True
        self._fail_pending()
        if self._healer is not None:
            self._healer.cancel()
        if self.driver is not None:
            self.driver.close_now()


class UnhostedPartition:
    """A partition whose replicas live on other nodes (this node is not a member).

    Every request is redirected to the group's first member; the router
    learns the leader from there. `stats` is unknown here (0, 0).
    """

    def __init__(self, members: list[int]) -> None:
        self.members = members

    def _redirect(self, *_: Any, **__: Any) -> Any:
        raise NotLeaderError(self.members[0])

    read_applied = read_latest = scan = scan_index = propose = check_index_backlog = _redirect

    def stats(self) -> tuple[int, int]:
        return 0, 0

    def index_stats(self, name: str) -> tuple[int, int]:
        return 0, 0

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None
