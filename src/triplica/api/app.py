"""The DynamoDB application: envelope -> authentication -> operation handler.

`handle` is called by the HTTP front for every request. It returns the
response directly when the handler is synchronous (reads, control plane) and
an awaitable when the handler waits for the log (writes).
"""
from __future__ import annotations

import inspect
import logging
from datetime import datetime, timezone
from typing import Any, Awaitable

import orjson

# Importing the operation modules registers their handlers.
from triplica.api import ops_batch, ops_items, ops_query, ops_tables  # noqa: F401
from triplica.api import sigv4, wire
from triplica.api.http_server import Request, Response
from triplica.api.service import DEFAULT_REGION, OPERATIONS, Service
from triplica.engine.database import Database
from triplica.errors import UnknownOperationException

log = logging.getLogger(__name__)


class TriplicaApp:
    def __init__(self, db: Database, credentials: dict[str, str] | None = None) -> None:
        self.db = db
        self.service = Service(db)
        self.authenticator = sigv4.Authenticator(credentials)

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        headers = request.headers
        operation = wire.parse_target(headers)
        self.authenticator.check(request, datetime.now(timezone.utc))
        wire.check_content_type(headers)
        parameters = wire.parse_body(request.body)
        handler = OPERATIONS.get(operation)
        if handler is None:
            raise UnknownOperationException(
                f"The operation {operation} is not supported by this triplica release")
        if operation in ("CreateTable", "DescribeEndpoints"):
            self._note_origin(headers)
        result = handler(self.service, parameters)
        if inspect.isawaitable(result):
            return self._finish_later(result)
        return 200, result if type(result) is bytes else orjson.dumps(result), None

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
