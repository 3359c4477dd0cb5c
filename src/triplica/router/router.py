"""The request router: where each DynamoDB request runs, and its retries.

The API front (api/app.py) hands the router each request as a `Call`
(operation, decoded parameters, origin) after checking its signature and
envelope; the router sends it to storage nodes through a `NodeClient`
(router/node_client.py): directly to the nodes of this process in `triplica
serve`, over the transport to node processes in a cluster. Same code, same
decisions, either way.

Where a request goes:
- table operations (CreateTable, DeleteTable, UpdateTable, TagResource,
  UntagResource, the operator's drain) go to the node whose metadata replica
  leads (any other node says NotLeader, naming it; the router follows): it
  runs the control plane and answers once every node has the change
  (bounded), so they get CONTROL_DEADLINE_S; the table's cached map is
  dropped afterwards;
- item operations go by the table's partition map, from MemDS through the
  constant-work cache (router/map_cache.py: every request makes exactly one
  MemDS lookup, hit or miss), from the nodes while no MemDS server answers
  (router/map_source.py). The partition key's hash (router/key_routes.py)
  picks the partition; writes and strongly consistent reads go to the member
  believed to lead its group (hints per group key, learned from answers and
  redirects), eventually consistent reads to its members in turn, or to
  the believed leader too when `eventual_reads_to_leader` (in one process
  the leader is as near as any member and the freshest, so a client reads
  its own acknowledged writes). A request whose key can't be read goes to
  any node, whose validation answers with DynamoDB's error;
- Scan walks the partitions in hash order with one sub-request each and
  stitches one page (router/scan_pages.py);
- a Query or Scan of a global secondary index (IndexName naming one in the
  table's map) goes by its index table's map instead: a Query to the
  partition holding the index hash of its HASH values, a Scan over all of
  them (router/key_routes.py `read_map_name`);
- BatchGetItem/BatchWriteItem are split by (table, partition) and the
  sub-batches sent in parallel, after the whole batch was checked once by a
  node ("validate only"), so a bad request anywhere changes nothing
  (router/batch_split.py);
- DescribeTable goes to the believed leader of the table's first partition
  (its ItemCount and TableSizeBytes come from the answering node's replicas,
  and a leader's are the freshest), other requests (ListTables, ...) to any
  node, in turn.

What happens after each attempt is router/retries.py (pure, shared with the
simulator): follow a leader hint, back off and try the next member, refresh
the map when a node says the partition was split ("moved": the request runs
again with the new routes within REQUEST_DEADLINE_S; a sub-batch of a split
batch goes back unprocessed instead), retry reads whose outcome is unknown,
and answer a write whose outcome is unknown with a 500 (never run twice).
In a split batch such a sub-batch (or one that got no answer in time) goes
back to the client as unprocessed instead, unless no sub-batch succeeded.

In one process a keyed request first tries the fast path: a cached map, the
believed leader, and the node's handler called inline (`call_now`): the
answer (or the write's commit future) is the router's answer, with no task
and no copy. Anything else (a miss, a redirect) takes the general path
above from the start.
"""
from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
from typing import Any, Sequence

from triplica.common.internal import INTERNAL_KEY, OPERATOR_TARGETS, VALIDATE_ONLY
from triplica.common.redirects import NotLeaderError, PartitionMovedError
from triplica.common.replica_ids import node_of
from triplica.errors import DynamoError, InternalServerError, ResourceNotFoundException
from triplica.model.partition_map import Route, TableMap
from triplica.router.batch_split import BatchMerge, SubBatch, split_batch, sub_body
from triplica.model.index_keys import index_table_name
from triplica.router.key_routes import KEY_PARAMETER, global_index_of, key_hash, read_map_name
from triplica.router.map_source import MapSource
from triplica.router.node_client import Call, NodeClient, NodeLost, NodeNotReached
from triplica.router.retries import (ANSWERED, LOST, MOVED, NOT_LEADER, NOT_REACHED,
                                     SERVER_ERROR, TIMEOUT, Attempts, Outcome)
from triplica.router.scan_pages import ScanStitch, scan_slices, sub_request

log = logging.getLogger(__name__)

# An item request's whole answer, however many partitions, redirects and map refreshes
# it takes: longer than an election on a loaded machine, shorter than an SDK's read
# timeout (boto3: 60 s).
REQUEST_DEADLINE_S = 8.0
ATTEMPT_DEADLINE_S = 2.0
ATTEMPTS_MAX = 64
BACKOFF_S_MAP_MIN = 0.01
BACKOFF_S_MAP_MAX = 0.2

CONTROL_OPERATIONS = frozenset({"CreateTable", "DeleteTable", "UpdateTable", "TagResource",
                                "UntagResource"}) | OPERATOR_TARGETS
CONTROL_DEADLINE_S = 15.0  # a CreateTable waits for its groups' leaders (metadata/control_plane.py)
METADATA = "\0metadata"  # key of the metadata leader in `leaders` (no group has this key)
WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})
KEYED_OPERATIONS = frozenset(KEY_PARAMETER) | {"Query"}
BATCH_OPERATIONS = frozenset({"BatchGetItem", "BatchWriteItem"})
_SLOW = object()  # the fast path can't answer: take the general one
_STALE = object()  # a sub-batch that did not run: its partition was split
# The loop time by which the item request being served must answer (`_item_operation`;
# its sub-batch tasks inherit it).
_REQUEST_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "request_deadline", default=None)


class StaleRouteError(Exception):
    """A node said the partition a request was routed to has split (nothing ran)."""


class Router:
    def __init__(self, nodes: NodeClient, node_ids: Sequence[int], maps: MapSource, *,
                 eventual_reads_to_leader: bool = False) -> None:
        assert node_ids
        self.nodes = nodes
        self.order = list(node_ids)
        self.known = frozenset(self.order)
        self.maps = maps
        self.eventual_reads_to_leader = eventual_reads_to_leader
        self.leaders: dict[str, int] = {}  # group key -> node believed to lead the group
        self._round_robin = itertools.cycle(self.order)
        self._member_turn = 0  # spreads eventually consistent reads over a group's members
        self.redirects_followed = 0
        self.retries = 0
        self.stale_routes = 0
        self.fast_answers = 0

    # ------------------------------------------------------------- entry

    def handle(self, call: Call) -> Any:
        """The answer (dict or JSON bytes), or an awaitable of it; DynamoError if the
        answer is an error."""
        operation = call.operation
        if operation in CONTROL_OPERATIONS:
            return self._control(call)
        if operation in KEYED_OPERATIONS or operation == "Scan" or operation in BATCH_OPERATIONS:
            if operation in KEYED_OPERATIONS and self.nodes.immediate:
                answer = self._keyed_now(call)
                if answer is not _SLOW:
                    return answer
            return self._item_operation(call)
        if operation == "DescribeTable":
            return self._describe(call)
        return self._forward(call, next(self._round_robin), None, self.order,
                             operation not in WRITE_OPERATIONS)

    def _describe(self, call: Call) -> Any:
        table = call.parameters.get("TableName")
        table_map = self.maps.table_map_now(table) if type(table) is str else None
        target = next(self._round_robin)
        if table_map is not None:
            route = table_map.route(0)
            target = self.leaders.get(route.group, node_of(route.members[0]))
            if self.nodes.immediate:
                try:
                    return self.nodes.call_now(target, call)
                except NodeNotReached:
                    target = next(self._round_robin)
        return self._forward(call, target, None, self.order, True)

    # ---------------------------------------------------------- fast path

    def _keyed_now(self, call: Call) -> Any:
        """One partition, in this process, with a cached map (module docstring)."""
        parameters = call.parameters
        table = parameters.get("TableName")
        if type(table) is not str:
            return _SLOW
        table_map = self.maps.table_map_now(table)
        if table_map is None:
            return _SLOW
        hashed = key_hash(table_map, call.operation, parameters)
        if hashed is None:
            return _SLOW
        if call.operation == "Query" and global_index_of(table_map, parameters) is not None:
            # A global index's Query reads its index table (one more map lookup).
            read_map = self.maps.table_map_now(read_map_name(table_map, parameters))
            if read_map is None:
                return _SLOW
            table_map = read_map
        route = table_map.route_for_hash(hashed)
        target, group = self._target(route, call)
        try:
            answer = self.nodes.call_now(target, call)
        except (NotLeaderError, NodeNotReached):
            return _SLOW  # nothing ran: the general path follows the redirects
        except ResourceNotFoundException:
            self.maps.invalidate(table)
            raise
        if group is not None:
            self.leaders[group] = target
        self.fast_answers += 1
        return answer

    def _target(self, route: Route, call: Call) -> tuple[int, str | None]:
        """The node a keyed request goes first, and the group whose leader it is
        believed to be (None when any member will do)."""
        members = [node_of(m) for m in route.members]
        if self._needs_leader(call) or self.eventual_reads_to_leader:
            return self.leaders.get(route.group, members[0]), route.group
        self._member_turn = (self._member_turn + 1) % len(members)
        return members[self._member_turn], None

    @staticmethod
    def _needs_leader(call: Call) -> bool:
        return call.operation in WRITE_OPERATIONS or call.parameters.get("ConsistentRead") is True

    # ------------------------------------------------------ general path

    async def _item_operation(self, call: Call) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REQUEST_DEADLINE_S
        backoff_s = BACKOFF_S_MAP_MIN
        operation = call.operation
        token = _REQUEST_DEADLINE.set(deadline)
        try:
            while True:
                try:
                    if operation == "Scan":
                        return await self._scan(call)
                    if operation in BATCH_OPERATIONS:
                        return await self._batch(call)
                    return await self._keyed(call)
                except StaleRouteError:
                    self.stale_routes += 1
                    self._forget_maps(call)
                    if loop.time() + backoff_s >= deadline:
                        log.warning("%s: partitions still moving after %.1f s; answering 500",
                                    operation, REQUEST_DEADLINE_S)
                        raise InternalServerError("Internal server error") from None
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, BACKOFF_S_MAP_MAX)
        finally:
            _REQUEST_DEADLINE.reset(token)

    def _forget_maps(self, call: Call) -> None:
        parameters = call.parameters
        if call.operation in BATCH_OPERATIONS:
            tables = parameters.get("RequestItems")
            names = [t for t in tables if type(t) is str] if type(tables) is dict else []
        else:
            names = [parameters["TableName"]] if type(parameters.get("TableName")) is str else []
            if names and type(parameters.get("IndexName")) is str:  # a global index's, if any
                names.append(index_table_name(names[0], parameters["IndexName"]))
        for name in names:
            self.maps.invalidate(name)

    async def _map(self, table: Any) -> TableMap | None:
        return await self.maps.table_map(table) if type(table) is str else None

    async def _keyed(self, call: Call) -> Any:
        """GetItem, PutItem, UpdateItem, DeleteItem, Query: one partition."""
        table = call.parameters.get("TableName")
        table_map = await self._map(table)
        route = None
        if table_map is not None:
            hashed = key_hash(table_map, call.operation, call.parameters)
            if hashed is not None and call.operation == "Query" \
                    and global_index_of(table_map, call.parameters) is not None:
                # A global index's Query reads its index table: route by its map.
                table_map = await self._map(read_map_name(table_map, call.parameters))
            if hashed is not None and table_map is not None:
                route = table_map.route_for_hash(hashed)
        return await self._to_partition(call, route, call.operation not in WRITE_OPERATIONS)

    async def _to_partition(self, call: Call, route: Route | None, retry_unknown: bool) -> Any:
        """Send to the partition's believed leader or one of its members (any node and
        the redirects when the route is unknown)."""
        try:
            if route is None or not route.members:
                return await self._forward(call, next(self._round_robin), None, self.order,
                                           retry_unknown)
            target, group = self._target(route, call)
            members = [node_of(m) for m in route.members]
            return await self._forward(call, target, group, members, retry_unknown)
        except ResourceNotFoundException:
            # A table the map knew but a node did not: the cached map is stale.
            table = call.parameters.get("TableName")
            if type(table) is str:
                self.maps.invalidate(table)
            raise

    # ---------------------------------------------------------------- Scan

    async def _scan(self, call: Call) -> Any:
        parameters = call.parameters
        table_map = await self._map(parameters.get("TableName"))
        index = None if table_map is None else global_index_of(table_map, parameters)
        if table_map is not None and index is not None:  # its index table's partitions
            table_map = await self._map(read_map_name(table_map, parameters))
        plans = None if table_map is None else scan_slices(table_map, parameters, index)
        if plans is None:  # no map or a malformed segment/start key: one node answers
            return await self._to_partition(call, None, True)
        stitch = ScanStitch(parameters, index is not None)
        for number, plan in enumerate(plans):  # at most the table's partition count
            body = sub_request(parameters, plan, number == 0, stitch.limit_left,
                               stitch.bytes_left)
            answer = await self._to_partition(
                Call("Scan", body, call.region, call.host), plan.route, True)
            if stitch.add(_as_dict(answer)):
                break
        return stitch.response()

    # ------------------------------------------------------------- batches

    async def _batch(self, call: Call) -> Any:
        operation, parameters = call.operation, call.parameters
        tables = parameters.get("RequestItems")
        names = [t for t in tables if type(t) is str] if type(tables) is dict else []
        maps = dict(zip(names, await asyncio.gather(*(self._map(t) for t in names))))
        subs = split_batch(operation, parameters, maps)
        writes = operation == "BatchWriteItem"
        if subs is None or len(subs) == 1:  # one node can check (and run) all of it
            route = None if subs is None else subs[0].route
            return await self._to_partition(call, route, not writes)
        # Validation first: DynamoDB rejects a bad batch whole, with nothing changed.
        check = dict(parameters)
        check[INTERNAL_KEY] = {VALIDATE_ONLY: True}
        await self._forward(Call(operation, check, call.region, call.host),
                            next(self._round_robin), None, self.order, True)
        merge = BatchMerge(operation, parameters)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._sub_batch(call, sub)) for sub in subs]
        first_error: DynamoError | None = None
        all_stale = True
        for sub, task in zip(subs, tasks):
            answer = task.result()
            if isinstance(answer, DynamoError) or answer is None or answer is _STALE:
                merge.add_failure(sub)
                all_stale = all_stale and answer is _STALE
                if first_error is None and isinstance(answer, DynamoError):
                    first_error = answer
                continue
            merge.add_answer(_as_dict(answer))
        if merge.succeeded == 0:
            if first_error is not None:
                raise first_error
            if all_stale:  # nothing ran anywhere: plan the whole batch again on a new map
                raise StaleRouteError()
            raise InternalServerError("Internal server error")
        return merge.response()

    async def _sub_batch(self, call: Call, sub: SubBatch) -> Any:
        """One sub-batch's answer, its error, None when it got no answer, or _STALE
        when it did not run because the map was stale (its keys go back unprocessed,
        unless no sub-batch ran at all)."""
        body = sub_body(call.operation, call.parameters, sub)
        try:
            return await self._to_partition(Call(call.operation, body, call.region, call.host),
                                            sub.route, call.operation != "BatchWriteItem")
        except DynamoError as error:
            return error if error.status < 500 else None
        except StaleRouteError:  # nothing ran here: these keys go back unprocessed
            self.stale_routes += 1
            self._forget_maps(call)
            return _STALE

    # ---------------------------------------------------------- forwarding

    async def _forward(self, call: Call, target: int, group: str | None,
                       candidates: Sequence[int], retry_unknown: bool,
                       deadline_s: float = REQUEST_DEADLINE_S) -> Any:
        """Send to `target`, following redirects, trying `candidates` in turn (the
        decisions are router/retries.py); a success teaches that `target` leads `group`
        (given only where the leader was needed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        request_deadline = _REQUEST_DEADLINE.get()
        if request_deadline is not None:
            deadline = min(deadline, request_deadline)
        # A control operation's one attempt may take its whole deadline (a CreateTable
        # answers once its groups have leaders).
        attempt_s = ATTEMPT_DEADLINE_S if deadline_s <= REQUEST_DEADLINE_S else deadline_s
        attempts = Attempts(candidates, target, retry_unknown, self.known)
        last_error: DynamoError | None = None
        seen: list[str] = []  # outcome per attempt, for the warning below
        for _ in range(ATTEMPTS_MAX):
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                break
            node = attempts.target
            answer: Any = None
            try:
                answer = await self.nodes.call(node, call, min(remaining_s, attempt_s))
                outcome = Outcome(ANSWERED)
            except PartitionMovedError:
                outcome = Outcome(MOVED)
            except NotLeaderError as error:
                hint = None if error.leader_id is None else node_of(error.leader_id)
                outcome = Outcome(NOT_LEADER, hint)
            except NodeNotReached as error:
                log.info("node %s not reached: %s", node, error)
                outcome = Outcome(NOT_REACHED)
            except NodeLost as error:
                log.info("node %s lost a call: %s", node, error)
                outcome = Outcome(LOST)
            except TimeoutError:
                outcome = Outcome(TIMEOUT)
            except DynamoError as error:
                if error.status < 500:
                    raise
                last_error = error
                outcome = Outcome(SERVER_ERROR)
            seen.append(f"{node}:{outcome.kind}")
            decision = attempts.after(outcome)
            if decision.done:
                if outcome.kind != ANSWERED:
                    assert last_error is not None
                    raise last_error
                if group is not None:
                    self.leaders[group] = node
                return answer
            if decision.refresh:
                raise StaleRouteError()
            if decision.give_up:
                log.warning("%s to node %s: outcome unknown (%s); answering 500",
                            call.operation, node, outcome.kind)
                raise InternalServerError("Internal server error")
            self.retries += 1
            if outcome.kind == NOT_LEADER and decision.target != node:
                self.redirects_followed += 1
            if decision.wait_s:
                await asyncio.sleep(min(decision.wait_s, max(0.0, deadline - loop.time())))
        log.warning("%s: no answer within %.1f s (attempts %s); answering %s",
                    call.operation, deadline_s, " ".join(seen[-12:]),
                    "its last error" if last_error is not None else "500")
        if last_error is not None:
            raise last_error
        raise InternalServerError("Internal server error")

    # -------------------------------------------------------- table operations

    async def _control(self, call: Call) -> Any:
        """To the metadata leader (module docstring); never retried once sent."""
        try:
            return await self._forward(call, self.leaders.get(METADATA, self.order[0]),
                                       METADATA, self.order, False, CONTROL_DEADLINE_S)
        finally:
            table = call.parameters.get("TableName")
            if type(table) is str:  # its partitions may have changed
                self.maps.invalidate(table)

    # -------------------------------------------------------------- operators

    def stats(self) -> dict[str, Any]:
        stats = getattr(self.maps, "stats", None)
        counters = dict(stats()) if stats is not None else {}
        counters.update(retries=self.retries, redirects_followed=self.redirects_followed,
                        stale_routes=self.stale_routes, fast_answers=self.fast_answers)
        return counters

    def wipe_cache(self) -> None:
        wipe = getattr(self.maps, "wipe", None)
        if wipe is not None:
            wipe()
        self.leaders.clear()

    async def close(self) -> None:
        close = getattr(self.maps, "close", None)
        if close is not None:
            await close()
        await self.nodes.close()


def _as_dict(answer: Any) -> dict[str, Any]:
    """A node's answer as a dict (a node in another process may send JSON bytes)."""
    if type(answer) is dict:
        return answer
    import orjson
    decoded = orjson.loads(answer)
    assert type(decoded) is dict, type(decoded)
    return decoded
