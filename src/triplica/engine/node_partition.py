"""A storage node's replica of one partition, its peers in other processes.

`ReplicatedPartition` hosts all three replicas of a group in one process;
a `NodePartition` hosts exactly one (this node's), driven by the same
`ReplicaDriver`, and reaches the other members' replicas over whatever
network the node hands it (cluster/peer_network.py: TCP between nodes).
Placement (cluster/config.py) puts the members in three different AZs.

Who serves what (paper: "the leader ... replicating all the customer
mutations and serving strongly consistent reads"):
- writes and strongly consistent reads only on the replica that leads and
  holds a valid lease; anywhere else they raise `NotLeaderError` carrying
  the leader this replica believes in (None if it knows none). The node's
  HTTP layer turns it into an internal 421 for the router, which follows it;
- eventually consistent reads and `stats` from the local applied state.

The leader evaluates a write against its latest state: the applied store
plus an overlay of its own proposed-but-not-applied writes (the same
bookkeeping as ReplicatedPartition: pending writes belong to one
(node, ballot); a leadership change fails them with a 500 whose outcome the
client must treat as unknown, as with any DynamoDB 500).

A brand-new group (the table was just created on every node by the
router's broadcast) back-dates its clock exactly as ReplicatedPartition's
bootstrap does: every member may promise at once and the lowest-id member
campaigns at its first tick, so a new table has a leader in a few ms. A
restart never back-dates (the driver asserts it).
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Iterator

from triplica.engine.partition import Write, decode_entry, encode_entry, stored_item_size
from triplica.engine.queued_writes import QueuedWrites
from triplica.replication.config import Membership
from triplica.replication.driver import ReplicaDriver
from triplica.replication.log import LogEntry
from triplica.replication.options import ReplicaOptions
from triplica.storage.lmdb_store import PartitionStore


GROUP_ID = 1
DRAIN_S_MAX = 10.0
DRAIN_POLL_S = 0.005
REPLICA_DIRECTORY = "replica"


class NotLeaderError(Exception):
    """This replica may not evaluate writes or serve strong reads.

    `leader_id` is the node this replica believes leads (itself while its
    lease is not yet established), or None when it knows no leader.
    Never reaches an SDK client: the node answers the router with a 421.
    """

    status = 421

    def __init__(self, leader_id: int | None) -> None:
        super().__init__(f"not the leader (leader: {leader_id})")
        self.leader_id = leader_id


class NodePartition:
    """This node's replica of one partition; same interface as Partition."""

    def __init__(self, directory: str, *, node_id: int, group_key: str, members: list[int],
                 network: Any, sync_mode: str = "batch", fresh: bool = False,
                 options: ReplicaOptions = ReplicaOptions()) -> None:
        assert node_id in members and len(set(members)) == len(members), (node_id, members)
        self.directory = directory
        self.node_id = node_id
        self.group_key = group_key
        self._loop = asyncio.get_running_loop()
        start_ms = None
        if fresh:  # see the module docstring: only a group with no state at all
            back_ms = options.election_timeout_base_ms
            if node_id == min(members):
                back_ms += options.election_timeout_jitter_ms
            start_ms = int(self._loop.time() * 1000) - back_ms
        self.driver = ReplicaDriver(
            node_id=node_id, group=GROUP_ID, membership=Membership.of(members),
            directory=os.path.join(directory, REPLICA_DIRECTORY), network=network,
            addresses={member: (group_key, member) for member in members},
            sync_mode=sync_mode, decode=decode_entry, listener=self, options=options,
            value_size=stored_item_size, start_ms=start_ms)
        # Writes proposed by this replica's current leadership (owner: its ballot).
        self._queued = QueuedWrites(directory)
        self._usable_cache: tuple[int, bool] | None = None
        self._closed = False
        self.driver.start()

    # ---------------------------------------------------------- leadership

    def leader_hint(self) -> int | None:
        driver = self.driver
        if not driver.running:
            return None
        if driver.is_leader:
            return self.node_id
        return driver.replica.leader_id

    def _usable(self) -> bool:
        """Leader with a valid lease now (cached for the current ms, see ReplicatedPartition)."""
        now_ms = int(self._loop.time() * 1000)
        cache = self._usable_cache
        if cache is not None and cache[0] == now_ms:
            return cache[1]
        usable = self.driver.is_leader and self.driver.read_allowed()
        self._usable_cache = (now_ms, usable)
        return usable

    def _leader_store(self) -> PartitionStore:
        if self._closed or not self._usable():
            raise NotLeaderError(self.leader_hint())
        return self.driver.store

    # --------------------------------------------------------------- reads

    def read_applied(self, key: bytes, consistent: bool = False) -> bytes | None:
        store = self._leader_store() if consistent else self.driver.store
        return store.get(key)

    def read_latest(self, key: bytes) -> bytes | None:
        store = self._leader_store()
        self._own_leadership()
        found, value = self._queued.latest(key)
        return value if found else store.get(key)

    def pending_write(self, key: bytes) -> asyncio.Future | None:
        """The future of the latest queued (not yet committed) write to `key`, if any."""
        return self._queued.future_of(key)

    def scan(self, start: bytes, end: bytes | None, reverse: bool = False,
             start_inclusive: bool = True, consistent: bool = False) -> Iterator[tuple[bytes, bytes]]:
        store = self._leader_store() if consistent else self.driver.store
        return store.scan(start, end, reverse=reverse, start_inclusive=start_inclusive)

    def stats(self) -> tuple[int, int]:
        return self.driver.store.stats()

    # -------------------------------------------------------------- writes

    def propose(self, writes: list[Write]) -> asyncio.Future:
        """Replicate writes as one log entry; resolves once committed and applied here."""
        assert writes, "empty log entry"
        self._leader_store()
        self._queued.check_capacity()
        self._own_leadership()
        payload = encode_entry(writes)
        index = self.driver.propose(payload)
        if index is None:
            raise NotLeaderError(self.leader_hint())
        future = self._loop.create_future()
        self._queued.add(index, writes, payload, future)
        return future

    def _own_leadership(self) -> None:
        """Queued writes and the overlay belong to one ballot of this replica."""
        self._queued.own(self.driver.replica.ballot)

    def _fail_pending(self) -> None:
        self._queued.fail_all()

    # ----------------------------------------------- DriverListener (callbacks)

    def applied(self, driver: ReplicaDriver, entries: tuple[LogEntry, ...]) -> None:
        self._queued.settle(entries, self._queued.owner)

    def role_changed(self, driver: ReplicaDriver) -> None:
        self._usable_cache = None
        owner = self._queued.owner
        if owner is None:
            return
        if not driver.is_leader or driver.replica.ballot != owner:
            self._fail_pending()

    # ----------------------------------------------------------- lifecycle

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
        await self.driver.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fail_pending()
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

    read_applied = read_latest = scan = propose = _redirect

    def stats(self) -> tuple[int, int]:
        return 0, 0

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None
