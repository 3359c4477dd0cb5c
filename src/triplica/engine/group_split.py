"""Splitting a cluster partition's replication group in place: the marker and the children.

In `triplica serve` all three replicas of a group live in one process, so a
split copies the leader's B-tree (engine/partition_split.py). In a cluster
each replica is on another node; copying one node's B-tree to the others
would move the whole partition over the network. Instead the split goes
through the parent group's own log, so every replica cuts its own copy:

1. the parent's leader proposes a split entry (boundary, the two children's
   group keys) and refuses every later write (`NodePartition.split`); each
   replica applying the entry stores it as a partition record
   (storage/lmdb_store.py), in the same transaction as the entry's index;
2. from then on the replica serves nothing (`PartitionMovedError`): its
   state is frozen at the split index A, identical on every replica (Paxos
   applies the same prefix everywhere, and no write follows A: a later
   leader serves only after applying every earlier entry, so it sees the
   marker first);
3. each node builds its two child replicas from its own parent replica
   (`build_child`): a copy of the B-tree cut to the child's hash range (its
   local secondary indexes and item collection sizes too: their keys start
   with the item's hash, so an item collection and its index entries go
   with its items, storage/lmdb_store.py `keep_range`) and a
   Paxos log holding only a snapshot at A with the parent's members. Every
   child replica therefore starts from the same snapshot at the same index,
   which is what a new group needs; the children are new groups (own keys,
   own ballots), opened when the node's catalogue switches to them.

A replica that lags (its parent replica never applied the marker, or is
gone) opens its child replica as a damaged one, and the child's healing
rebuilds it from its peers (engine/node_partition.py).

The decisions (the marker and its record, which replica refuses what, what a
child starts from, the control plane's steps) are engine/split_protocol.py,
which the split simulation drives too; this module does the files.
"""
from __future__ import annotations

import os
import shutil

from triplica.engine.catalogue import HASH_SPACE_END
from triplica.engine.log_entries import stored_item_size
from triplica.engine.split_protocol import (SPLIT_RECORD_KEY, SplitMarker, child_seed,
                                            marker_from_record, split_writes)
from triplica.replication.membership import Membership
from triplica.replication.driver import snapshot_token
from triplica.replication.log import HardState, Snapshot
from triplica.storage.files import fsync_directory
from triplica.storage.lmdb_store import PartitionStore
from triplica.replication.paxos_log import PaxosLog

__all__ = ["SPLIT_RECORD_KEY", "SplitMarker", "split_writes", "marker_of", "build_child"]

REPLICA_DIRECTORY = "replica"
BUILDING_SUFFIX = ".building"


def marker_of(store: PartitionStore) -> SplitMarker | None:
    found = store.record(SPLIT_RECORD_KEY)
    if found is None:
        return None
    index, value = found
    return marker_from_record(index, value)


def build_child(parent_store: PartitionStore, child_directory: str, hash_start: int,
                hash_end: int, members: list[int], sync_mode: str) -> bool:
    """Build this node's replica of a split child from its replica of the parent.

    False (nothing built) when the parent replica holds no marker of a split
    into this range. The child appears whole or not at all: it is built
    beside its final place and renamed.
    """
    seed = child_seed(marker_of(parent_store), hash_start, hash_end, members)
    if seed is None:
        return False
    assert 0 <= hash_start < hash_end <= HASH_SPACE_END
    building = child_directory.rstrip("/") + BUILDING_SUFFIX
    shutil.rmtree(building, ignore_errors=True)
    replica = os.path.join(building, REPLICA_DIRECTORY)
    items = os.path.join(replica, "items")
    os.makedirs(replica)
    parent_store.copy_to(items)
    with PartitionStore(items, value_size=stored_item_size) as store:
        low = hash_start.to_bytes(8, "big")
        high = None if hash_end == HASH_SPACE_END else hash_end.to_bytes(8, "big")
        store.become_child(low, high, seed.index)
        store.checkpoint()
    with PaxosLog(os.path.join(replica, "log"), sync_mode=sync_mode) as paxos_log:
        paxos_log.persist(HardState(), (), Snapshot(seed.index, Membership.of(seed.members),
                                                    snapshot_token(seed.index)))
    fsync_directory(replica)
    fsync_directory(building)
    os.rename(building, child_directory)
    fsync_directory(os.path.dirname(child_directory.rstrip("/")))
    return True
