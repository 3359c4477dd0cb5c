"""Why a node did not run a request: internal answers that only a router sees.

A node refuses, before evaluating anything, a request that must run on a
partition's leader when its replica does not lead (`NotLeaderError`, with
the leader it believes in), or that names a partition which was split
(`PartitionMovedError`). The router follows the hint or refreshes its map
and tries again within the request's deadline; an SDK client never sees
either. Over HTTP a node answers them with status 421 and the headers below.
"""
from __future__ import annotations

LEADER_HEADER = "x-triplica-leader"
MOVED_HEADER = "x-triplica-moved"


class NotLeaderError(Exception):
    """This replica may not evaluate writes or serve strong reads.

    `leader_id` is the node this replica believes leads (itself while its
    lease is not yet established), or None when it knows no leader.
    Never reaches an SDK client: the node answers the router with a 421.
    """

    status = 421

    def __init__(self, leader_id: int | None) -> None:
        super().__init__(f"not the leader (leader: {leader_id})")
        self.leader_id = leader_id


class PartitionMovedError(NotLeaderError):
    """This replica's group was split (engine/group_split.py): its keys now belong to
    the children. The router refreshes the table's map and tries again."""

    def __init__(self) -> None:
        Exception.__init__(self, "partition moved: it was split")
        self.leader_id = None
