"""Snapshot images shipped in chunks, with real drivers (replication/image_transfer.py).

As in test_replication_driver.py: a group of three NodePartitions with a small
`compact_entries`, one follower stopped while the leader writes a few MB and
compacts its log, so the restarted follower can only catch up from an LMDB
image. Chunks are made small (64 KiB) so an image is dozens of them. Faults
are injected at the transport boundary: a network whose clients corrupt or
drop one chunk on its way. One test runs three drivers over real TCP with a
frame limit far below the image size.
"""
from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable

import pytest

from triplica.engine.log_entries import decode_entry, encode_entry
from triplica.replication import image_transfer, snapshot_stream
from triplica.replication.membership import Membership
from triplica.replication.driver import ReplicaDriver
from triplica.replication.options import ReplicaOptions
from triplica.transport.inprocess import InProcessClient, InProcessNetwork
from triplica.transport.tcp import TcpTransport

from tests.unit.group_harness import LocalGroup, image, run, until

FAST = ReplicaOptions(heartbeat_interval_ms=50, election_timeout_base_ms=300,
                      election_timeout_jitter_ms=100)
CHUNK_BYTES = 64 * 1024
VALUE_CHARS = 24 * 1024
ITEMS = 120  # ~3 MB of values: an image of ~45 chunks
CATCH_UP_S_MAX = 30.0


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(snapshot_stream, "CHUNK_BYTES", CHUNK_BYTES)


def value_text(i: int) -> str:
    return (f"{i:06d}" * (VALUE_CHARS // 6 + 1))[:VALUE_CHARS]


async def fill(partition: LocalGroup, items: int = ITEMS) -> None:
    """Write `items` large items, ten proposals at a time."""
    for start in range(0, items, 10):
        await asyncio.gather(*(partition.propose([(b"k%05d" % i, image(value_text(i)))])
                               for i in range(start, min(start + 10, items))))


def senders(partition: LocalGroup) -> list[image_transfer.ImageSender]:
    return [d.image_sender for d in partition.drivers.values() if d is not None]


def leftovers(directory: str) -> list[str]:
    return [name for name in os.listdir(directory)
            if name.startswith(("partial-", "outgoing-", "incoming-"))]


async def lag_and_catch_up(partition: LocalGroup) -> int:
    """Stop a follower, write past its log, restart it; returns it once it holds the leader's data."""
    leader = partition.leader()
    assert leader is not None
    follower = next(n for n in partition.drivers if n != leader.node_id)
    await partition.stop_replica(follower)
    await fill(partition)
    assert leader.replica.log.snapshot_index > 0  # the follower's next entry is gone from the log
    # Restart only once the leader ships an image: the entries queued for the
    # follower before that have been tried (and dropped) by then.
    await until(lambda: leader.image_sender.transfers_started >= 1)
    partition.start_replica(follower)
    await until(lambda: partition.contents(follower)[0] >= leader.applied_index, CATCH_UP_S_MAX)
    await partition.converged()
    return follower


def catch_up_by_image(directory: str, check: Callable[[LocalGroup, int], None],
                      network: InProcessNetwork | None = None) -> None:
    """Run `lag_and_catch_up`, then `check(partition, follower)`; no transfer files may remain."""
    async def scenario() -> None:
        partition = await LocalGroup(directory, options=FAST, compact_entries=20,
                                     network=network).start()
        try:
            check(partition, await lag_and_catch_up(partition))
        finally:
            await partition.close()
        for node in partition.replicas:  # no copy, partial or unused image left behind
            assert leftovers(partition.replica_directory(node)) == []
    run(scenario)


def test_a_lagging_replica_catches_up_from_an_image_of_many_chunks(tmp_path):
    def check(partition: LocalGroup, follower: int) -> None:
        leader = partition.leader()
        applied, items = partition.contents(follower)
        assert len(items) == ITEMS and dict(items)[b"k00007"] == image(value_text(7))
        assert (applied, items) == partition.contents(leader.node_id)
        assert partition.drivers[follower].store.stats() == leader.store.stats()
        sent = sum(s.chunks_sent for s in senders(partition))
        assert sent >= 3_000_000 // CHUNK_BYTES  # the image went as dozens of chunks
        assert partition.drivers[follower].image_receiver.images_sealed >= 1
    catch_up_by_image(str(tmp_path), check)


class FaultyNetwork(InProcessNetwork):
    """An in-process network whose clients pass every batch through `fault` first.

    `fault(wire)` sees each message wire leaving a driver (a node mesh sends
    `[group, replica, wires]`) and returns the wire to deliver instead, or None to
    drop it (a lost or mangled frame).
    """

    fault: Callable[[tuple], tuple | None] = staticmethod(lambda wire: wire)

    def client(self, address):
        return _FaultyClient(self, address)


class _FaultyClient(InProcessClient):
    async def send(self, message, deadline_s=1.0):
        group, replica, wires = message
        kept = [w for w in (self._network.fault(wire) for wire in wires) if w is not None]
        if kept:
            await super().send([group, replica, kept], deadline_s)


class ChunkFaults:
    """Corrupts the 5th chunk of one transfer, then drops the 9th chunk of a later one."""

    def __init__(self) -> None:
        self.planned = [(5, "flip"), (9, "drop")]
        self.seen: dict[int, int] = {}  # chunks per transfer id
        self.injected: list[str] = []

    def __call__(self, wire: tuple) -> tuple | None:
        if wire[0] != snapshot_stream.CHUNK_KIND:
            return wire
        transfer_id = wire[5]
        self.seen[transfer_id] = count = self.seen.get(transfer_id, 0) + 1
        if not self.planned or self.planned[0][0] != count:
            return wire
        _, fault = self.planned.pop(0)
        self.injected.append(fault)
        if fault == "drop":
            return None
        data = bytearray(wire[9])
        data[len(data) // 2] ^= 0x40
        return wire[:9] + (bytes(data),)


def test_a_corrupted_or_lost_chunk_discards_the_transfer_and_a_retry_succeeds(tmp_path, monkeypatch):
    faults = ChunkFaults()
    monkeypatch.setattr(FaultyNetwork, "fault", staticmethod(faults))

    def check(partition: LocalGroup, follower: int) -> None:
        assert faults.injected == ["flip", "drop"]
        assert len(faults.seen) >= 3  # two abandoned, then a clean one
        assert sum(s.transfers_aborted for s in senders(partition)) >= 2
        receiver = partition.drivers[follower].image_receiver
        assert receiver.transfers_discarded >= 2 and receiver.images_sealed >= 1
        assert receiver.incomplete_transfers == 0
        assert partition.contents(follower) == partition.contents(partition.leader().node_id)
    catch_up_by_image(str(tmp_path), check, FaultyNetwork())


def test_the_sender_holds_one_chunk_and_a_bounded_window_however_slow_the_receiver(tmp_path, monkeypatch):
    write_chunk = image_transfer._write_chunk

    def slow_disk(path: str, offset: int, data: bytes) -> None:
        time.sleep(0.005)  # the receiver's disk is the bottleneck: the window must fill
        write_chunk(path, offset, data)

    monkeypatch.setattr(image_transfer, "_write_chunk", slow_disk)

    def check(partition: LocalGroup, follower: int) -> None:
        shipping = [s for s in senders(partition) if s.chunks_sent]
        assert shipping and sum(s.chunks_sent for s in shipping) >= 40
        for sender in shipping:
            assert sender.chunks_held_peak == 1 and sender.chunks_held == 0
            assert sender.chunks_unacked_peak == snapshot_stream.CHUNKS_UNACKED_MAX
        receiver = partition.drivers[follower].image_receiver
        assert 1 <= receiver.chunks_waiting_peak <= snapshot_stream.CHUNKS_UNACKED_MAX
    catch_up_by_image(str(tmp_path), check)


# ----------------------------------------------------------------- over TCP

FRAME_BYTES_MAX = 512 * 1024  # the image below is several times this
TCP_OPTIONS = ReplicaOptions(heartbeat_interval_ms=50, election_timeout_base_ms=300,
                             election_timeout_jitter_ms=100, accept_batch_entries_max=8)


def free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def test_an_image_larger_than_a_frame_crosses_real_tcp(tmp_path):
    transport = TcpTransport(frame_bytes_max=FRAME_BYTES_MAX)
    addresses = {n: ("127.0.0.1", port) for n, port in zip((1, 2, 3), free_ports(3))}

    def make(node: int) -> ReplicaDriver:
        return ReplicaDriver(node_id=node, group=1, membership=Membership.of([1, 2, 3]),
                             directory=str(tmp_path / f"r{node}"), network=transport,  # type: ignore[arg-type]
                             addresses=addresses, sync_mode="none", decode=decode_entry,
                             options=TCP_OPTIONS, compact_entries=20)

    def leader_of(drivers: dict[int, ReplicaDriver]) -> ReplicaDriver | None:
        return next((d for d in drivers.values() if d.running and d.read_allowed()), None)

    async def write(drivers: dict[int, ReplicaDriver], i: int) -> None:
        while True:
            await until(lambda: leader_of(drivers) is not None)
            leader = leader_of(drivers)
            index = leader.propose(encode_entry([(b"k%05d" % i, image(value_text(i)))]))
            if index is not None:
                await until(lambda: leader.applied_index >= index)
                return

    async def scenario() -> None:
        drivers = {n: make(n) for n in addresses}
        try:
            for driver in drivers.values():
                driver.start()
            await until(lambda: leader_of(drivers) is not None)
            follower = next(n for n in drivers if n != leader_of(drivers).node_id)
            await drivers[follower].close()
            for i in range(ITEMS):
                await write(drivers, i)
            leader = leader_of(drivers)
            assert leader.replica.log.snapshot_index > 0
            drivers[follower] = make(follower)
            drivers[follower].start()
            scan = lambda n: list(drivers[n].store.scan(b"", None))  # noqa: E731
            await until(lambda: drivers[follower].applied_index >= leader.applied_index
                        and scan(follower) == scan(leader.node_id), CATCH_UP_S_MAX)
            assert len(scan(follower)) == ITEMS
            shipped = sum(d.image_sender.bytes_sent for d in drivers.values())
            assert shipped > 4 * FRAME_BYTES_MAX
        finally:
            for driver in drivers.values():
                if driver.running:
                    await driver.close()
    run(scenario)
