"""One replica's durable state: its Paxos log and its LMDB store, on disk.

`ReplicaFiles` opens both (or raises `ReplicaDamagedError` with nothing left
open), applies committed entries to the store, and swaps in a received LMDB
image when the core installs a snapshot. The driver (driver.py) owns one and
runs everything else: the core, the clock, the network.

Stub stores. A log replica never reads the B-tree, so a leader ships it a
stub (an empty LMDB holding only the snapshot's index, `write_stub`) instead
of a copy. A stub may never act as a full replica's store: applying entries
to it raises ReplicaDamagedError (promoting a log replica to a full one is
not supported; healing adds a fresh full replica instead).
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import lmdb

from triplica.replication.image_transfer import INCOMING_PREFIX, LMDB_DATA_FILE
from triplica.replication.log import EntryKind, LogEntry
from triplica.storage.files import fsync_directory
from triplica.storage.lmdb_store import PartitionStore, SecondaryIndexer
from triplica.storage.index_outbox import DeltaSourceOf
from triplica.replication.paxos_log import PaxosLog, PaxosLogCorruptionError
from triplica.storage.wal import WalCorruptionError

Decode = Callable[[bytes], list]
ITEMS_DIRECTORY = "items"
LOG_DIRECTORY = "log"


class ReplicaDamagedError(Exception):
    """A replica's files fail their checks at open (its log or its store).

    Raised with nothing left open; the owner decides (its node asks the
    peers for a repair bound, then quarantines and rebuilds it while the other
    members are healthy voters: engine/replica_repair.py).
    """

    def __init__(self, directory: str, reason: str) -> None:
        super().__init__(f"replica {directory} is damaged: {reason}")
        self.directory = directory
        self.reason = reason


class ReplicaFiles:
    """The log and the store of one replica directory (see the module docstring)."""

    def __init__(self, directory: str, sync_mode: str, value_size: Callable[[bytes], int],
                 indexer: SecondaryIndexer | None = None,
                 global_of: DeltaSourceOf | None = None) -> None:
        """`indexer`, `global_of`: the secondary indexes the store keeps
        (storage/lmdb_store.py)."""
        self.directory = directory
        self._value_size = value_size
        self._indexer = indexer
        self._global_of = global_of
        self._items_path = os.path.join(directory, ITEMS_DIRECTORY)
        try:
            self.log = PaxosLog(os.path.join(directory, LOG_DIRECTORY), sync_mode=sync_mode)
        except (WalCorruptionError, PaxosLogCorruptionError) as error:
            raise ReplicaDamagedError(directory, f"log: {error}") from error
        self.store: PartitionStore | None = None
        try:
            persisted = self.log.state()
            # A promise alone needs no store (a rebuilt replica has only that).
            has_state = (persisted.hard_state.commit_index > 0 or bool(persisted.entries)
                         or persisted.snapshot is not None)
            has_image = any(n.startswith(INCOMING_PREFIX) for n in os.listdir(directory))
            if has_state and not has_image and not os.path.exists(
                    os.path.join(self._items_path, LMDB_DATA_FILE)):
                raise ReplicaDamagedError(directory, "store: the LMDB data file is missing")
            try:
                self._open_store()
                applied = self.store.applied_index()  # type: ignore[union-attr]
            except lmdb.Error as error:
                raise ReplicaDamagedError(directory, f"store: {error}") from error
            if persisted.snapshot is not None and applied < persisted.snapshot.index:
                self.install_image(persisted.snapshot.index)  # a crash interrupted an install
        except BaseException:
            self.close()
            raise

    def _open_store(self) -> None:
        self.store = PartitionStore(self._items_path, value_size=self._value_size,
                                    indexer=self._indexer, global_of=self._global_of)
        self.stub = self.store.is_stub()

    def apply(self, entries: tuple[LogEntry, ...], decode: Decode) -> None:
        """Apply committed entries past the store's applied index, in one transaction."""
        assert self.store is not None
        if self.stub:
            raise ReplicaDamagedError(self.directory, "store: a log replica's stub cannot apply "
                                      "entries (promoting a log replica is not supported)")
        applied = self.store.applied_index()
        batch = []
        for entry in entries:
            if entry.index <= applied:
                continue  # already in the store (restart, or an image taken past the snapshot)
            writes = decode(entry.data) if entry.kind == EntryKind.COMMAND else []
            batch.append((entry.index, writes))
        if batch:
            self.store.apply_batch(batch)

    def install_image(self, index: int) -> None:
        """Make the newest received image for snapshot `index` the store."""
        assert self.store is not None
        prefix = f"{INCOMING_PREFIX}{index:020d}-"
        names = sorted(n for n in os.listdir(self.directory) if n.startswith(prefix))
        if not names:
            raise ReplicaDamagedError(self.directory, f"store: no image for snapshot {index}")
        self.store.close()
        shutil.rmtree(self._items_path, ignore_errors=True)
        os.rename(os.path.join(self.directory, names[-1]), self._items_path)
        fsync_directory(self.directory)
        # Older images are useless now; a newer one may belong to a message
        # about to be stepped (its install comes next), so it stays.
        for name in os.listdir(self.directory):
            if name.startswith(INCOMING_PREFIX) and int(name.split("-")[1]) <= index:
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
        self._open_store()
        assert self.store.applied_index() >= index, (self.store.applied_index(), index)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        self.log.close()


def write_stub(path: str, index: int) -> None:
    """A log replica's stub store at `index` in the empty directory `path`."""
    with PartitionStore(path) as stub:
        stub.make_stub(index)
