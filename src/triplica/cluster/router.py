"""The request router: DynamoDB's HTTP API in front of the storage nodes.

`python -m triplica.cluster.router --config router.json` (started by
`triplica cluster up`). The router checks SigV4 (when given credentials),
finds where a request must run and forwards its raw body and headers over
keep-alive connection pools (http_client.py); nodes trust the router and do
not verify signatures again.

Where a request goes:
- control-plane writes (CreateTable, DeleteTable, UpdateTable, TagResource,
  UntagResource) are broadcast to every node concurrently; the answer is
  the first node's (in config order) that answered; a node refusing
  connections is retried for BROADCAST_CONNECT_S_MAX. CreateTable carries a
  fresh `x-triplica-group-token` from which every node derives the same
  group keys. A node down during the broadcast misses it: that is the gap
  the metadata system (issue 4) closes;
- writes, strongly consistent reads (GetItem/Query/Scan/BatchGetItem with
  ConsistentRead) go to the node believed to lead the table's partition
  (one cached node per table: one partition per table for now; a batch
  is routed by its first table);
- eventually consistent reads and other control-plane reads go to any
  node, round robin.

Retries, within REQUEST_DEADLINE_S and ATTEMPTS_MAX, only where the request
certainly did not run or running it again is harmless:
- 421 from a node (it refused before evaluating anything): follow
  `x-triplica-leader` at once; if the hint is the node itself (elected,
  lease pending) or unknown, back off and retry (the next node when unknown);
- no connection could be opened (nothing was sent): back off, next node;
- reads only: a connection lost after sending, an attempt timeout or a 5xx:
  back off and retry (a read has no effect to repeat).
A write whose outcome is unknown (connection lost after sending, timeout, a
5xx because leadership changed with the write in flight) is answered with a
500 InternalServerError and not retried here: running it twice could apply a
stale write after a newer one or make a conditional write fail on its own
earlier success. The SDK's own retry policy then decides, as with DynamoDB.
Backoff doubles from BACKOFF_S_MIN to BACKOFF_S_MAX. A 421 never reaches the
client; past the deadline the client gets the last 5xx or a 500.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import signal
import sys
import uuid
from datetime import datetime, timezone
from typing import Any

import orjson

from triplica.api import sigv4, wire
from triplica.api.http_server import Request, Response, serve_until_stopped
from triplica.cluster.config import RouterConfig, load_router_config
from triplica.cluster.http_client import HttpAnswer, NodePool, NodeUnreachableError, encode_request
from triplica.cluster.node import GROUP_TOKEN_HEADER, LEADER_HEADER
from triplica.errors import InternalServerError

log = logging.getLogger(__name__)

REQUEST_DEADLINE_S = 5.0
ATTEMPT_DEADLINE_S = 2.0
BROADCAST_DEADLINE_S = 15.0
BROADCAST_CONNECT_S_MAX = 2.0
ATTEMPTS_MAX = 64
BACKOFF_S_MIN = 0.01
BACKOFF_S_MAX = 0.2
SELF_HINTS_MAX = 8

BROADCAST_OPERATIONS = frozenset({"CreateTable", "DeleteTable", "UpdateTable", "TagResource",
                                  "UntagResource"})
WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})
READ_OPERATIONS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem"})


def route_of(operation: str, body: bytes) -> tuple[str | None, bool]:
    """(table name, needs the leader) of an item operation; (None, False) if unparsable."""
    try:
        parameters = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return None, False
    if type(parameters) is not dict:
        return None, False
    if operation in ("BatchGetItem", "BatchWriteItem"):
        items = parameters.get("RequestItems")
        if type(items) is not dict or not items:
            return None, False
        table = next(iter(items))
        if operation == "BatchWriteItem":
            return table, True
        return table, any(type(v) is dict and v.get("ConsistentRead") is True
                          for v in items.values())
    table = parameters.get("TableName")
    if type(table) is not str:
        return None, False
    return table, operation in WRITE_OPERATIONS or parameters.get("ConsistentRead") is True


class RouterApp:
    def __init__(self, config: RouterConfig, credentials: dict[str, str] | None = None) -> None:
        self.order = [node.id for node in config.nodes]
        self.pools = {node.id: NodePool(node.host, node.http_port) for node in config.nodes}
        self.leaders: dict[str, int] = {}  # table -> node believed to lead its partition
        self._round_robin = itertools.cycle(self.order)
        self.authenticator = sigv4.Authenticator(credentials)
        self.verifies = credentials is not None
        self.redirects_followed = 0
        self.retries = 0

    def handle(self, request: Request) -> Any:
        operation = wire.parse_target(request.headers)
        self.authenticator.check(request, datetime.now(timezone.utc) if self.verifies else None)
        if operation in BROADCAST_OPERATIONS:
            return self._broadcast(request, operation)
        data = encode_request(request.path or "/", request.headers, request.body)
        if operation in WRITE_OPERATIONS or operation in READ_OPERATIONS:
            table, needs_leader = route_of(operation, request.body)
            retry_unknown = operation not in WRITE_OPERATIONS
            if table is not None and needs_leader:
                return self._forward(data, self.leaders.get(table, self.order[0]), table,
                                     retry_unknown)
        return self._forward(data, next(self._round_robin), None, True)

    def _next(self, node: int) -> int:
        return self.order[(self.order.index(node) + 1) % len(self.order)]

    async def _forward(self, data: bytes, target: int, table: str | None,
                       retry_unknown: bool) -> Response:
        """Send to `target`, following redirects; `retry_unknown` allows retrying attempts
        whose outcome is unknown (reads)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REQUEST_DEADLINE_S
        backoff_s = BACKOFF_S_MIN
        last: HttpAnswer | None = None
        self_hints = 0
        for _ in range(ATTEMPTS_MAX):
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                break
            wait = True
            try:
                answer = await self.pools[target].request(data, min(remaining_s, ATTEMPT_DEADLINE_S))
            except (NodeUnreachableError, TimeoutError) as error:
                log.info("node %s unreachable: %s", target, error)
                if not retry_unknown and getattr(error, "sent", True):
                    raise InternalServerError("Internal server error") from None
                target = self._next(target)
            else:
                if answer.status < 500 and answer.status != 421:
                    if table is not None:
                        self.leaders[table] = target
                    return answer.status, answer.body, None
                if answer.status == 421:
                    previous = target
                    target, wait = self._follow(target, answer.headers.get(LEADER_HEADER))
                    self_hints = self_hints + 1 if target == previous else 0
                    if self_hints > SELF_HINTS_MAX:  # a deposed leader that does not know yet
                        target, self_hints = self._next(target), 0
                else:
                    if not retry_unknown:
                        return answer.status, answer.body, None
                    last = answer
            self.retries += 1
            if wait:
                await asyncio.sleep(min(backoff_s, max(0.0, deadline - loop.time())))
                backoff_s = min(backoff_s * 2, BACKOFF_S_MAX)
        if last is not None:
            return last.status, last.body, None
        raise InternalServerError("Internal server error")

    def _follow(self, target: int, hint: str | None) -> tuple[int, bool]:
        """Where to go after a 421, and whether to back off first."""
        try:
            leader = int(hint) if hint is not None else None
        except ValueError:
            leader = None
        if leader is None or leader not in self.pools:
            return self._next(target), True
        if leader == target:
            return target, True
        self.redirects_followed += 1
        return leader, False

    async def _broadcast(self, request: Request, operation: str) -> Response:
        headers = dict(request.headers)
        if operation == "CreateTable":
            headers[GROUP_TOKEN_HEADER] = uuid.uuid4().hex
        data = encode_request(request.path or "/", headers, request.body)
        results = await asyncio.gather(*(self._send_to(node, data) for node in self.order),
                                       return_exceptions=True)
        for node, result in zip(self.order, results):
            if isinstance(result, HttpAnswer):
                return result.status, result.body, None
            log.warning("%s missed node %s: %s", operation, node, result)
        raise InternalServerError("Internal server error")

    async def _send_to(self, node: int, data: bytes) -> HttpAnswer:
        """One broadcast leg: retried while the node refuses connections (starting up)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BROADCAST_DEADLINE_S
        connect_deadline = loop.time() + BROADCAST_CONNECT_S_MAX
        while True:
            try:
                return await self.pools[node].request(data, max(0.0, deadline - loop.time()))
            except NodeUnreachableError as error:
                if error.sent or loop.time() >= connect_deadline:
                    raise
            await asyncio.sleep(BACKOFF_S_MAX)

    async def close(self) -> None:
        for pool in self.pools.values():
            pool.close()


def run_router(config: RouterConfig) -> None:
    import uvloop

    credentials = sigv4.load_credentials(config.credentials) if config.credentials else None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve_until_stopped(RouterApp(config, credentials), config.listen_host,
                                  config.port, stop)

    uvloop.run(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triplica-router")
    parser.add_argument("--config", required=True)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_router(load_router_config(args.config))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
