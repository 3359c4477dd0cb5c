"""The operation registry and the per-server state handlers see.

Handlers are plain functions `(service, request) -> response`: synchronous for
reads and the control plane, `async` where they wait for the log (writes). A
handler may return a dict (serialized by the caller) or ready-made JSON bytes
(GetItem splices the stored item image into its answer without re-encoding).
"""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Callable

from triplica.common.futures import when_all

if TYPE_CHECKING:
    from triplica.engine.database import Database

Handler = Callable[["Service", dict[str, Any]], Any]
OPERATIONS: dict[str, Handler] = {}
DEFAULT_REGION = "us-east-1"


def register(name: str) -> Callable[[Handler], Handler]:
    def decorate(function: Handler) -> Handler:
        assert name not in OPERATIONS, name
        OPERATIONS[name] = function
        return function
    return decorate


class AfterCommit:
    """A write's answer, to be sent once its log entries are durable.

    Returning this instead of a coroutine lets the dispatcher chain a callback
    on the partition's future: no Task per write on the hot path.
    """

    __slots__ = ("futures", "response")

    def __init__(self, futures: list[Any], response: dict[str, Any]) -> None:
        assert futures
        self.futures = futures
        self.response = response

    def future(self) -> "asyncio.Future[dict[str, Any]]":
        """The answer, once every log entry is committed and applied (callbacks, no task);
        the first failure of an entry fails it."""
        response = self.response
        return when_all(self.futures, lambda _: response)


class Service:
    """What every handler may use: the database, the clock, the request's origin."""

    def __init__(self, db: "Database", clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self._clock = clock
        # Set by the dispatcher before each handler runs; read only before any await.
        self.request_region = DEFAULT_REGION
        self.request_host = "127.0.0.1:8000"

    def now(self) -> float:
        return self._clock()

    def region_of_request(self) -> str:
        return self.request_region

    def host_of_request(self) -> str:
        return self.request_host
