"""This node's replica of the metadata group: the catalogue's log in Paxos.

Paper: the partition metadata system is itself replicated, so the catalogue
survives the loss of a node or an AZ. Here it is one replication group like
any table partition (same Paxos core, WAL, LMDB, healing of a damaged
replica: a `NodePartition`), under the fixed group key METADATA_GROUP and
first placed by the same rule as partitions (three nodes in three AZs), so
every node computes its first members alike; a move (replica_mover.py)
changes them like any group's, and records the new members in the log
itself (`set_metadata_members`), which every node's catalogue follows. Its B-tree holds the catalogue log
(catalogue_log.py: one record per epoch); nothing else is stored there.

Appending is the control plane's job and happens only on the group's
leader, one record at a time (control_plane.py holds a lock), at epoch =
last applied epoch + 1. That is safe because the leader serves only once it
has applied every entry of earlier leaderships (its lease read fence): the
last applied epoch is the log's last epoch, and no earlier leader's record
can appear later under the same key.
"""
from __future__ import annotations

import os
import time
from typing import Any

from triplica.common.redirects import NotLeaderError
from triplica.errors import InternalServerError
from triplica.engine.node_partition import NodePartition
from triplica.engine.catalogue import METADATA_GROUP
from triplica.replication.options import ReplicaOptions
from triplica.storage.files import read_json, write_json_durably
from triplica.metadata.catalogue_log import (LOG_PREFIX, Change, decode_change, encode_change,
                                             epoch_of_key, log_key)

METADATA_DIRECTORY = "metadata"
MARKER_FILE = "group.json"
CHANGES_PER_READ_MAX = 256
# A record in flight when leadership was lost: how long to wait for its slot's fate
# (an election on a loaded machine, then the new leader's first commit).
OUTCOME_WAIT_S = 4.0
_LOG_END = LOG_PREFIX[:-1] + bytes((LOG_PREFIX[-1] + 1,))


def read_marker(data_dir: str) -> dict[str, Any]:
    """This node's metadata replica marker ({} when it hosts none)."""
    path = os.path.join(data_dir, METADATA_DIRECTORY, MARKER_FILE)
    return read_json(path) if os.path.exists(path) else {}


class MetadataReplica:
    """The metadata group's replica on a member node."""

    def __init__(self, data_dir: str, *, node_id: int, members: list[int], network: Any,
                 sync_mode: str, ask_bound: Any, repair_wait_s: float,
                 joining: bool = False, options: ReplicaOptions = ReplicaOptions()) -> None:
        """`joining`: added to the running group by a move (replica_mover.py): it starts
        empty and learns the configuration and the log from the leader."""
        self.directory = os.path.join(data_dir, METADATA_DIRECTORY)
        marker = os.path.join(self.directory, MARKER_FILE)
        # As for table partitions (node/storage_node.py): the group is new only if its marker,
        # written durably before the replica's first byte, is absent.
        fresh = not os.path.exists(marker) and not joining
        if joining and not os.path.exists(marker):
            os.makedirs(self.directory, exist_ok=True)
            write_json_durably(marker, {"group": METADATA_GROUP, "members": list(members),
                                        "joining": True})
        if fresh:
            os.makedirs(self.directory, exist_ok=True)
            write_json_durably(marker, {"group": METADATA_GROUP, "members": list(members)})
        self.joining = joining or bool(read_marker(data_dir).get("joining"))
        self.members = list(members)
        self.partition = NodePartition(self.directory, replica_id=node_id,
                                       group_key=METADATA_GROUP, members=members,
                                       network=network, sync_mode=sync_mode, fresh=fresh,
                                       ask_bound=ask_bound, repair_wait_s=repair_wait_s,
                                       joining=self.joining, options=options)

    def serves_log(self) -> bool:
        """A full member of the group's committed configuration: its applied log is the
        catalogue's (a replica a move removed stops learning, a log replica holds none)."""
        config = self.partition.committed_members()
        return (config is not None and self.partition.replica_id in config[0]
                and self.partition.replica_id not in config[1])

    def abandoned(self, after_s: float) -> bool:
        """A joined replica no move will use: the configuration it learned leaves it out,
        or it learned none in `after_s` (the move's metadata leader lost its plan)."""
        config = self.partition.committed_members()
        if config is not None:
            return self.partition.replica_id not in config[0]
        marker = os.path.join(self.directory, MARKER_FILE)
        return os.path.exists(marker) and time.time() - os.path.getmtime(marker) > after_s

    def joined(self) -> None:
        """The move that added this replica is recorded: an ordinary member from now on."""
        if self.joining:
            write_json_durably(os.path.join(self.directory, MARKER_FILE),
                               {"group": METADATA_GROUP, "members": self.members})
            self.joining = False

    # ------------------------------------------------------------ leadership

    def leader_hint(self) -> int | None:
        return self.partition.leader_hint()

    def require_leader(self) -> None:
        """Raise NotLeaderError (with the believed leader) unless this replica leads now."""
        self.partition.require_leader()

    def is_leader(self) -> bool:
        return self.partition.serving()

    # ----------------------------------------------------------------- reads

    def last_epoch(self) -> int:
        """Last epoch in this replica's applied state (the log's last, on a serving leader)."""
        for key, _ in self.partition.scan(LOG_PREFIX, _LOG_END, reverse=True):
            return epoch_of_key(key)
        return 0

    def changes_after(self, epoch: int,
                      limit: int = CHANGES_PER_READ_MAX) -> list[tuple[int, Change]]:
        """Applied records after `epoch`, in order (committed ones only: applied implies
        committed). Empty while the replica is healing."""
        assert limit >= 1
        out: list[tuple[int, Change]] = []
        try:
            rows = self.partition.scan(log_key(epoch + 1), _LOG_END)
        except NotLeaderError:  # healing: nothing to read here yet
            return out
        for key, stored in rows:
            out.append((epoch_of_key(key), decode_change(stored)))
            if len(out) >= limit:
                break
        return out

    # ---------------------------------------------------------------- writes

    async def append(self, change: Change) -> int:
        """Commit `change` as the next epoch; returns it. Leader only (NotLeaderError);
        the caller serialises appends.

        Leadership lost with the record in flight is an unknown outcome for the
        proposer, but not for long: the next leader decides the slot (recovers the
        record, or fills the slot with its own entry) and this replica applies that
        decision. So `append` waits (bounded by OUTCOME_WAIT_S) until its slot is
        applied here and answers the epoch if the record is there, NotLeaderError
        (nothing happened: the router retries at the new leader) if it is not; only
        past the bound does the caller see the InternalServerError."""
        self.require_leader()
        epoch = self.last_epoch() + 1
        encoded = encode_change(change)
        index, future = self.partition.propose_indexed([(log_key(epoch), encoded)])
        try:
            await future
        except InternalServerError:
            if not await self._recorded(epoch, encoded, index):
                raise NotLeaderError(self.leader_hint()) from None
        return epoch

    async def _recorded(self, epoch: int, encoded: bytes, index: int) -> bool:
        """Whether the record proposed at log `index` for `epoch` was committed (see
        `append`); InternalServerError if its slot is not decided here in time."""
        if not await self.partition.decided(index, OUTCOME_WAIT_S):
            raise InternalServerError("Internal server error")
        for _, stored in self.partition.scan(log_key(epoch), log_key(epoch + 1)):
            return stored == encoded
        return False

    async def aclose(self) -> None:
        await self.partition.drain()
        await self.partition.aclose()
