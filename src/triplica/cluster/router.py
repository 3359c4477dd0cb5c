"""The request router: DynamoDB's HTTP API in front of the storage nodes.

`python -m triplica.cluster.router --config router.json` (started by
`triplica cluster up`). The router checks SigV4 (when given credentials),
finds where a request must run and forwards its raw body and headers over
keep-alive connection pools (http_client.py); nodes trust the router and do
not verify signatures again.

Where a request goes:
- control-plane writes (CreateTable, DeleteTable, UpdateTable, TagResource,
  UntagResource) go to the node whose metadata replica leads (any other
  node redirects with 421, as for a partition); it runs the control plane
  (metadata/control_plane.py) and answers once every node has the change
  (bounded), so they get CONTROL_DEADLINE_S; the table's cached partition
  map is dropped afterwards;
- item operations go by the table's partition map: from MemDS through the
  constant-work cache (router/map_cache.py: every request makes exactly one
  MemDS call, hit or miss), from the nodes while no MemDS server answers
  (router/map_source.py); a map is dropped when a node says the table does
  not exist: the partition key's hash (router/key_routes.py) picks the
  partition; writes and strongly consistent reads go to the member believed
  to lead its group (hints per group key, learned from answers and 421s),
  eventually consistent reads to its members in turn. A request whose key
  can't be read goes to any node, which answers with the validation error;
- Scan walks the partitions in hash order with one sub-request each and
  stitches one page (router/scan_pages.py);
- BatchGetItem/BatchWriteItem are split by (table, partition) and the
  sub-batches sent in parallel, after the whole batch was checked once by a
  node ("validate only"), so a bad request anywhere changes nothing
  (router/batch_split.py);
- other control-plane reads go to any node, round robin.
A client's own internal parameters (router/internal.py) are dropped: only
the router may restrict what a node does.

A node whose partition was split answers 421 with `x-triplica-moved`
(nothing ran): the router drops the table's map, fetches it again (MemDS
gets the children's map as soon as the metadata system commits them) and
runs the request again with the new routes, backing off, within
REQUEST_DEADLINE_S; a sub-batch of a split batch goes back unprocessed
instead (the other sub-batches already ran).

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
In a split batch such a sub-batch (or one that got no answer in time) goes
back to the client as unprocessed instead, unless no sub-batch succeeded.
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
from datetime import datetime, timezone
from typing import Any, Sequence

import orjson

from triplica.api import content_encoding, sigv4, wire
from triplica.api.http_server import Request, Response, serve_until_stopped
from triplica.cluster.config import RouterConfig, load_router_config
from triplica.cluster.http_client import HttpAnswer, NodePool, NodeUnreachableError, encode_request
from triplica.common.redirects import LEADER_HEADER, MOVED_HEADER
from triplica.errors import DynamoError, InternalServerError
from triplica.model.partition_map import Route, TableMap
from triplica.router.batch_split import BatchMerge, SubBatch, split_batch, sub_body
from triplica.memds.client import MemdsClient
from triplica.common.internal import (DRAIN_TARGET, INTERNAL_KEY, PARTITION_MAP_TARGET,
                                      ROUTER_STATS_TARGET, VALIDATE_ONLY, WIPE_CACHE_TARGET)
from triplica.router.map_cache import MapCache
from triplica.router.key_routes import KEY_PARAMETER, key_hash
from triplica.router.map_source import MapSource, MemdsFirstMaps, NodeMapSource
from triplica.router.scan_pages import ScanStitch, scan_slices, sub_request

log = logging.getLogger(__name__)

REQUEST_DEADLINE_S = 5.0
ATTEMPT_DEADLINE_S = 2.0
ATTEMPTS_MAX = 64
BACKOFF_S_MIN = 0.01
BACKOFF_S_MAX = 0.2
SELF_HINTS_MAX = 8

CONTROL_OPERATIONS = frozenset({"CreateTable", "DeleteTable", "UpdateTable", "TagResource",
                                "UntagResource"})
CONTROL_DEADLINE_S = 15.0  # a CreateTable waits for its groups' leaders (metadata/control_plane.py)
METADATA = "\0metadata"  # key of the metadata leader in `leaders` (no table has this name)
WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})
READ_OPERATIONS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem"})
KEYED_OPERATIONS = frozenset(KEY_PARAMETER) | {"Query"}
BATCH_OPERATIONS = frozenset({"BatchGetItem", "BatchWriteItem"})
NOT_FOUND_TYPE = b"ResourceNotFoundException"


class StaleRouteError(Exception):
    """A node said the partition a request was routed to has split (nothing ran)."""


class RouterApp:
    def __init__(self, config: RouterConfig, credentials: dict[str, str] | None = None,
                 maps: MapSource | None = None) -> None:
        self.order = [node.id for node in config.nodes]
        self.pools = {node.id: NodePool(node.host, node.http_port) for node in config.nodes}
        self.maps: MapSource = maps if maps is not None else NodeMapSource(self.pools, self.order)
        self.leaders: dict[str, int] = {}  # group key -> node believed to lead the group
        self._round_robin = itertools.cycle(self.order)
        self._member_turn = 0  # spreads eventually consistent reads over a group's members
        self.authenticator = sigv4.Authenticator(credentials)
        self.verifies = credentials is not None
        self.redirects_followed = 0
        self.retries = 0
        self.stale_routes = 0

    def handle(self, request: Request) -> Any:
        target = request.headers.get("x-amz-target")
        if target in (ROUTER_STATS_TARGET, WIPE_CACHE_TARGET):
            return self._admin(target)
        if target == DRAIN_TARGET:
            self.authenticator.check(request, datetime.now(timezone.utc) if self.verifies else None)
            return self._control(request)
        if target == PARTITION_MAP_TARGET:  # operators' tools (`triplica node drain`)
            self.authenticator.check(request, datetime.now(timezone.utc) if self.verifies else None)
            data = encode_request(request.path or "/", request.headers, request.body)
            return self._forward(data, next(self._round_robin), None, self.order, True)
        operation = wire.parse_target(request.headers)
        self.authenticator.check(request, datetime.now(timezone.utc) if self.verifies else None)
        request = content_encoding.decoded_request(request)
        if operation in CONTROL_OPERATIONS:
            return self._control(request)
        if operation in KEYED_OPERATIONS or operation == "Scan" or operation in BATCH_OPERATIONS:
            parameters = _parameters(request.body)
            if parameters is not None:
                return self._item_operation(request, operation, parameters)
        # Unparsable bodies too: any node answers with the SerializationException.
        data = encode_request(request.path or "/", request.headers, request.body)
        return self._forward(data, next(self._round_robin), None, self.order,
                             operation not in WRITE_OPERATIONS)

    async def _item_operation(self, request: Request, operation: str,
                              parameters: dict[str, Any]) -> Response:
        if INTERNAL_KEY in parameters:  # a client's: see the module docstring
            del parameters[INTERNAL_KEY]
            request = Request(request.method, request.path, request.query, request.headers,
                              orjson.dumps(parameters), request.keep_alive, request.http_version)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REQUEST_DEADLINE_S
        backoff_s = BACKOFF_S_MIN
        while True:
            try:
                if operation == "Scan":
                    return await self._scan(request, parameters)
                if operation in BATCH_OPERATIONS:
                    return await self._batch(request, operation, parameters)
                return await self._keyed(request, operation, parameters)
            except StaleRouteError:
                self.stale_routes += 1
                self._forget_maps(operation, parameters)
                if loop.time() + backoff_s >= deadline:
                    raise InternalServerError("Internal server error") from None
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_S_MAX)

    def _forget_maps(self, operation: str, parameters: dict[str, Any]) -> None:
        if operation in BATCH_OPERATIONS:
            tables = parameters.get("RequestItems")
            names = [t for t in tables if type(t) is str] if type(tables) is dict else []
        else:
            names = [parameters["TableName"]] if type(parameters.get("TableName")) is str else []
        for name in names:
            self.maps.invalidate(name)

    # ----- one partition ------------------------------------------------

    async def _route_of(self, parameters: dict[str, Any], operation: str) -> Route | None:
        table_map = await self._map(parameters.get("TableName"))
        if table_map is None:
            return None
        key_hash_value = key_hash(table_map, operation, parameters)
        return None if key_hash_value is None else table_map.route_for_hash(key_hash_value)

    async def _map(self, table: Any) -> TableMap | None:
        return await self.maps.table_map(table) if type(table) is str else None

    async def _keyed(self, request: Request, operation: str,
                     parameters: dict[str, Any]) -> Response:
        """GetItem, PutItem, UpdateItem, DeleteItem, Query: one partition."""
        needs_leader = operation in WRITE_OPERATIONS or parameters.get("ConsistentRead") is True
        route = await self._route_of(parameters, operation)
        data = encode_request(request.path or "/", request.headers, request.body)
        answer = await self._to_partition(data, route, needs_leader,
                                          operation not in WRITE_OPERATIONS)
        self._note_not_found(parameters.get("TableName"), answer)
        return answer

    async def _to_partition(self, data: bytes, route: Route | None, needs_leader: bool,
                            retry_unknown: bool) -> Response:
        """Send to the partition's believed leader or one of its members (any node and the
        redirects when the route is unknown)."""
        if route is None or not route.members:
            return await self._forward(data, next(self._round_robin), None, self.order,
                                       retry_unknown)
        members = list(route.members)
        if needs_leader:
            target = self.leaders.get(route.group, members[0])
            return await self._forward(data, target, route.group, members, retry_unknown)
        self._member_turn = (self._member_turn + 1) % len(members)
        return await self._forward(data, members[self._member_turn], None, members,
                                   retry_unknown)

    def _note_not_found(self, table: Any, answer: Response) -> None:
        """A table the map knew but a node did not: the cached map is stale."""
        if type(table) is str and answer[0] == 400 and NOT_FOUND_TYPE in answer[1]:
            self.maps.invalidate(table)

    # ----- Scan ---------------------------------------------------------

    async def _scan(self, request: Request, parameters: dict[str, Any]) -> Response:
        consistent = parameters.get("ConsistentRead") is True
        table_map = await self._map(parameters.get("TableName"))
        plans = None if table_map is None else scan_slices(table_map, parameters)
        if plans is None:  # no map or a malformed segment/start key: one node answers
            data = encode_request(request.path or "/", request.headers, request.body)
            answer = await self._to_partition(data, None, consistent, True)
            self._note_not_found(parameters.get("TableName"), answer)
            return answer
        stitch = ScanStitch(parameters)
        for number, plan in enumerate(plans):  # at most the table's partition count
            body = sub_request(parameters, plan, number == 0, stitch.limit_left,
                               stitch.bytes_left)
            data = encode_request(request.path or "/", request.headers, orjson.dumps(body))
            answer = await self._to_partition(data, plan.route, consistent, True)
            if answer[0] != 200:
                self._note_not_found(parameters.get("TableName"), answer)
                return answer
            if stitch.add(orjson.loads(answer[1])):
                break
        return 200, orjson.dumps(stitch.response()), None

    # ----- batches ------------------------------------------------------

    async def _batch(self, request: Request, operation: str,
                     parameters: dict[str, Any]) -> Response:
        tables = parameters.get("RequestItems")
        names = [t for t in tables if type(t) is str] if type(tables) is dict else []
        maps = dict(zip(names, await asyncio.gather(*(self._map(t) for t in names))))
        subs = split_batch(operation, parameters, maps)
        writes = operation == "BatchWriteItem"
        if subs is None or len(subs) == 1:  # one node can check (and run) all of it
            route = None if subs is None else subs[0].route
            needs_leader = subs is not None and subs[0].needs_leader
            data = encode_request(request.path or "/", request.headers, request.body)
            answer = await self._to_partition(data, route, needs_leader, not writes)
            for name in names:
                self._note_not_found(name, answer)
            return answer
        # Validation first: DynamoDB rejects a bad batch whole, with nothing changed.
        check = dict(parameters)
        check[INTERNAL_KEY] = {VALIDATE_ONLY: True}
        checked = await self._forward(
            encode_request(request.path or "/", request.headers, orjson.dumps(check)),
            next(self._round_robin), None, self.order, True)
        if checked[0] != 200:
            return checked
        merge = BatchMerge(operation, parameters)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._sub_batch(request, operation, parameters, sub))
                     for sub in subs]
        first_error: Response | None = None
        for sub, task in zip(subs, tasks):
            answer = task.result()
            if answer is not None and answer[0] == 200:
                merge.add_answer(orjson.loads(answer[1]))
                continue
            merge.add_failure(sub)
            if first_error is None:
                first_error = answer
        if merge.succeeded == 0:
            if first_error is not None:
                return first_error
            raise InternalServerError("Internal server error")
        return 200, orjson.dumps(merge.response()), None

    async def _sub_batch(self, request: Request, operation: str, parameters: dict[str, Any],
                         sub: SubBatch) -> Response | None:
        """One sub-batch's answer; None when it got none (its keys go back unprocessed)."""
        data = encode_request(request.path or "/", request.headers,
                              orjson.dumps(sub_body(operation, parameters, sub)))
        try:
            return await self._to_partition(data, sub.route, sub.needs_leader,
                                            operation != "BatchWriteItem")
        except DynamoError:
            return None
        except StaleRouteError:  # the other sub-batches ran: these keys go back unprocessed
            self.stale_routes += 1
            self._forget_maps(operation, parameters)
            return None

    # ----- forwarding -----------------------------------------------------

    def _next(self, node: int, candidates: Sequence[int]) -> int:
        if node not in candidates:
            return candidates[0]
        return candidates[(candidates.index(node) + 1) % len(candidates)]

    async def _forward(self, data: bytes, target: int, group: str | None,
                       candidates: Sequence[int], retry_unknown: bool,
                       deadline_s: float = REQUEST_DEADLINE_S) -> Response:
        """Send to `target`, following redirects, trying `candidates` in turn; a success
        teaches that `target` leads `group` (given only where the leader was needed);
        `retry_unknown` allows retrying attempts whose outcome is unknown (reads)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        # A control operation's one attempt may take its whole deadline (a CreateTable
        # answers once its groups have leaders).
        attempt_s = ATTEMPT_DEADLINE_S if deadline_s <= REQUEST_DEADLINE_S else deadline_s
        backoff_s = BACKOFF_S_MIN
        last: HttpAnswer | None = None
        self_hints = 0
        for _ in range(ATTEMPTS_MAX):
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                break
            wait = True
            try:
                answer = await self.pools[target].request(data, min(remaining_s, attempt_s))
            except (NodeUnreachableError, TimeoutError) as error:
                log.info("node %s unreachable: %s", target, error)
                if not retry_unknown and getattr(error, "sent", True):
                    raise InternalServerError("Internal server error") from None
                target = self._next(target, candidates)
            else:
                if answer.status < 500 and answer.status != 421:
                    if group is not None:
                        self.leaders[group] = target
                    return answer.status, answer.body, None
                if answer.status == 421 and MOVED_HEADER in answer.headers:
                    raise StaleRouteError()
                if answer.status == 421:
                    previous = target
                    target, wait = self._follow(target, answer.headers.get(LEADER_HEADER),
                                                candidates)
                    self_hints = self_hints + 1 if target == previous else 0
                    if self_hints > SELF_HINTS_MAX:  # a deposed leader that does not know yet
                        target, self_hints = self._next(target, candidates), 0
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

    def _follow(self, target: int, hint: str | None,
                candidates: Sequence[int]) -> tuple[int, bool]:
        """Where to go after a 421, and whether to back off first."""
        try:
            leader = int(hint) if hint is not None else None
        except ValueError:
            leader = None
        if leader is None or leader not in self.pools:
            return self._next(target, candidates), True
        if leader == target:
            return target, True
        self.redirects_followed += 1
        return leader, False

    # ----- table operations -----------------------------------------------

    async def _control(self, request: Request) -> Response:
        """To the metadata leader (module docstring); never retried once sent."""
        data = encode_request(request.path or "/", request.headers, request.body)
        try:
            return await self._forward(data, self.leaders.get(METADATA, self.order[0]),
                                       METADATA, self.order, False, CONTROL_DEADLINE_S)
        finally:
            parameters = _parameters(request.body) or {}
            if type(parameters.get("TableName")) is str:  # its partitions may have changed
                self.maps.invalidate(parameters["TableName"])

    def _admin(self, target: str) -> Response:
        """Router stats / cache wipe (router/internal.py)."""
        stats = getattr(self.maps, "stats", None)
        if target == WIPE_CACHE_TARGET:
            cache = getattr(self.maps, "cache", None)
            if cache is not None:
                cache.wipe()
            self.leaders.clear()
        counters = dict(stats()) if stats is not None else {}
        counters.update(retries=self.retries, redirects_followed=self.redirects_followed,
                        stale_routes=self.stale_routes)
        return 200, orjson.dumps(counters), None

    async def close(self) -> None:
        close = getattr(self.maps, "close", None)
        if close is not None:
            await close()
        for pool in self.pools.values():
            pool.close()


def _parameters(body: bytes) -> dict[str, Any] | None:
    """A request body's parameters, or None when it is not a JSON object."""
    try:
        parameters = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return None
    return parameters if type(parameters) is dict else None


def _maps_of(config: RouterConfig) -> MapSource | None:
    """MemDS through the constant-work cache when the config names MemDS servers."""
    if not config.memds:
        return None
    pools = {node.id: NodePool(node.host, node.http_port) for node in config.nodes}
    cache = MapCache(MemdsClient([(m.host, m.port) for m in config.memds]))
    return MemdsFirstMaps(cache, NodeMapSource(pools, [node.id for node in config.nodes]))


def run_router(config: RouterConfig) -> None:
    import uvloop

    credentials = sigv4.load_credentials(config.credentials) if config.credentials else None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve_until_stopped(RouterApp(config, credentials, maps=_maps_of(config)),
                                  config.listen_host, config.port, stop)

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
