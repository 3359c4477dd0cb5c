"""The DynamoDB application: envelope -> authentication -> operation handler.

`handle` is called by the HTTP front for every request. It returns the
response directly when the handler is synchronous (reads, control plane) and
an awaitable when the handler waits for the log (writes).

Internal parameters (router/internal.py, key INTERNAL_KEY in the body) are
honoured only by a storage node's app (`accepts_internal=True`), which only
its router talks to; everywhere else they are dropped before any handler
sees the request, so a client cannot use them.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from datetime import datetime, timezone
from typing import Any, Awaitable

import orjson

from triplica.api import content_encoding, request_types, sigv4, wire
from triplica.api.http_server import Request, Response
from triplica.engine.operations.service import DEFAULT_REGION, OPERATIONS, AfterCommit, Service
from triplica.engine.database import Database
from triplica.errors import UnknownOperationException
from triplica.common.internal import INTERNAL_KEY

log = logging.getLogger(__name__)


class TriplicaApp:
    def __init__(self, db: Database, credentials: dict[str, str] | None = None,
                 accepts_internal: bool = False) -> None:
        self.db = db
        self.accepts_internal = accepts_internal
        self.service = Service(db)
        self.authenticator = sigv4.Authenticator(credentials)
        self.verifies = credentials is not None

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        headers = request.headers
        operation = wire.parse_target(headers)
        self.authenticator.check(request, datetime.now(timezone.utc) if self.verifies else None)
        wire.check_content_type(headers)
        parameters = wire.parse_body(content_encoding.decoded_body(headers, request.body))
        if not self.accepts_internal:
            parameters.pop(INTERNAL_KEY, None)
        handler = OPERATIONS.get(operation)
        if handler is None:
            raise UnknownOperationException(
                f"The operation {operation} is not supported by this triplica release")
        request_types.check_request(operation, parameters)
        if operation in ("CreateTable", "DescribeEndpoints"):
            self._note_origin(headers)
        result = handler(self.service, parameters)
        kind = type(result)
        if kind is dict:
            return 200, orjson.dumps(result), None
        if kind is bytes:
            return 200, result, None
        if kind is AfterCommit:
            return _after_commit(result)
        assert inspect.isawaitable(result), kind
        return self._finish_later(result)

    async def _finish_later(self, pending: Awaitable[Any]) -> Response:
        result = await pending
        return 200, result if type(result) is bytes else orjson.dumps(result), None

    def _note_origin(self, headers: dict[str, str]) -> None:
        try:
            region = sigv4.parse_authorization(headers.get("authorization")).region
        except Exception:  # authentication already passed; fall back quietly
            region = DEFAULT_REGION
        self.service.request_region = region or DEFAULT_REGION
        self.service.request_host = headers.get("host", "127.0.0.1:8000")

    async def close(self) -> None:
        await self.db.close()


def _after_commit(result: AfterCommit) -> "asyncio.Future[Response]":
    """A future for the HTTP layer that resolves once every log entry is durable."""
    answer: asyncio.Future = asyncio.get_running_loop().create_future()
    response: Response = (200, orjson.dumps(result.response), None)
    remaining = [len(result.futures)]

    def committed(future: asyncio.Future) -> None:
        if answer.done():
            return
        if future.cancelled():
            answer.cancel()
            return
        error = future.exception()
        if error is not None:
            answer.set_exception(error)
            return
        remaining[0] -= 1
        if remaining[0] == 0:
            answer.set_result(response)

    for future in result.futures:
        future.add_done_callback(committed)
    return answer
