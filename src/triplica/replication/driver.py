"""The asyncio driver of one replica: clock, disk, network and state machine.

It runs the sans-I/O `Replica` core exactly as the simulator does
(sim/cluster.py), through the same Ready processing (ready_loop.py): tick
before step, then loop over `ready()`:

    persist hard state / snapshot / entries   (PaxosLog, one fsync, worker thread;
                                               a commit-index-only hard state waits
                                               for the next append, see ready_loop.py)
    send messages                             (in-process peer inboxes, or per-peer
                                               bounded outboxes on the transport)
    install the snapshot if asked             (swap the LMDB environment)
    apply committed entries                   (PartitionStore: items + applied index, one txn)
    advance

Only one Ready is in flight at a time; proposals and messages that arrive
during an fsync accumulate in the core and go out in the next Ready, which
is the group commit. The fsync runs in the driver's own worker thread so the
event loop keeps serving reads, ticks and other replicas.

Time is `loop.time()` in integer ms. The core is ticked when it asks
(`Replica.next_tick_ms`: the next heartbeat, election or step-down deadline,
one `loop.call_at` timer), before each Ready, and before each batch of
received messages; an idle group therefore costs one wake-up per heartbeat,
not a periodic tick per replica. All three replicas of `triplica serve` share
one clock, so the drift bound of options.py holds trivially here.

In-process peers: the driver hands each message to its peer's client with
`try_local` first (transport/base.py). When the peer's driver lives in this
process and its server is on the network (so a test that takes a server off
the network still partitions it), the message goes straight into the peer's
bounded inbox as the frozen dataclass it is (immutable, so sharing it is
safe), skipping msgpack and the transport's tasks; the peer steps it in one
`call_soon` callback. Over TCP `try_local` is always False. Messages carrying a snapshot still
take the transport (they must ship the LMDB image). A Ready that needs no
disk (messages only, e.g. heartbeats and their answers) is handled inline
when the Ready loop is idle.

Snapshots (catch-up of a replica behind the leader's compacted log): the
core's snapshot `data` is a small token naming the index. Local compaction
only needs the LMDB environment to be durable at or past that index
(`checkpoint`), so it costs one env sync, not a copy. When a snapshot must
leave the node (InstallSnapshot, or a Promise carrying one), the sender
copies its LMDB environment (`copy_to`) and ships the file's bytes. The copy
is taken at the sender's applied index j >= the snapshot's index i; that is
safe because entries carry absolute item images and every j <= commit: the
receiver installs state S_j, tells the core it holds i, and skips re-applied
entries <= j (the store's applied index guards every apply). Images travel
as a stream of bounded chunks ahead of the core's message, on the same
per-peer send path (snapshot_stream.py has the protocol, image_transfer.py
the file work): the send loop reads the copy one chunk at a time, at most
a few unacknowledged, forwarding the peer's other messages meanwhile; the
receiver writes each checksummed chunk at its offset into a partial file
and hands the core the message, with a token for the image, only if that
file is complete; otherwise the message is dropped and the leader resends
its snapshot later. No image is ever whole in memory or in one frame. A log
replica gets a stub store instead of a copy (replica_files.py). The files
themselves (log, store, applying, installing an image) are replica_files.py.

Bounds: every outbox is bounded (a full one drops the message: Paxos
tolerates loss, heartbeats resend); the Ready loop handles at most
READY_ROUNDS_MAX Readies before yielding. Every task is owned by the driver
and cancelled and awaited by `close()`.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol

from triplica.replication.membership import Membership
from triplica.replication.image_transfer import ImageReceiver, ImageSender, remove_interrupted
from triplica.replication.log import HardState, LogEntry, Snapshot
from triplica.replication.messages import Message, message_from_wire, message_to_wire
from triplica.replication.options import ReplicaOptions
from triplica.replication.ready_loop import ReadyLoop
from triplica.replication.replica import Ready, Replica
from triplica.replication.snapshot_stream import ACK_KIND, DRIVER_KINDS, ChunkAck, SnapshotChunk, StreamFormatError
from triplica.replication.replica_files import ReplicaFiles, write_stub
from triplica.storage.lmdb_store import PartitionStore, SecondaryIndexer
from triplica.storage.index_outbox import DeltaSourceOf
from triplica.replication.paxos_log import PaxosLog
from triplica.transport.base import Address, Transport, TransportError

log = logging.getLogger(__name__)

TICK_S_MIN = 0.001  # never schedule the tick timer closer than this
READY_ROUNDS_MAX = 64
OUTBOX_MESSAGES_MAX = 4096
INBOX_MESSAGES_MAX = 4096  # direct in-process deliveries waiting for their step
SEND_BATCH_MESSAGES_MAX = 256
SEND_DEADLINE_S = 0.5
COMPACT_ENTRIES_DEFAULT = 20_000
SNAPSHOT_TOKEN_PREFIX = b"lmdb-token:"

Decode = Callable[[bytes], list]


class DriverListener(Protocol):
    """What the owner of a driver hears about (all called on the event loop)."""

    def applied(self, driver: "ReplicaDriver", entries: tuple[LogEntry, ...]) -> None: ...

    def role_changed(self, driver: "ReplicaDriver") -> None: ...


def snapshot_token(index: int) -> bytes:
    return SNAPSHOT_TOKEN_PREFIX + str(index).encode()


class ReplicaDriver:
    """One replica (core + PaxosLog + PartitionStore) on the running event loop."""

    def __init__(self, *, node_id: int, group: int, membership: Membership | None, directory: str,
                 network: Transport, addresses: dict[int, Address], sync_mode: str,
                 decode: Decode, listener: DriverListener | None = None,
                 options: ReplicaOptions = ReplicaOptions(),
                 value_size: Callable[[bytes], int] = len,
                 compact_entries: int = COMPACT_ENTRIES_DEFAULT,
                 start_ms: int | None = None,
                 indexer: SecondaryIndexer | None = None,
                 global_of: DeltaSourceOf | None = None) -> None:
        """`membership`: the group's initial configuration, or None for a replica
        joining an existing group (it learns its configuration from the log or
        a snapshot). `addresses`: every peer it may have to reach; members that
        join later are added with `add_peer`.
        `start_ms`: the core's clock at creation; only a brand-new group (one
        that never ran, possibly starting from a snapshot) may back-date it
        (see ReplicatedPartition._bootstrap), never a restart."""
        assert node_id in addresses and compact_entries >= 1
        self.node_id = node_id
        self.directory = directory
        self._loop = asyncio.get_running_loop()
        self._network = network
        self._address = addresses[node_id]
        self._addresses = dict(addresses)
        self._sync_mode = sync_mode
        self._decode = decode
        self._listener = listener
        self._compact_entries = compact_entries
        os.makedirs(directory, exist_ok=True)
        self.files = ReplicaFiles(directory, sync_mode, value_size, indexer, global_of)
        persisted = self.log.state()
        now_ms = self.now_ms()
        # A new group may hold a snapshot (a split child starts from its parent's
        # image) but has never promised anything or logged an entry.
        assert start_ms is None or (start_ms <= now_ms and persisted.hard_state == HardState()
                                    and not persisted.entries)
        self.replica = Replica(node_id, group, membership, random.Random(),
                               now_ms if start_ms is None else start_ms, options, persisted)
        self._ready_loop = ReadyLoop(self.replica, send=self._send, install=self._install,
                                     apply=self._apply, durable_hard_state=self._durable_hard_state,
                                     finished=self._after_ready)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"paxos-{node_id}")
        self._server = network.server(self._address, self._on_batch, self._deliver_local)
        self._clients = {peer: network.client(address) for peer, address in addresses.items()
                         if peer != node_id}
        self._outboxes: dict[int, asyncio.Queue] = {
            peer: asyncio.Queue(OUTBOX_MESSAGES_MAX) for peer in self._clients}
        self._wake = asyncio.Event()
        self._busy = False  # the Ready loop is processing (a Ready may be in flight)
        self._parked: Ready | None = None  # a Ready taken by an idle tick, for the loop
        self._tasks: list[asyncio.Task] = []
        self._tick_handle: asyncio.TimerHandle | None = None
        self._tick_due_ms = 0
        self._inbox: deque[Message] = deque()
        self._inbox_scheduled = False
        self._role_seen = (False, None)
        remove_interrupted(directory)
        self.image_sender = ImageSender(directory, self._executor, self._image_for)
        self.image_receiver = ImageReceiver(directory, self._executor)
        self.running = False
        self.failure: BaseException | None = None
        self.dropped_messages = 0

    @property
    def log(self) -> PaxosLog:
        return self.files.log

    @property
    def store(self) -> PartitionStore:
        store = self.files.store
        assert store is not None
        return store

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        assert not self.running and not self._tasks
        self.running = True
        self._tasks.append(self._loop.create_task(self._run()))
        for peer in self._clients:
            self._tasks.append(self._loop.create_task(self._send_loop(peer)))
        self._schedule_tick()
        self._wake.set()

    def add_peer(self, node: int, address: Address) -> None:
        """Make a new member reachable (a replica joining the group)."""
        if node == self.node_id or node in self._clients:
            return
        self._addresses[node] = address
        self._clients[node] = self._network.client(address)
        self._outboxes[node] = asyncio.Queue(OUTBOX_MESSAGES_MAX)
        if self.running:
            self._tasks.append(self._loop.create_task(self._send_loop(node)))

    async def close(self) -> None:
        """Stop (like a power-off of this replica, minus losing the page cache)."""
        was_running = self.running
        self.running = False
        self._forget_local()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._server.close()
        for client in self._clients.values():
            await client.close()
        await asyncio.to_thread(self._executor.shutdown, True)
        self.files.close()
        if was_running:
            self._notify_role()

    def close_now(self) -> None:
        """Synchronous best-effort close, for callers that cannot await `close()`.

        Tasks are cancelled (they never touch the files again), the server is
        taken off the network, the worker thread finishes its current fsync.
        """
        self.running = False
        self._forget_local()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        for task in self._tasks:
            task.cancel()
        self._server.stop_now()
        self._executor.shutdown(wait=True)
        self.files.close()

    def lease_read_allowed(self) -> bool:
        """read_allowed for a driver that is not started yet (bootstrap)."""
        return self.replica.read_allowed(self.now_ms())

    # ---------------------------------------------------------------- clock

    def now_ms(self) -> int:
        return int(self._loop.time() * 1000)

    def _on_tick(self) -> None:
        self._tick_handle = None
        if not self.running:
            return
        self.replica.tick(self.now_ms())
        self._pump()

    def _schedule_tick(self) -> None:
        """Make the timer fire by the core's next deadline (earlier is harmless)."""
        if not self.running:
            return
        due_ms = self.replica.next_tick_ms()
        if self._tick_handle is not None:
            if self._tick_due_ms <= due_ms:
                return
            self._tick_handle.cancel()
        self._tick_due_ms = due_ms
        # +1 ms: now_ms() floors, and the core acts once its clock reaches due_ms.
        when_s = max((due_ms + 1) / 1000, self._loop.time() + TICK_S_MIN)
        self._tick_handle = self._loop.call_at(when_s, self._on_tick)

    def _pump(self) -> None:
        """After feeding the core: hand its output on, then re-arm the timer.

        While the Ready loop is busy (or has work queued) it picks the output
        up itself. Otherwise a Ready that needs no disk and applies nothing
        (heartbeats and their answers) is sent right here, without waking the
        loop task; the first one that does need them is parked for the task.
        """
        if self._busy or self._wake.is_set() or self._parked is not None:
            self._wake.set()
        else:
            try:
                parked = self._ready_loop.settle(READY_ROUNDS_MAX, stop_at_install=True,
                                                 stop_when_idle=True, strict=False)
            except Exception as error:  # a disk failure or a bug: stop this replica
                self._fail(error)
                return
            if parked is not None:
                self._parked = parked
                self._wake.set()
            if self._compaction_due():
                self._wake.set()
        self._notify_role()
        self._schedule_tick()

    # ----------------------------------------------------------- interface

    def propose(self, data: bytes) -> int | None:
        """Append a command if this replica leads; returns its index or None."""
        if not self.running:
            return None
        # No tick here: the Ready loop ticks right before the round that
        # sends this entry, so its send time (lease start) is fresh.
        index = self.replica.propose(data)
        if index is not None:
            self._wake.set()
        self._notify_role()
        return index

    def propose_membership(self, membership: Membership) -> int | None:
        """Start a one-member configuration change if this replica leads (see Replica)."""
        if not self.running:
            return None
        self.replica.tick(self.now_ms())
        index = self.replica.propose_membership(membership)
        if index is not None:
            self._wake.set()
        return index

    def read_allowed(self) -> bool:
        return self.running and self.replica.read_allowed(self.now_ms())

    @property
    def is_leader(self) -> bool:
        return self.running and self.replica.is_leader

    @property
    def applied_index(self) -> int:
        return self.store.applied_index()

    # ------------------------------------------------------------- inbound

    def _deliver_local(self, message: Message) -> bool:
        """A peer in this process hands us a message (see the module docstring)."""
        if not self.running:
            return False
        if len(self._inbox) >= INBOX_MESSAGES_MAX:
            self.dropped_messages += 1  # like a full outbox: Paxos tolerates loss
            return True
        self._inbox.append(message)
        if not self._inbox_scheduled:
            self._inbox_scheduled = True
            self._loop.call_soon(self._step_inbox)
        return True

    def _step_inbox(self) -> None:
        self._inbox_scheduled = False
        if not self.running:
            self._inbox.clear()
            return
        self.replica.tick(self.now_ms())  # tick before step
        while self._inbox:
            self.replica.step(self._inbox.popleft())
        self._pump()

    def _forget_local(self) -> None:
        self._inbox.clear()

    async def _on_batch(self, batch: list) -> None:
        if not self.running:
            return
        ticked_ms = -1
        for wire in batch:
            if wire[0] in DRIVER_KINDS:
                await self._on_image_wire(wire)
                continue
            message = message_from_wire(wire)
            if message.to != self.node_id:
                continue
            snapshot = getattr(message, "snapshot", None)
            if snapshot is not None:
                message = await self._receive_snapshot(message, snapshot)
                if message is None or not self.running:
                    continue
            now_ms = self.now_ms()
            if now_ms != ticked_ms:  # tick before step, once per ms of receipt time
                self.replica.tick(now_ms)
                ticked_ms = now_ms
            self.replica.step(message)
        self._pump()

    async def _on_image_wire(self, wire: list) -> None:
        """A chunk of an image coming in (write it, acknowledge it) or an ack of ours."""
        try:
            if wire[0] == ACK_KIND:
                self.image_sender.on_ack(ChunkAck.from_wire(wire))
                return
            chunk = SnapshotChunk.from_wire(wire)
        except StreamFormatError as error:
            log.warning("replica %s: %s", self.node_id, error)
            return
        if chunk.to != self.node_id:
            return
        needed = chunk.index > self.replica.commit_index  # else the core would ignore it
        status, received = await self.image_receiver.on_chunk(chunk, needed)
        if self.running:
            self._enqueue(chunk.sender, ChunkAck(self.node_id, chunk.sender, chunk.group,
                                                 chunk.transfer_id, received, status))

    async def _receive_snapshot(self, message: Message, snapshot: Snapshot) -> Message | None:
        """Seal the image streamed ahead of `message`; hand the core a token instead.

        A snapshot at or below our commit index is ignored by the core: it
        steps without an image. Otherwise no complete image, no message.
        """
        needed = snapshot.index > self.replica.commit_index
        if not await self.image_receiver.finish(message.sender, snapshot, needed) and needed:
            return None
        token = replace(snapshot, data=snapshot_token(snapshot.index))
        return replace(message, snapshot=token)

    # ------------------------------------------------------------ outbound

    def _send(self, messages: tuple[Message, ...]) -> None:
        for message in messages:
            if getattr(message, "snapshot", None) is None:
                client = self._clients.get(message.to)
                if client is not None and client.try_local(message):
                    continue
            self._enqueue(message.to, message)

    def _enqueue(self, peer: int, message: Message | ChunkAck) -> None:
        outbox = self._outboxes.get(peer)
        if outbox is None:
            return
        try:
            outbox.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped_messages += 1

    async def _send_loop(self, peer: int) -> None:
        """Send `peer`'s outbox in order; a snapshot's image streams ahead of its message."""
        outbox = self._outboxes[peer]
        while True:
            batch = [await outbox.get()]
            while not outbox.empty() and len(batch) < SEND_BATCH_MESSAGES_MAX:
                batch.append(outbox.get_nowait())
            wires = []
            for message in batch:
                snapshot = getattr(message, "snapshot", None)
                if snapshot is None:
                    wires.append(_to_wire(message))
                    continue
                await self._send_wires(peer, wires)  # what was queued first goes first
                wires = []
                final = await self.image_sender.ship(
                    message, snapshot, lambda chunk: self._send_wires(peer, chunk),
                    lambda: self._forward(peer))
                if final is not None:
                    wires.append(message_to_wire(final))
            await self._send_wires(peer, wires)

    async def _forward(self, peer: int) -> None:
        """While an image streams to `peer`: send its other queued messages.

        Another snapshot for it is dropped: one image at a time per peer, and
        the leader resends its snapshot if the peer still needs one.
        """
        outbox, wires = self._outboxes[peer], []
        while not outbox.empty() and len(wires) < SEND_BATCH_MESSAGES_MAX:
            message = outbox.get_nowait()
            if getattr(message, "snapshot", None) is not None:
                self.dropped_messages += 1
            else:
                wires.append(_to_wire(message))
        await self._send_wires(peer, wires)

    async def _send_wires(self, peer: int, wires: list) -> bool:
        """Hand `wires` to the transport in one batch; False (and counted) if it failed."""
        if not wires:
            return True
        try:
            await self._clients[peer].send(wires, SEND_DEADLINE_S)
        except (TransportError, TypeError) as error:
            self.dropped_messages += len(wires)
            log.debug("replica %s: send to %s failed: %s", self.node_id, peer, error)
            return False
        return True

    # ---------------------------------------------------------- Ready loop

    async def _run(self) -> None:
        await self._server.start()
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._busy = True
            try:
                for _ in range(READY_ROUNDS_MAX):
                    if self._parked is not None:
                        ready, self._parked = self._parked, None
                    else:
                        self.replica.tick(self.now_ms())  # fresh send times for this round
                        ready = self.replica.ready()
                    if ready.empty:
                        break
                    await self._process(ready)
                else:
                    self._wake.set()  # more to do: let the loop breathe first
                await self._maybe_compact()
                self._busy = False
                self._schedule_tick()
            except asyncio.CancelledError:
                raise
            except BaseException as error:  # disk failure or a bug: stop this replica
                self._fail(error)
                return

    def fail(self, error: BaseException) -> None:
        """Stop as the step loop does on a disk failure (fault injection)."""
        if self.running:
            self._fail(error)
            for task in self._tasks:
                task.cancel()

    def _fail(self, error: BaseException) -> None:
        log.error("replica %s failed; stopping it", self.node_id, exc_info=error)
        self.failure = error
        self.running = False
        self._forget_local()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        self._notify_role()

    async def _process(self, ready: Ready) -> None:
        loop = self._ready_loop
        if loop.needs_disk(ready):
            hard_state, entries, snapshot = loop.to_persist(ready)
            if self._sync_mode == "none":
                self.log.persist(hard_state, entries, snapshot)
            else:
                await self._loop.run_in_executor(self._executor, self.log.persist,
                                                 hard_state, entries, snapshot)
        else:
            loop.skip_disk(ready)
        loop.finish(ready)

    def _durable_hard_state(self) -> HardState:
        return self.log.hard_state

    def _install(self, snapshot: Snapshot) -> None:
        self.files.install_image(snapshot.index)

    def _apply(self, entries: tuple[LogEntry, ...]) -> None:
        self.files.apply(entries, self._decode)

    def _after_ready(self, ready: Ready) -> None:
        """After each Ready's advance: tell the owner."""
        self._notify_role()
        if ready.committed_entries and self._listener is not None:
            self._listener.applied(self, ready.committed_entries)

    def _image_for(self, message: Message, snapshot: Snapshot) -> tuple[Callable[[str], None], bool]:
        """What to ship to a peer behind the compacted log (called on the event loop).

        A log replica never reads the B-tree, so it gets a stub store (an
        empty LMDB holding only the snapshot's index, a few KB) instead of a
        copy: a log replica added for an unhealthy member is caught up in
        milliseconds, which is what lets the group count it as a voter at once
        (replacement.py). Roles come from the newest configuration this leader
        knows; a stub store refuses to act as a full replica (`_apply`).
        """
        config = self.replica.pending_config or self.replica.committed_config
        if config is not None and message.to in config.log_replicas:
            return functools.partial(write_stub, index=snapshot.index), True
        return self.store.copy_to, False

    def _compaction_due(self) -> bool:
        replica = self.replica
        return (not replica.is_log_replica
                and replica.applied_index - replica.log.snapshot_index >= self._compact_entries)

    async def _maybe_compact(self) -> None:
        replica = self.replica
        if not self._compaction_due():
            return
        index = replica.applied_index
        assert self.store.applied_index() >= index
        await self._loop.run_in_executor(self._executor, self.store.checkpoint)
        replica.compact(index, snapshot_token(index))
        self._wake.set()

    # ------------------------------------------------------------ helpers

    def _notify_role(self) -> None:
        leading = self.running and self.replica.is_leader
        seen = (leading, self.replica.ballot if leading else None)
        if seen != self._role_seen:
            self._role_seen = seen
            if self._listener is not None:
                self._listener.role_changed(self)


def _to_wire(message: Message | ChunkAck) -> tuple:
    return message.to_wire() if isinstance(message, ChunkAck) else message_to_wire(message)
