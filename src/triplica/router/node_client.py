"""How a router calls a storage node: the narrow interface, in-process and over a transport.

The router needs one thing from a node: run this DynamoDB operation
(decoded parameters, origin) and give me the answer (node/calls.py). So it
codes against `NodeClient`:
- `call(node, call, deadline_s)`: the answer (a dict, or bytes of JSON), or
  raises: DynamoError (the answer is an error), NotLeaderError /
  PartitionMovedError (nothing ran; common/redirects.py), NodeNotReached
  (nothing was sent: another node may be tried at once), NodeLost (the
  call may or may not have run), CallTimeoutError;
- `call_now(node, call)`: the same without waiting, for a node in this
  process: the handler's own answer (a dict, bytes, or an awaitable of one
  for a write), or the same errors. Only `LocalNodes` has it (`immediate`
  is True), so a router in `triplica serve` runs a request with no task, no
  encoding and no copy between the router and the node.

`LocalNodes` holds the nodes of this process; `RemoteNodes` sends
`{"call": ...}` over a transport (TCP between processes) to each node's
peer address.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from triplica.common.redirects import NotLeaderError, PartitionMovedError
from triplica.errors import DynamoError
from triplica.transport.base import (Address, CallTimeoutError, ConnectFailedError,
                                     ConnectionLostError, RemoteError, TransportClosedError,
                                     TransportError)
from triplica.transport.tcp import TcpClient

CALL_REQUEST = "call"  # node/calls.py reads the same key


@dataclass(frozen=True)
class Call:
    """One operation for a node: what node/calls.py `handle` takes."""
    operation: str
    parameters: dict[str, Any]
    region: str
    host: str


class NodeNotReached(Exception):
    """No connection to the node could be opened: the call certainly did not run."""


class NodeLost(Exception):
    """The call reached the node (or may have) but no answer came: it may have run."""


class ForwardedError(DynamoError):
    """A DynamoDB error answered by a node in another process, passed on as it came."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body.get("message", "")))
        self.status = status
        self._body = body

    def body(self) -> dict[str, Any]:
        return dict(self._body)


class LocalNode(Protocol):
    """What a node in this process offers its router (node/storage_node.py)."""

    def handle_call(self, operation: str, parameters: dict[str, Any], region: str,
                    host: str) -> Any: ...


class NodeClient(Protocol):
    immediate: bool

    def call_now(self, node: int, call: Call) -> Any: ...

    async def call(self, node: int, call: Call, deadline_s: float) -> Any: ...

    async def close(self) -> None: ...


class LocalNodes:
    """The nodes of this process, called directly."""

    immediate = True

    def __init__(self, nodes: Mapping[int, LocalNode]) -> None:
        assert nodes
        self.nodes = dict(nodes)

    def call_now(self, node: int, call: Call) -> Any:
        target = self.nodes.get(node)
        if target is None:
            raise NodeNotReached(f"no node {node} in this process")
        return target.handle_call(call.operation, call.parameters, call.region, call.host)

    async def call(self, node: int, call: Call, deadline_s: float) -> Any:
        result = self.call_now(node, call)
        if hasattr(result, "__await__"):
            return await result
        return result

    async def close(self) -> None:
        return None


class RemoteNodes:
    """Nodes in other processes, reached over the transport at their peer addresses."""

    immediate = False

    def __init__(self, addresses: Mapping[int, Address]) -> None:
        assert addresses
        self._clients = {node: TcpClient(host, port) for node, (host, port) in addresses.items()}

    def call_now(self, node: int, call: Call) -> Any:
        raise AssertionError("remote nodes have no immediate calls")

    async def call(self, node: int, call: Call, deadline_s: float) -> Any:
        client = self._clients.get(node)
        if client is None:
            raise NodeNotReached(f"unknown node {node}")
        body = {CALL_REQUEST: [call.operation, call.parameters, call.region, call.host]}
        try:
            answer = await client.call(body, deadline_s, connect_once=True)
        except ConnectFailedError as error:
            raise NodeNotReached(str(error)) from None
        except (ConnectionLostError, TransportClosedError, RemoteError) as error:
            raise NodeLost(str(error)) from None
        except CallTimeoutError:
            raise
        except TransportError as error:
            raise NodeLost(str(error)) from None
        return result_of(answer)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()


def result_of(answer: Any) -> Any:
    """The answer of a node's wire reply (node/calls.py), or the error it names."""
    if type(answer) is dict:
        if "r" in answer:
            return answer["r"]
        error = answer.get("e")
        if type(error) is list and len(error) == 2 and type(error[1]) is dict:
            raise ForwardedError(int(error[0]), error[1])
        redirect = answer.get("redirect")
        if type(redirect) is list and len(redirect) == 2:
            if redirect[1]:
                raise PartitionMovedError()
            raise NotLeaderError(redirect[0] if type(redirect[0]) is int else None)
    raise NodeLost(f"malformed answer from a node: {answer!r:.200}")
