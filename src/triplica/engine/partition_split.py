"""Splitting a partition of `triplica serve` into two replication groups, live.

Paper: a partition that grows too big or too hot is split into two, each a
replication group of its own, while the table keeps serving. The decision
(when, and at which hash) is metadata/split_policy.py; this module carries
one split out on a `ReplicatedPartition` and returns the two children. The
caller (the Database) records the split in the catalogue: an intent before
`split` is called (children's directories; a crash before the switch
deletes them and keeps the parent) and the switch, which `split` calls back
(`commit`) once the children exist and BEFORE any held write reaches them:
a write acknowledged by a child must never be lost to a restart that still
believes in the parent.

Steps, all while reads keep being served by the parent:
1. hold writes: new writes wait in arrival order and stay visible to the
   evaluation of later writes (held_writes.py); every write proposed before
   settles, so the parent leader's store holds every acknowledged write, at
   applied index A;
2. copy the leader's LMDB environment (one consistent copy at A);
3. build each child: three replica directories holding the copy cut to the
   child's hash range (`keep_range`) and a Paxos log holding only a
   snapshot at index A (token, children's initial members), then open the
   child as a new group (its first leader is elected synchronously, as for
   a new table);
4. `commit()`: the caller switches the catalogue to the children;
5. hand the held writes to the child owning each key, in order.
If anything fails before step 5 the children are closed and deleted and the
held writes go back to the parent: a split either happens whole or not at
all, and no write is lost or applied twice (nothing was proposed while
held). Writes wait for the duration of steps 2-3 (a copy of the partition:
milliseconds for megabytes); nothing fails.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from triplica.engine.catalogue import HASH_SPACE_END
from triplica.engine.replica_roster import AVAILABILITY_ZONES
from triplica.engine.replicated_partition import ReplicatedPartition
from triplica.errors import InternalServerError
from triplica.replication.membership import Membership
from triplica.replication.driver import snapshot_token
from triplica.replication.log import HardState, Snapshot
from triplica.storage.files import fsync_directory
from triplica.storage.lmdb_store import PartitionStore
from triplica.replication.paxos_log import PaxosLog

log = logging.getLogger(__name__)

LMDB_DATA_FILE = "data.mdb"


@dataclass(frozen=True)
class ChildSpec:
    directory: str
    hash_start: int
    hash_end: int


async def split(parent: ReplicatedPartition, left: ChildSpec, right: ChildSpec,
                commit: Callable[[ReplicatedPartition, ReplicatedPartition], None] = lambda a, b: None,
                **child_options: object) -> tuple[ReplicatedPartition, ReplicatedPartition]:
    """Split `parent` at left.hash_end == right.hash_start (see the module docstring)."""
    assert left.hash_end == right.hash_start and left.hash_start < left.hash_end < right.hash_end
    for spec in (left, right):
        if os.path.exists(spec.directory):
            raise FileExistsError(f"split child directory {spec.directory} exists")
    replicas = len(parent.roster.initial)
    children: list[ReplicatedPartition] = []
    if not await parent.hold_writes():
        parent.release_held(lambda key: parent.propose)
        raise InternalServerError("Internal server error")
    try:
        leader = parent.leader()
        if leader is None or not leader.read_allowed():
            raise InternalServerError("Internal server error")
        index = leader.store.applied_index()
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryDirectory(dir=os.path.dirname(left.directory),
                                         prefix=".split-image-") as image:
            await loop.run_in_executor(None, leader.store.copy_to, image)
            for spec in (left, right):
                await loop.run_in_executor(None, build_child, spec, os.path.join(image, LMDB_DATA_FILE),
                                           index, replicas, parent.sync_mode)
                children.append(ReplicatedPartition(spec.directory, parent.sync_mode, replicas=replicas,
                                                    new_group=True, **child_options))  # type: ignore[arg-type]
        commit(children[0], children[1])
    except BaseException:
        for child in children:
            await child.aclose()
        for spec in (left, right):
            shutil.rmtree(spec.directory, ignore_errors=True)
        parent.release_held(lambda key: parent.propose)
        raise
    boundary = left.hash_end.to_bytes(8, "big")
    left_child, right_child = children
    parent.release_held(lambda key: left_child.propose if key[:8] < boundary else right_child.propose)
    log.warning("partition %s split at hash %#x (index %s) into %s and %s", parent.directory,
                left.hash_end, index, left.directory, right.directory)
    return left_child, right_child


def build_child(spec: ChildSpec, image: str, index: int, replicas: int, sync_mode: str) -> None:
    """Replica directories of a new group: the image cut to the range, a log with a snapshot at `index`."""
    assert not os.path.exists(spec.directory), spec.directory
    low = spec.hash_start.to_bytes(8, "big")
    high = None if spec.hash_end == HASH_SPACE_END else spec.hash_end.to_bytes(8, "big")
    members = Membership.of(list(range(1, replicas + 1)))
    for zone in AVAILABILITY_ZONES[:replicas]:
        replica = os.path.join(spec.directory, zone)
        items = os.path.join(replica, "items")
        os.makedirs(items)
        shutil.copyfile(image, os.path.join(items, LMDB_DATA_FILE))
        with PartitionStore(items) as store:
            store.keep_range(low, high)
            assert store.applied_index() == index
        with PaxosLog(os.path.join(replica, "log"), sync_mode=sync_mode) as paxos_log:
            paxos_log.persist(HardState(), (), Snapshot(index, members, snapshot_token(index)))
        fsync_directory(replica)
    fsync_directory(spec.directory)
