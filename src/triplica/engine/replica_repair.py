"""Put a damaged replica aside and an empty, repairing one in its place.

Used when a replica's files fail their checks at open (ReplicaDamagedError):
by `ReplicatedPartition` (all replicas in this process, so the healthy ones'
logs are read directly) and by a cluster node (the healthy replicas are in
other processes; their numbers come over the network). Either way the caller
supplies `RepairBound`: the highest promise any healthy replica made and the
highest log index any healthy replica holds or knows committed. The new
replica's log holds only that promise and a REPAIR marker up to that index
(storage/paxos_log.py); the core's repair mode (replica.py, "Repair") keeps
it from promising or counting as an acceptor until it has learned every
index up to the marker, which is what makes reusing the node id safe.

Crash safety: the new log is built in a staging directory, fsynced, and only
then swapped in (damaged -> `<dir>.corrupt-<UTC stamp>`, staging -> dir), so
a crash leaves either the damaged replica (found damaged again next start)
or the repairing one; `discard_interrupted` removes a stale staging
directory, which is never put in place.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass

from triplica.replication.ballot import Ballot
from triplica.replication.log import HardState
from triplica.storage.files import fsync_directory
from triplica.storage.paxos_log import PaxosLog

log = logging.getLogger(__name__)

QUARANTINE_SUFFIX = ".corrupt-"
REBUILD_SUFFIX = ".rebuild-"


@dataclass(frozen=True)
class RepairBound:
    promised: Ballot  # the highest promise any healthy replica made
    until: int  # the highest index any healthy replica holds or knows committed

    @staticmethod
    def merge(bounds: "list[RepairBound]") -> "RepairBound":
        assert bounds, "a repair needs at least one healthy replica's numbers"
        return RepairBound(max(b.promised for b in bounds), max(b.until for b in bounds))


def bound_of(paxos_log: PaxosLog) -> RepairBound:
    """What one healthy replica's log contributes to a repair bound."""
    until = max(paxos_log.last_index(), paxos_log.hard_state.commit_index, paxos_log.repair_until)
    return RepairBound(paxos_log.hard_state.promised, until)


def discard_interrupted(parent: str) -> None:
    """Remove staging directories of rebuilds a crash interrupted."""
    for name in os.listdir(parent):
        if REBUILD_SUFFIX in name:
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def rebuild_in_place(path: str, bound: RepairBound, label: str, reason: str) -> None:
    """Quarantine the replica at `path` (if present) and leave a repairing, empty one there."""
    parent = os.path.dirname(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    quarantine, suffix = f"{path}{QUARANTINE_SUFFIX}{stamp}", 0
    while os.path.exists(quarantine):
        suffix += 1
        quarantine = f"{path}{QUARANTINE_SUFFIX}{stamp}.{suffix}"
    staging = f"{path}{REBUILD_SUFFIX}{stamp}"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    with PaxosLog(os.path.join(staging, "log"), sync_mode="batch") as paxos_log:
        paxos_log.mark_repair(bound.until, HardState(bound.promised, 0))
    fsync_directory(staging)
    if os.path.exists(path):
        os.rename(path, quarantine)
        log.error("%s is damaged (%s); moved it to %s and rebuilding it from its peers",
                  label, reason, quarantine)
    else:
        log.error("%s is damaged (%s); rebuilding it from its peers", label, reason)
    os.rename(staging, path)
    fsync_directory(parent)
    log.warning("%s rebuilt empty; it does not vote until it has learned every index up to %s",
                label, bound.until)
