"""A router's calls to a storage node: DynamoDB operations on this node's partitions.

A call is an operation name, its decoded parameters (internal ones included,
common/internal.py: only routers call nodes) and the request's origin
(region and host, for the ARNs and endpoints some answers name). The
engine's handlers (engine/operations/) run it against the node's Database;
`handle` returns the answer as the handler gave it:
- a dict (the JSON answer) or bytes (JSON already encoded: GetItem splices
  the stored item image), or
- an awaitable of one of them (a write, once its log entries are committed
  and applied; a table operation, once the control plane has recorded it),
and raises DynamoError for an answer that is an error, or NotLeaderError /
PartitionMovedError (common/redirects.py) when nothing ran because this
node's replica does not lead or the partition was split.

Table operations (CreateTable, UpdateTable, DeleteTable, TagResource,
UntagResource) and the operator's drain request go to `control`, the
metadata role of the process (metadata/role.py), which runs them on the
metadata leader or raises NotLeaderError naming it. `Triplica.PartitionMap`
answers the table's partition map from this node's catalogue, at its epoch
(the router's fallback while no MemDS server answers).

Between processes a call travels as `{"call": [operation, parameters,
region, host]}` over the node's peer address (transport/mesh.py) and the
answer comes back as one of
    {"r": dict | bytes}                   the answer,
    {"e": [status, error body]}           a DynamoDB error,
    {"redirect": [leader node | None, moved]}  nothing ran (common/redirects.py);
`answer_remote` builds it, router/node_client.py reads it.
"""
from __future__ import annotations

import inspect
from typing import Any, Awaitable, Callable

from triplica.common.internal import OPERATOR_TARGETS, PARTITION_MAP_TARGET
from triplica.common.redirects import NotLeaderError, PartitionMovedError
from triplica.common.replica_ids import node_of
from triplica.engine.catalogue import table_map_of
from triplica.engine.database import Database
from triplica.engine.operations.request_types import check_request
from triplica.engine.operations.service import OPERATIONS, AfterCommit, Service
from triplica.errors import DynamoError, ResourceNotFoundException, UnknownOperationException
from triplica.transport.base import Message

CALL_REQUEST = "call"
CONTROL_OPERATIONS = frozenset({"CreateTable", "UpdateTable", "DeleteTable", "TagResource",
                                "UntagResource"}) | OPERATOR_TARGETS

# (operation, parameters, region, host) -> the control plane's answer
ControlHandler = Callable[[str, dict[str, Any], str, str], Awaitable[dict[str, Any]]]


class NodeCalls:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.service = Service(db)
        self.control: ControlHandler | None = None

    def handle(self, operation: str, parameters: dict[str, Any], region: str,
               host: str) -> Any:
        """Run one call (module docstring)."""
        if operation == PARTITION_MAP_TARGET:
            return self._partition_map(parameters)
        handler = OPERATIONS.get(operation)
        if handler is None and operation not in OPERATOR_TARGETS:
            raise UnknownOperationException(
                f"The operation {operation} is not supported by this triplica release")
        check_request(operation, parameters)  # members of the wrong JSON type
        if operation in CONTROL_OPERATIONS:
            if self.control is None:
                raise NotLeaderError(None)
            return self.control(operation, parameters, region, host)
        assert handler is not None
        service = self.service
        service.request_region = region
        service.request_host = host
        result = handler(service, parameters)
        if type(result) is AfterCommit:
            return result.future()
        return result

    def _partition_map(self, parameters: dict[str, Any]) -> dict[str, Any]:
        name = parameters.get("TableName")
        table = self.db.tables.get(name) if type(name) is str else None
        if table is None:
            raise ResourceNotFoundException("Requested resource not found")
        return table_map_of(table.info, self.db.catalogue.epoch).to_doc()

    async def answer_remote(self, call: Any) -> Message:
        """A call that came over the network, answered in its wire form."""
        try:
            operation, parameters, region, host = call
            if type(operation) is not str or type(parameters) is not dict:
                raise ValueError("a call is [operation, parameters, region, host]")
            result = self.handle(operation, parameters, str(region), str(host))
            if inspect.isawaitable(result):
                result = await result
        except PartitionMovedError:
            return {"redirect": [None, True]}
        except NotLeaderError as error:
            hint = None if error.leader_id is None else node_of(error.leader_id)
            return {"redirect": [hint, False]}
        except DynamoError as error:
            return {"e": [error.status, error.body()]}
        return {"r": result}
