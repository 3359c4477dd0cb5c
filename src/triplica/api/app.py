"""The DynamoDB front: envelope and authentication, then the router.

`handle` is called by the HTTP front (http_server.py) for every request:
it reads the operation from X-Amz-Target, checks the SigV4 signature and
the content type, decodes the JSON body, and hands the router (router/
router.py) a `Call`. The router's answer is a dict (encoded here), JSON
bytes (sent as they are), or an awaitable of either (a write waiting for
its log entries; anything the router had to wait for); errors are
DynamoError, which the HTTP front turns into DynamoDB's JSON error.

A client's own internal parameters (common/internal.py) are dropped here:
only a router may restrict what a node does.

Operators' targets (not DynamoDB operations, common/internal.py):
`Triplica.RouterStats` (the router's counters), `Triplica.WipeRouterCache`
(benchmarks), `Triplica.DrainNode` and `Triplica.PartitionMap` (what
`triplica node drain` asks).
"""
from __future__ import annotations

import asyncio
import inspect
from datetime import datetime, timezone
from typing import Any, Awaitable

import orjson

from triplica.api import content_encoding, sigv4, wire
from triplica.api.http_server import Request, Response
from triplica.common.futures import when_all
from triplica.common.internal import (INTERNAL_KEY, OPERATOR_TARGETS, PARTITION_MAP_TARGET,
                                      ROUTER_STATS_TARGET, WIPE_CACHE_TARGET)
from triplica.router.node_client import Call
from triplica.router.router import Router

DEFAULT_REGION = "us-east-1"
FORWARDED_TARGETS = OPERATOR_TARGETS | {PARTITION_MAP_TARGET}
# Operations whose answer names the request's region or host (an ARN, an endpoint);
# the others skip reading the Authorization header again.
ORIGIN_OPERATIONS = frozenset({"CreateTable", "DescribeEndpoints"})


class DynamoApp:
    def __init__(self, router: Router, credentials: dict[str, str] | None = None) -> None:
        self.router = router
        self.authenticator = sigv4.Authenticator(credentials)
        self.verifies = credentials is not None

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        headers = request.headers
        target = headers.get("x-amz-target")
        if target in (ROUTER_STATS_TARGET, WIPE_CACHE_TARGET):
            if target == WIPE_CACHE_TARGET:
                self.router.wipe_cache()
            return 200, orjson.dumps(self.router.stats()), None
        if target in FORWARDED_TARGETS:
            operation = target
        else:
            operation = wire.parse_target(headers)
        self.authenticator.check(request, datetime.now(timezone.utc) if self.verifies else None)
        wire.check_content_type(headers)
        parameters = wire.parse_body(content_encoding.decoded_body(headers, request.body))
        parameters.pop(INTERNAL_KEY, None)
        region = region_of(headers) if operation in ORIGIN_OPERATIONS else DEFAULT_REGION
        call = Call(operation, parameters, region, headers.get("host", "127.0.0.1:8000"))
        return respond(self.router.handle(call))

    async def close(self) -> None:
        await self.router.close()


def respond(result: Any) -> Response | Awaitable[Response]:
    """An HTTP response for an answer, or an awaitable of one for an awaitable answer
    (a future is chained with a callback: no task per write)."""
    kind = type(result)
    if kind is dict:
        return 200, orjson.dumps(result), None
    if kind is bytes:
        return 200, result, None
    if isinstance(result, asyncio.Future):
        return _chain(result)
    assert inspect.isawaitable(result), kind
    return _finish_later(result)


def _chain(pending: asyncio.Future) -> "asyncio.Future[Response]":
    return when_all((pending,), _response_of)


def _response_of(future: asyncio.Future) -> Response:
    result = future.result()
    return 200, result if type(result) is bytes else orjson.dumps(result), None


async def _finish_later(pending: Awaitable[Any]) -> Response:
    result = await pending
    return 200, result if type(result) is bytes else orjson.dumps(result), None


def region_of(headers: dict[str, str]) -> str:
    try:
        return sigv4.parse_authorization(headers.get("authorization")).region or DEFAULT_REGION
    except Exception:  # authentication already passed, or is not checked: fall back quietly
        return DEFAULT_REGION
