"""A storage node's own HTTP port: DynamoDB's API answered by one node, for operators.

`triplica node` serves it next to its peer address. Requests run on this
node exactly as a router's calls do (node/calls.py), without routing: a
partition this node's replica does not lead answers status 421 with
`x-triplica-leader: <node id | none>` (and `x-triplica-moved: 1` for a
split partition; common/redirects.py). Signatures are not checked (only
operators and tests reach a node's port; clients use a router).
"""
from __future__ import annotations

from typing import Any, Awaitable

import orjson

from triplica.api import wire
from triplica.api.app import (DEFAULT_REGION, FORWARDED_TARGETS, ORIGIN_OPERATIONS, region_of,
                              respond)
from triplica.api.http_server import Request, Response
from triplica.common.redirects import (LEADER_HEADER, MOVED_HEADER, NotLeaderError,
                                       PartitionMovedError)
from triplica.common.replica_ids import node_of


class NodeApp:
    def __init__(self, node: Any) -> None:
        """`node`: node/storage_node.py StorageNode (its `handle_call`)."""
        self.node = node

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        headers = request.headers
        target = headers.get("x-amz-target")
        operation = target if target in FORWARDED_TARGETS else wire.parse_target(headers)
        wire.check_content_type(headers)
        parameters = wire.parse_body(request.body)
        region = region_of(headers) if operation in ORIGIN_OPERATIONS else DEFAULT_REGION
        try:
            result = self.node.handle_call(operation, parameters, region,
                                           headers.get("host", "127.0.0.1:8000"))
        except NotLeaderError as error:
            return redirect_response(error)
        answer = respond(result)
        if type(answer) is tuple:
            return answer
        return self._finish(answer)

    async def _finish(self, pending: Awaitable[Response]) -> Response:
        try:
            return await pending
        except NotLeaderError as error:
            return redirect_response(error)

    async def close(self) -> None:
        return None


def redirect_response(error: NotLeaderError) -> Response:
    leader = "none" if error.leader_id is None else str(node_of(error.leader_id))
    body = orjson.dumps({"__type": "triplica#NotLeader", "message": str(error)})
    headers = {LEADER_HEADER: leader}
    if isinstance(error, PartitionMovedError):
        headers[MOVED_HEADER] = "1"
    return error.status, body, headers

