"""Reading a data directory of the release before the one engine (format 1, commit 092fafc).

That release's `triplica serve` kept one catalogue for the whole server and
each partition in a directory of its own:

    D/catalog.json                        every table: definition and partitions
                                          (the format engine/catalogue.py still reads)
    D/tables/<table id>/<partition id>/   one partition (a hash range), either
        wal/ items/                       `--replicas 1`: a WAL (storage/wal.py) and an
                                          LMDB store (storage/lmdb_store.py) holding the
                                          entries applied so far, or
        az-a/ az-b/ az-c/ [replicas.json] `--replicas 3`: one Paxos group, a replica per
                                          directory, each a log (replication/paxos_log.py)
                                          and a store; replicas.json, written once healing
                                          changed the group, names them and their ids

Every on-disk format below the catalogue is the one the current code reads
(`git diff 092fafc -- src/triplica/storage src/triplica/replication`: paths
and names moved, no record or key changed), so recovery is the current code:

- a single partition: an acknowledged write is in the WAL (fsynced before
  the answer) but maybe not in LMDB (written without fsync); replaying the
  WAL beyond the store's applied index, as the old Partition did at start,
  gives every acknowledged write;
- a replicated partition: an acknowledged write is in the logs of two of the
  three replicas, maybe committed in none of their stores, maybe not even
  known as committed to the replica that survived. Reading the logs directly
  would have to redo Paxos recovery (which accepted value of which ballot was
  chosen); instead the group runs again, with the current replication code
  on an in-process network, the node ids and membership the old roster gave
  and the old group id: an elected leader serves reads only once its own
  fence entry is applied, so from then on its store holds every chosen entry.

Both write to the directories they open (a WAL's torn tail is cut, entries
are applied, a leader is elected), so the caller opens copies, never the
operator's files. Items are read back per partition, bounded to the
partition's hash range: a store never holds keys outside it, except a split
parent's leftovers, which the catalogue no longer names and which are not read.
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from triplica.engine.catalogue import (CATALOGUE_FILE_NAME, CATALOGUE_FORMAT_VERSION, Catalogue,
                                       PartitionInfo, TableInfo)
from triplica.engine.log_entries import decode_entry, stored_item_size
from triplica.model.partition_map import HASH_SPACE_END
from triplica.replication.driver import ReplicaDriver
from triplica.replication.membership import Membership
from triplica.replication.options import ReplicaOptions
from triplica.replication.replica_files import ReplicaDamagedError
from triplica.storage.files import read_json
from triplica.storage.lmdb_store import PartitionStore
from triplica.storage.wal import WriteAheadLog
from triplica.transport.inprocess import InProcessNetwork

TABLES_DIRECTORY = "tables"
ROSTER_FILE = "replicas.json"
OLD_ZONES = ("az-a", "az-b", "az-c")
OLD_GROUP_ID = 1  # engine/replicated_partition.py's GROUP_ID at 092fafc
WAL_DIRECTORY = "wal"
ITEMS_DIRECTORY = "items"
REPLAY_BATCH_ENTRIES_MAX = 1024
LEADER_WAIT_S_MAX = 30.0
LEADER_POLL_S = 0.01
# Short timers: nothing else runs in these groups, and an election after a restart
# waits one election timeout (the restart guard of replication/options.py).
RECOVERY_OPTIONS = ReplicaOptions(heartbeat_interval_ms=50, election_timeout_base_ms=200,
                                  election_timeout_jitter_ms=100)


class LegacyLayoutError(Exception):
    """The old directory can't be read (the message says which part and why)."""


@dataclass(frozen=True)
class OldReplica:
    node: int
    directory: str        # relative to the partition directory
    initial_member: bool  # a member of the group's first configuration


def is_legacy(data_dir: str) -> bool:
    return os.path.isfile(os.path.join(data_dir, CATALOGUE_FILE_NAME))


def read_tables(data_dir: str) -> list[TableInfo]:
    """Every table of the old catalogue, with the partitions it names (no split intents:
    the children of an unfinished split never took a write, engine/table_splits.py)."""
    path = os.path.join(data_dir, CATALOGUE_FILE_NAME)
    try:
        version = read_json(path).get("version")
        if version != CATALOGUE_FORMAT_VERSION:
            raise LegacyLayoutError(f"{path}: catalogue format {version!r}, this command "
                                    f"knows {CATALOGUE_FORMAT_VERSION}; nothing was changed")
        catalogue = Catalogue(data_dir)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise LegacyLayoutError(f"{path}: not a catalogue this command can read ({error!r}); "
                                "nothing was changed") from None
    return sorted(catalogue.tables.values(), key=lambda info: info.name)


def partition_directory(data_dir: str, info: TableInfo, partition: PartitionInfo) -> str:
    return os.path.join(data_dir, TABLES_DIRECTORY, info.table_id, partition.partition_id)


def is_replicated(directory: str) -> bool:
    """A Paxos group's directory (--replicas 3), not a WAL + LMDB one (--replicas 1)."""
    if os.path.isdir(os.path.join(directory, WAL_DIRECTORY)):
        return False
    return os.path.exists(os.path.join(directory, ROSTER_FILE)) or any(
        os.path.isdir(os.path.join(directory, zone)) for zone in OLD_ZONES)


async def recover(directory: str) -> str:
    """Bring a (copied) partition up to every acknowledged write; the store that holds them."""
    if not os.path.isdir(directory):
        return ""  # a partition that never held a write (created, never opened)
    if is_replicated(directory):
        return await _settle_group(directory)
    return _replay_wal(directory)


def items_of(store_path: str, partition: PartitionInfo) -> Iterator[dict[str, Any]]:
    """The items of one recovered partition, in storage-key order (wire JSON)."""
    if not store_path:
        return
    low = partition.hash_start.to_bytes(8, "big")
    high = None if partition.hash_end == HASH_SPACE_END else partition.hash_end.to_bytes(8, "big")
    store = PartitionStore(store_path, value_size=stored_item_size)
    try:
        for _, image in store.scan(low, high):
            yield orjson.loads(memoryview(image)[4:])  # u32 size || JSON (item_access.py)
    finally:
        store.close()


# ------------------------------------------------------------------ --replicas 1

def _replay_wal(directory: str) -> str:
    """The old Partition's recovery: WAL entries past the applied index into LMDB."""
    items = os.path.join(directory, ITEMS_DIRECTORY)
    store = PartitionStore(items, value_size=stored_item_size)
    wal = WriteAheadLog(os.path.join(directory, WAL_DIRECTORY), sync_mode="none")
    try:
        batch: list[tuple[int, list]] = []
        for index, payload in wal.replay(store.applied_index()):
            batch.append((index, decode_entry(payload)))
            if len(batch) >= REPLAY_BATCH_ENTRIES_MAX:
                store.apply_batch(batch)
                batch = []
        if batch:
            store.apply_batch(batch)
        if store.applied_index() < wal.last_index():
            raise LegacyLayoutError(f"{directory}: the store stops at entry "
                                    f"{store.applied_index()} but the WAL at {wal.last_index()}")
    finally:
        wal.close()
        store.close()
    return items


# ------------------------------------------------------------------ --replicas 3

def old_roster(directory: str) -> tuple[list[OldReplica], list[int]]:
    """The group's replicas and its first configuration (engine/replica_roster.py at
    092fafc: no replicas.json means replicas 1..3 in az-a, az-b, az-c)."""
    path = os.path.join(directory, ROSTER_FILE)
    if not os.path.exists(path):
        replicas = [OldReplica(n, zone, True) for n, zone in enumerate(OLD_ZONES, 1)
                    if os.path.isdir(os.path.join(directory, zone))]
        return replicas, [1, 2, 3]
    document = read_json(path)
    initial = [int(n) for n in document["initial"]]
    replicas = [OldReplica(int(e["node"]), str(e["directory"]), int(e["node"]) in initial)
                for e in document["replicas"] if not e["log_replica"]]
    logs = [OldReplica(int(e["node"]), str(e["directory"]), int(e["node"]) in initial)
            for e in document["replicas"] if e["log_replica"]]
    return replicas + logs, initial


async def _settle_group(directory: str) -> str:
    """Run the old group until a leader has applied everything chosen; its store's path."""
    replicas, initial = old_roster(directory)
    network = InProcessNetwork()
    addresses = {r.node: (r.directory, r.node) for r in replicas}
    drivers: list[ReplicaDriver] = []
    damaged: list[str] = []
    try:
        for replica in replicas:
            try:
                drivers.append(ReplicaDriver(
                    node_id=replica.node, group=OLD_GROUP_ID,
                    membership=Membership.of(initial) if replica.initial_member else None,
                    directory=os.path.join(directory, replica.directory), network=network,
                    addresses=addresses, sync_mode="none", decode=decode_entry,
                    options=RECOVERY_OPTIONS, value_size=stored_item_size))
            except ReplicaDamagedError as error:
                damaged.append(f"{replica.directory}: {error.reason}")
        for driver in drivers:
            driver.start()
        leader = await _full_leader(drivers)
        if leader is None:
            raise LegacyLayoutError(
                f"{directory}: no replica could lead the group within {LEADER_WAIT_S_MAX:.0f} s "
                f"({len(drivers)} of {len(replicas)} replicas open"
                + (f"; damaged: {'; '.join(damaged)}" if damaged else "") + ")")
        return os.path.join(leader.directory, ITEMS_DIRECTORY)
    finally:
        for driver in drivers:
            await driver.close()


async def _full_leader(drivers: list[ReplicaDriver]) -> ReplicaDriver | None:
    """The leader that may serve reads (its fence entry applied), with a full store."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LEADER_WAIT_S_MAX
    while loop.time() < deadline:
        for driver in drivers:
            if driver.is_leader and driver.read_allowed() and not driver.replica.is_log_replica:
                return driver
        await asyncio.sleep(LEADER_POLL_S)
    return None
