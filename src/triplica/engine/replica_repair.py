"""Put a damaged replica aside and an empty, repairing one in its place.

Used when a replica's files fail their checks at open (ReplicaDamagedError),
by the replica's node (engine/node_partition.py): the healthy replicas are
on other nodes, in this process (`triplica serve`) or others, and their
numbers come through the node's peer requests. The caller supplies
`RepairBound`: the highest promise any healthy replica made and the
highest log index any healthy replica holds or knows committed. The new
replica's log holds only that promise and a REPAIR marker up to that index
(replication/paxos_log.py); the core's repair mode (replica.py, "Repair") keeps
it from promising or counting as an acceptor until it has learned every
index up to the marker, which is what makes reusing the node id safe.

A node asks its peers with `collect_bound`: EVERY other member must
answer with its own bound, as a healthy voter (not repairing, not healing
itself), before anything is moved. Every member, not just a majority: a
slot chosen with the damaged replica's vote may have been accepted by only
one other member, and only that member's log shows it. With the damaged
replica unable to vote, "every other member is a healthy voter" is also
what a majority of healthy voters means for a group of three. Answers are
kept across rounds: each was given after the damaged replica stopped, so
it stays a valid lower bound. Missing ones are asked again every
`REPAIR_BOUND_RETRY_S` until `wait_s` has passed; then the caller gives up
with nothing moved.

Crash safety: the new log is built in a staging directory, fsynced, and only
then swapped in (damaged -> `<dir>.corrupt-<UTC stamp>`, staging -> dir), so
a crash leaves either the damaged replica (found damaged again next start)
or the repairing one; `discard_interrupted` removes a stale staging
directory, which is never put in place.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from triplica.replication.ballot import Ballot
from triplica.replication.log import HardState
from triplica.storage.files import fsync_directory
from triplica.replication.paxos_log import PaxosLog

log = logging.getLogger(__name__)

QUARANTINE_SUFFIX = ".corrupt-"
REBUILD_SUFFIX = ".rebuild-"
# A cluster node waits this long (configurable per node) for every peer's bound.
REPAIR_BOUND_WAIT_S_DEFAULT = 60.0
# Missing bounds are asked again at this interval.
REPAIR_BOUND_RETRY_S = 0.5
# Deadline of one bound request to one peer.
REPAIR_BOUND_CALL_S = 1.0


@dataclass(frozen=True)
class RepairBound:
    promised: Ballot  # the highest promise any healthy replica made
    until: int  # the highest index any healthy replica holds or knows committed

    @staticmethod
    def merge(bounds: "list[RepairBound]") -> "RepairBound":
        assert bounds, "a repair needs at least one healthy replica's numbers"
        return RepairBound(max(b.promised for b in bounds), max(b.until for b in bounds))

    def to_wire(self) -> dict[str, Any]:
        return {"promised": list(self.promised.to_wire()), "until": self.until}

    @staticmethod
    def from_wire(value: Any) -> "RepairBound":
        """Decode a peer's answer; ValueError if it is not a bound."""
        fields = value if isinstance(value, dict) else {}
        promised, until = fields.get("promised"), fields.get("until")
        if not (isinstance(promised, list) and len(promised) == 2
                and all(type(x) is int and x >= 0 for x in promised)
                and type(until) is int and until >= 0):
            raise ValueError(f"not a repair bound: {value!r:.200}")
        return RepairBound(Ballot(promised[0], promised[1]), until)


# Asks one peer (by node id) for its bound; returns it, or why it has none
# (unreachable, repairing itself, ...). Must bound itself in time.
AskBound = Callable[[int], Awaitable["RepairBound | str"]]


def bound_of(paxos_log: PaxosLog) -> RepairBound:
    """What one healthy replica's log contributes to a repair bound."""
    until = max(paxos_log.last_index(), paxos_log.hard_state.commit_index, paxos_log.repair_until)
    return RepairBound(paxos_log.hard_state.promised, until)


async def collect_bound(ask: AskBound, peers: list[int], label: str, wait_s: float,
                        retry_s: float = REPAIR_BOUND_RETRY_S) -> RepairBound | None:
    """Every peer's bound merged, or None (logged) if some peer has not answered by `wait_s`."""
    assert peers and wait_s >= 0 and retry_s > 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    bounds: dict[int, RepairBound] = {}
    missing: dict[int, str] = {}
    rounds = 0
    while True:
        asking = [peer for peer in peers if peer not in bounds]
        answers = await asyncio.gather(*(ask(peer) for peer in asking))
        for peer, answer in zip(asking, answers):
            if isinstance(answer, RepairBound):
                bounds[peer] = answer
                missing.pop(peer, None)
            else:
                missing[peer] = answer
        if not missing:
            return RepairBound.merge(list(bounds.values()))
        rounds += 1
        reasons = "; ".join(f"node {peer}: {reason}" for peer, reason in sorted(missing.items()))
        if loop.time() + retry_s > deadline:
            log.error("%s is damaged and stays unopened: after %.0f s, %d of %d peers have not "
                      "given a repair bound (%s); rebuilding needs every other member healthy, "
                      "so no files were moved", label, wait_s, len(missing), len(peers), reasons)
            return None
        if rounds == 1:
            log.warning("%s: waiting up to %.0f s for a repair bound from every peer (%s)",
                        label, wait_s, reasons)
        await asyncio.sleep(retry_s)


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
