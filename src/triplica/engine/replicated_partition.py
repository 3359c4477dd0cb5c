"""A partition kept as a Multi-Paxos group of replicas inside one process.

`ReplicatedPartition` has exactly the interface of `Partition` (the API
layer can't tell them apart): `read_applied`, `read_latest`, `scan`,
`stats`, `propose`, `drain`, `close`. It hosts N replicas (3 by default, in
AZs "az-a", "az-b", "az-c", each in its own directory under the partition
directory), each run by a `ReplicaDriver` and connected through an
`InProcessNetwork` (DESIGN.md: same code paths as a cluster, only the
transport differs).

Writes. `propose(writes)` hands the entry to the current leader's core. The
future resolves once the entry is committed by a quorum (durable in two
WALs of three) AND applied on the leader, so the next read from the
leader's store sees it. With no usable leader (an election is running),
proposals wait up to LEADER_WAIT_S, then fail with InternalServerError;
they were never proposed, so nothing half-happened. On leadership loss
every proposed-but-unacknowledged write fails with InternalServerError and
the overlay is cleared: the write may or may not have happened (DynamoDB's
500 semantics; the client retries).

Overlay: like Partition, writes proposed but not yet applied on the leader
are kept per key, so `read_latest` (what a new write is evaluated against)
sees them. The overlay belongs to one leadership (node, ballot).

Reads. "Usable leader" means `read_allowed(now)`: the leader holds a quorum
lease and has applied its own fence entry, so its applied state plus the
overlay is the latest state of the partition.
- read_latest: usable leader's state + overlay; none -> InternalServerError.
- consistent=True (strongly consistent): the usable leader's applied state;
  none -> InternalServerError at once. The API handlers are synchronous, so
  "waiting for a lease" would block the event loop; a leader renews its
  lease on every heartbeat, so this only fails while an election runs.
- consistent=False (eventually consistent): the current leader's applied
  state when there is one (it is local here and the freshest, so a client
  reads its own acknowledged writes, which the existing test suite expects),
  otherwise the live replica that has applied the most. Never a stopped one.

Damaged replicas (checked at open). A replica whose log fails its checks
(WalCorruptionError, PaxosLogCorruptionError), whose store is unreadable or
missing while its log is not, or whose directory is missing in an existing
partition, is quarantined: its directory moves aside to
`<dir>.corrupt-<UTC timestamp>` (kept for the operator, logged as an error)
and a new one is put in its place holding only a log with the healthy
replicas' highest promise and a REPAIR marker up to the highest index any
healthy replica holds or committed (storage/paxos_log.py). It starts empty
under the SAME node id, which is safe only because of the core's repair mode
(replica.py, "Repair"): it forgot its promises and acceptances, so it makes
no promises and its accepts do not count until its commit index covers
every index it may have accepted (a slot chosen with its vote was also
accepted by a healthy replica, so it is <= the marker), and it never
campaigns meanwhile. The leader then catches it up like any lagging replica
(log entries, or an LMDB image once the log is compacted). This needs a
majority of healthy voters (not themselves repairing) to remain; otherwise
the partition refuses to open and nothing is moved.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator

from triplica.engine.partition import Write, decode_entry, encode_entry, stored_item_size
from triplica.engine.access_meter import AccessMeter
from triplica.engine.group_healer import GroupHealer
from triplica.engine.held_writes import HeldWrites
from triplica.engine.replica_roster import AVAILABILITY_ZONES, ReplicaRoster
from triplica.engine.replica_repair import RepairBound, bound_of, discard_interrupted, rebuild_in_place
from triplica.engine.queued_writes import PENDING_WRITES_MAX, QueuedWrites
from triplica.errors import InternalServerError
from triplica.replication.membership import Membership
from triplica.replication.log import LogEntry
from triplica.replication.messages import Message, message_from_wire, message_to_wire
from triplica.replication.options import ReplicaOptions
from triplica.replication.driver import COMPACT_ENTRIES_DEFAULT, ReplicaDriver
from triplica.replication.replica_files import ReplicaDamagedError
from triplica.storage.lmdb_store import PartitionStore
from triplica.transport.framing import pack_payload, unpack_payload
from triplica.transport.inprocess import InProcessNetwork

log = logging.getLogger(__name__)

GROUP_ID = 1
HEAL_AFTER_S_DEFAULT = 30.0
REMOVED_SUFFIX = ".removed-"
LEADER_WAIT_S = 3.0
LEADER_POLL_S = 0.005
WAITING_WRITES_MAX = 10_000
DRAIN_S_MAX = 10.0
BOOTSTRAP_ROUNDS_MAX = 20
# Timing for `triplica serve`: an idle group's cost is one heartbeat round
# per interval, so heartbeats come every 400 ms and the election timeout is
# 1.5 s + up to 0.5 s of jitter (options.py wants at least three heartbeats
# per timeout). The three replicas share one process, so a short timeout buys
# little (a stalled process stalls all three) and costs spurious elections
# when the machine is loaded; the lease follows from the timeout by the
# arithmetic of options.py (about 1.4 s, renewed every heartbeat); a failover
# of a stopped replica takes up to ~2 s.
SERVE_OPTIONS = ReplicaOptions(heartbeat_interval_ms=400, election_timeout_base_ms=1500,
                               election_timeout_jitter_ms=500)


class PartitionDamagedError(Exception):
    """Too few healthy replicas to open a partition (see the module docstring)."""


class ReplicatedPartition:
    """N replicas of one partition, one leader, same interface as Partition."""

    def __init__(self, directory: str, sync_mode: str = "batch", replicas: int = 3,
                 options: ReplicaOptions = SERVE_OPTIONS,
                 compact_entries: int = COMPACT_ENTRIES_DEFAULT,
                 heal_after_s: float | None = HEAL_AFTER_S_DEFAULT, new_group: bool = False) -> None:
        """`heal_after_s`: replace a replica that has been down this long (None: never).
        `new_group`: the replica directories were just built and never ran (a split
        child), so the first leader may be elected synchronously as for an empty group."""
        assert sync_mode in ("always", "batch", "none"), sync_mode
        assert 1 <= replicas <= len(AVAILABILITY_ZONES), replicas
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.sync_mode = sync_mode
        self._loop = asyncio.get_running_loop()
        self._options = options
        self._compact_entries = compact_entries
        self._network = InProcessNetwork()
        self.roster = ReplicaRoster(directory, replicas)
        self._node_ids = list(self.roster.entries)
        self._zones = {n: e.az for n, e in self.roster.entries.items()}
        self._addresses = {n: (e.directory, n) for n, e in self.roster.entries.items()}
        self._membership = Membership.of(self.roster.initial)
        self.drivers: dict[int, ReplicaDriver | None] = {node: None for node in self._node_ids}
        self._healer: GroupHealer | None = None
        self._held: HeldWrites | None = None  # while a split runs (partition_split.py)
        self.writes_held_total = 0
        self.meter: AccessMeter | None = None  # set by the split monitor (table_splits.py)
        self._healer_task: asyncio.Task | None = None
        # Writes proposed to one leadership (owner: (node, ballot)).
        self._queued = QueuedWrites(directory)
        # Writes waiting for a usable leader: (deadline, writes, future).
        self._waiting: deque[tuple[float, list[Write], asyncio.Future]] = deque()
        self._waiter: asyncio.Task | None = None
        self._usable_cache: tuple[int, ReplicaDriver | None] | None = None
        self._closed = False
        fresh = not any(os.path.exists(self.replica_directory(n)) for n in self._node_ids)
        try:
            if (fresh or new_group) and replicas > 1:
                self._bootstrap()
            elif not fresh:
                self._open_replicas()
            for node in self._node_ids:
                if self.drivers[node] is None:
                    self.start_replica(node)
                else:
                    self.drivers[node].start()  # type: ignore[union-attr]
        except BaseException:
            self._close_now()
            raise
        if replicas > 1 and heal_after_s is not None:
            self._healer = GroupHealer(self, heal_after_s)
            self._healer_task = self._loop.create_task(self._healer.run())

    # ------------------------------------------------------------ replicas

    def replica_directory(self, node: int) -> str:
        return os.path.join(self.directory, self.roster.entries[node].directory)

    def _open_replicas(self) -> None:
        """Open every replica of an existing partition; quarantine and rebuild damaged ones."""
        discard_interrupted(self.directory)
        damaged: dict[int, str] = {}
        for node in self._node_ids:
            if not os.path.isdir(self.replica_directory(node)):
                damaged[node] = "its directory is missing"
                continue
            try:
                self.drivers[node] = self._make_driver(node)
            except ReplicaDamagedError as error:
                damaged[node] = error.reason
        if not damaged:
            return
        voters = [d for d in self.drivers.values() if d is not None and not d.replica.repairing]
        majority = len(self._node_ids) // 2 + 1
        if len(voters) < majority:
            message = (f"partition {self.directory}: only {len(voters)} healthy voting replicas of "
                       f"{len(self._node_ids)} (damaged: "
                       + "; ".join(f"{self._zones[n]}: {r}" for n, r in sorted(damaged.items()))
                       + "); refusing to open it (no files were moved)")
            log.error("%s", message)
            raise PartitionDamagedError(message)
        healthy = [d for d in self.drivers.values() if d is not None]
        for node, reason in sorted(damaged.items()):
            self._rebuild(node, reason, healthy)

    def _rebuild(self, node: int, reason: str, healthy: list[ReplicaDriver]) -> None:
        """Quarantine replica `node`'s directory and put a repairing empty one in its place."""
        bound = RepairBound.merge([bound_of(d.log) for d in healthy])
        label = f"partition {self.directory}: replica {node} ({self._zones[node]})"
        rebuild_in_place(self.replica_directory(node), bound, label, reason)
        self.drivers[node] = self._make_driver(node)

    def _bootstrap(self) -> None:
        """Elect the first leader of a brand-new group synchronously (a few ms).

        Every replica is empty: none ever acknowledged a leader, so none
        vouches for a lease and the restart guard (refuse promises for one
        election timeout, options.py) protects nothing. Their clocks may
        therefore start back-dated by that guard; node 1's also by the full
        jitter, so it campaigns at its first tick. Messages go straight from
        core to core (through the wire encoding) and every Ready is persisted
        inline, exactly as the drivers would, until node 1 can serve
        consistent reads. If that does not happen (it always does here), the
        drivers simply elect someone on their own.
        """
        base_ms = self._options.election_timeout_base_ms
        jitter_ms = self._options.election_timeout_jitter_ms
        now_ms = int(self._loop.time() * 1000)
        for node in self._node_ids:
            back_ms = base_ms + jitter_ms if node == 1 else base_ms
            self.drivers[node] = self._make_driver(node, start_ms=now_ms - back_ms)
        drivers = [d for d in self.drivers.values() if d is not None]

        def deliver(message: Message) -> None:
            target = self.drivers[message.to]
            assert target is not None
            wire = unpack_payload(pack_payload(message_to_wire(message)))
            target.replica.tick(target.now_ms())
            target.replica.step(message_from_wire(wire))

        for _ in range(BOOTSTRAP_ROUNDS_MAX):
            for driver in drivers:
                driver.replica.tick(driver.now_ms())
                driver.drive_sync(deliver)
            # Usually node 1; another node may win if the bootstrap itself
            # outlasted its (jittered) election timeout. Either is fine.
            if any(d.replica.is_leader and d.lease_read_allowed() for d in drivers):
                return
        log.warning("partition %s: no leader after bootstrap; the drivers will elect one",
                    self.directory)

    def start_replica(self, node: int) -> ReplicaDriver:
        """Open (or reopen after `stop_replica`) one replica from its directory."""
        assert self.drivers[node] is None, f"replica {node} is running"
        driver = self._make_driver(node)
        self.drivers[node] = driver
        driver.start()
        return driver

    def _make_driver(self, node: int, start_ms: int | None = None) -> ReplicaDriver:
        # Replicas added by healing join with no configuration: they learn it.
        membership = self._membership if node in self.roster.initial else None
        return ReplicaDriver(
            node_id=node, group=GROUP_ID, membership=membership,
            directory=self.replica_directory(node), network=self._network,
            addresses=self._addresses, sync_mode=self.sync_mode, decode=decode_entry,
            listener=self, options=self._options, value_size=stored_item_size,
            compact_entries=self._compact_entries, start_ms=start_ms)

    def spawn_replica(self, node: int, az: str, log_replica: bool) -> ReplicaDriver:
        """Add a brand-new replica (healing): roster first, then its peers, then itself."""
        entry = self.roster.add(node, az, log_replica)
        self._node_ids.append(node)
        self._zones[node] = az
        self._addresses[node] = address = (entry.directory, node)
        for driver in self.drivers.values():
            if driver is not None:
                driver.add_peer(node, address)
        self.drivers[node] = None
        log.warning("partition %s: adding %s replica %s in %s", self.directory,
                    "log" if log_replica else "full", node, az)
        return self.start_replica(node)

    async def retire_replica(self, node: int) -> None:
        """Stop a member removed from the group for good and move its files aside."""
        if node not in self.roster.entries:
            return
        driver = self.drivers.pop(node, None)
        self._usable_cache = None
        if driver is not None:
            await driver.close()
        path = self.replica_directory(node)
        self.roster.retire(node)
        self._node_ids.remove(node)
        if os.path.exists(path):
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            os.rename(path, f"{path}{REMOVED_SUFFIX}{stamp}")
        log.warning("partition %s: replica %s removed from the group and retired",
                    self.directory, node)
        self._leadership_may_have_changed()

    async def stop_replica(self, node: int) -> None:
        """Stop one replica's driver (a node power-off, as far as its peers can tell)."""
        driver = self.drivers[node]
        assert driver is not None, f"replica {node} is not running"
        self.drivers[node] = None
        self._usable_cache = None
        await driver.close()
        self._leadership_may_have_changed()

    def leader(self) -> ReplicaDriver | None:
        for driver in self.drivers.values():
            if driver is not None and driver.is_leader:
                return driver
        return None

    def _usable_leader(self) -> ReplicaDriver | None:
        """The leader allowed to serve consistent reads now, if any.

        Cached for the current millisecond: the lease check is a quorum
        computation over the members, and a burst of requests in one loop
        turn would otherwise pay it per request. Role changes invalidate it.
        """
        now_ms = int(self._loop.time() * 1000)
        if self._usable_cache is not None and self._usable_cache[0] == now_ms:
            return self._usable_cache[1]
        usable = None
        for driver in self.drivers.values():
            if driver is not None and driver.is_leader and driver.read_allowed():
                usable = driver
                break
        self._usable_cache = (now_ms, usable)
        return usable

    def _reader(self) -> ReplicaDriver:
        """The replica an eventually consistent read goes to (see module docstring)."""
        leader = self.leader()
        if leader is not None:
            return leader
        live = [d for d in self.drivers.values()
                if d is not None and d.running and not d.replica.is_log_replica]
        if not live:
            raise InternalServerError("Internal server error")
        return max(live, key=lambda d: d.applied_index)

    def _consistent_store(self) -> PartitionStore:
        leader = self._usable_leader()
        if leader is None:
            raise InternalServerError("Internal server error")
        return leader.store

    # --------------------------------------------------------------- reads

    def read_applied(self, key: bytes, consistent: bool = False) -> bytes | None:
        store = self._consistent_store() if consistent else self._reader().store
        value = store.get(key)
        if self.meter is not None:
            self.meter.read(key, len(value) if value is not None else 0, consistent)
        return value

    def read_latest(self, key: bytes) -> bytes | None:
        if self._held is not None:
            found, value = self._held.latest(key)
            if found:
                return value
        leader = self._usable_leader()
        if leader is None:
            raise InternalServerError("Internal server error")
        self._own_leadership(leader)
        found, value = self._queued.latest(key)
        return value if found else leader.store.get(key)

    def pending_write(self, key: bytes) -> asyncio.Future | None:
        """The future of the latest queued (not yet committed) write to `key`, if any."""
        held = self._held.future_of(key) if self._held is not None else None
        return held if held is not None else self._queued.future_of(key)

    def scan(self, start: bytes, end: bytes | None, reverse: bool = False,
             start_inclusive: bool = True, consistent: bool = False) -> Iterator[tuple[bytes, bytes]]:
        store = self._consistent_store() if consistent else self._reader().store
        return store.scan(start, end, reverse=reverse, start_inclusive=start_inclusive)

    def stats(self) -> tuple[int, int]:
        return self._reader().store.stats()

    # -------------------------------------------------------------- writes

    def propose(self, writes: list[Write]) -> asyncio.Future:
        """Replicate writes as one log entry; resolves once committed and applied on the leader."""
        if self._closed:
            raise InternalServerError("Internal server error")
        assert writes, "empty log entry"
        if self.meter is not None:
            for key, value in writes:
                self.meter.write(key, len(value) if value is not None else 0)
        future = self._loop.create_future()
        if self._held is not None:
            self._held.add(writes, future)
            return future
        leader = self._usable_leader()
        if leader is not None and not self._waiting and self._propose_to(leader, writes, future):
            return future
        if len(self._waiting) >= WAITING_WRITES_MAX:
            raise InternalServerError("Internal server error")
        self._waiting.append((time.monotonic() + LEADER_WAIT_S, writes, future))
        if self._waiter is None:
            self._waiter = self._loop.create_task(self._wait_for_leader())
        return future

    def _propose_to(self, leader: ReplicaDriver, writes: list[Write], future: asyncio.Future) -> bool:
        if len(self._queued) >= PENDING_WRITES_MAX:
            future.set_exception(InternalServerError("Internal server error"))
            return True
        self._own_leadership(leader)
        payload = encode_entry(writes)
        index = leader.propose(payload)
        if index is None:
            return False
        self._queued.add(index, writes, payload, future)
        return True

    async def _wait_for_leader(self) -> None:
        try:
            while self._waiting and not self._closed:
                leader = self._usable_leader()
                while leader is not None and self._waiting:
                    _, writes, future = self._waiting[0]
                    if not future.done() and not self._propose_to(leader, writes, future):
                        break
                    self._waiting.popleft()
                now = time.monotonic()
                while self._waiting and self._waiting[0][0] <= now:
                    _, _, future = self._waiting.popleft()
                    if not future.done():
                        future.set_exception(InternalServerError("Internal server error"))
                if self._waiting:
                    await asyncio.sleep(LEADER_POLL_S)
        finally:
            self._waiter = None

    def _own_leadership(self, leader: ReplicaDriver) -> None:
        """Queued writes and the overlay belong to one (node, ballot)."""
        self._queued.own((leader.node_id, leader.replica.ballot))

    def _fail_pending(self) -> None:
        self._queued.fail_all()

    def _leadership_may_have_changed(self) -> None:
        if self._queued.owner is None:
            return
        node, ballot = self._queued.owner
        driver = self.drivers.get(node)
        if driver is None or not driver.is_leader or driver.replica.ballot != ballot:
            self._fail_pending()

    # ----------------------------------------------- DriverListener (callbacks)

    def applied(self, driver: ReplicaDriver, entries: tuple[LogEntry, ...]) -> None:
        owner = self._queued.owner
        if owner is None or owner[0] != driver.node_id:
            return
        self._queued.settle(entries, owner[1])

    def role_changed(self, driver: ReplicaDriver) -> None:
        self._usable_cache = None
        self._leadership_may_have_changed()

    # ----------------------------------------------------------- lifecycle

    async def hold_writes(self) -> bool:
        """Stop proposing: new writes wait (still visible to read_latest); True once
        every write proposed before is settled, so the leader's store holds them all."""
        assert self._held is None, "already holding"
        self._held = HeldWrites()
        deadline = time.monotonic() + DRAIN_S_MAX
        while (len(self._queued) or self._waiting) and time.monotonic() < deadline:
            await asyncio.sleep(LEADER_POLL_S)
        return not len(self._queued) and not self._waiting

    def release_held(self, route: "Callable[[bytes], Callable[[list[Write]], asyncio.Future]]") -> None:
        """Hand the held writes, in order, to the partitions `route(key)` names."""
        held, self._held = self._held, None
        if held is None:  # closed meanwhile: the close failed every held write already
            assert self._closed, "not holding"
            return
        self.writes_held_total += len(held)
        held.release(route)

    async def drain(self) -> None:
        """Wait until every proposed or waiting write has an answer (bounded)."""
        deadline = time.monotonic() + DRAIN_S_MAX
        while (len(self._queued) or self._waiting) and time.monotonic() < deadline:
            await asyncio.sleep(LEADER_POLL_S)
        if self._waiter is not None:
            await asyncio.shield(self._waiter)

    async def aclose(self) -> None:
        """Stop every replica cleanly (tasks awaited, files closed)."""
        if self._closed:
            return
        self._closed = True
        self._fail_everything()
        tasks = [t for t in (self._waiter, self._healer_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for node, driver in list(self.drivers.items()):
            if driver is not None:
                self.drivers[node] = None
                await driver.close()

    def close(self) -> None:
        """Synchronous close for callers that cannot await (prefer `aclose`)."""
        if self._closed:
            return
        self._close_now()

    def _close_now(self) -> None:
        self._closed = True
        self._fail_everything()
        for task in (self._waiter, self._healer_task):
            if task is not None:
                task.cancel()
        for node, driver in list(self.drivers.items()):
            if driver is not None:
                self.drivers[node] = None
                driver.close_now()

    def _fail_everything(self) -> None:
        if self._held is not None:
            self._held.fail_all()
            self._held = None
        self._fail_pending()
        while self._waiting:
            _, _, future = self._waiting.popleft()
            if not future.done():
                future.set_exception(InternalServerError("Internal server error"))
