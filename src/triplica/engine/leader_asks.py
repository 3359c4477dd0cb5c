"""Asking a replication group's leader something, from any node (the requests a
storage node answers about global index state, node/index_propagation.py).

The members' nodes are asked in turn; a "not the leader, ask X" answer puts
X first; bounded in nodes tried, each call bounded in time by the request
function. A hint cache (group -> node that answered last) makes the common
case one call.
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from triplica.common.replica_ids import node_of
from triplica.transport.base import RemoteError, TransportError

log = logging.getLogger(__name__)

APPLY_REQUEST = "gsi_apply"
ADOPT_REQUEST = "gsi_adopt"
DROP_REQUEST = "gsi_drop"
STATUS_REQUEST = "gsi_status"
REQUESTS = (APPLY_REQUEST, ADOPT_REQUEST, DROP_REQUEST, STATUS_REQUEST)

ASK_S = 5.0                 # one request to one node
ASK_TRIES_MAX = 6           # nodes asked for one group, hints included

# (node id, request) -> answer (transport errors raise)
Request = Callable[[int, dict], Awaitable[Any]]


async def ask_leader(request: Request, members: list[int], body: dict,
                     hints: dict[str, int] | None = None, group: str | None = None) -> Any:
    """Send `body` to the leader of the group with these members (replica ids); the
    leader's answer, a `{"moved": True}` answer, or None if no leader answered."""
    tried = 0
    queue = [node_of(m) for m in members]
    if hints is not None and group in hints:
        queue.insert(0, hints[group])
    while queue and tried < ASK_TRIES_MAX:
        node = queue.pop(0)
        tried += 1
        try:
            answer = await request(node, body)
        except (TransportError, RemoteError, OSError, KeyError) as error:
            log.debug("index request to node %s: %s", node, error)
            continue
        if not isinstance(answer, dict):
            continue
        if "not_leader" in answer:
            hint = answer["not_leader"]
            if isinstance(hint, int) and node_of(hint) != node:
                queue.insert(0, node_of(hint))
            continue
        if hints is not None and group is not None and answer.get("ok"):
            hints[group] = node
        return answer
    return None
