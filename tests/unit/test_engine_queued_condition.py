"""A condition that fails because of a queued (not yet durable) write must not be
answered before that write is durable: otherwise a client could observe a write
that readers cannot see yet, and that may never happen (found by the chaos
linearizability check). Run on the engine `triplica serve` hosts, with one and
with three replicas per partition."""
from __future__ import annotations

import asyncio
import inspect
from typing import Any

import orjson
import pytest

from tests.unit.deployment_harness import create_table, request, started
from triplica.errors import ConditionalCheckFailedException


@pytest.mark.parametrize("replicas", [1, 3])
def test_condition_failure_waits_for_the_queued_write(tmp_path: Any, replicas: int) -> None:
    async def scenario() -> None:
        deployment = await started(str(tmp_path), replicas=replicas, nodes=replicas,
                                   sync="always")
        app = deployment.app
        assert app is not None
        try:
            await create_table(deployment, "queued")
            put = {"TableName": "queued", "Item": {"pk": {"S": "k"}, "v": {"S": "1"}}}
            # Warm the router's map (the first request of a table takes the slow path).
            await app.handle(request("PutItem", {**put, "Item": {"pk": {"S": "warm"}}}))
            first = app.handle(request("PutItem", put))
            assert inspect.isawaitable(first)  # queued, not durable yet
            # Evaluated against the queued item: the condition fails...
            failed = app.handle(request("PutItem", {
                "TableName": "queued", "Item": {"pk": {"S": "k"}, "v": {"S": "2"}},
                "ConditionExpression": "attribute_not_exists(pk)"}))
            # ...but the answer is held back while a reader still sees no item.
            assert inspect.isawaitable(failed)
            status, body, _ = app.handle(request("GetItem", {"TableName": "queued",
                                                             "Key": {"pk": {"S": "k"}}}))
            assert status == 200 and orjson.loads(body) == {}
            await first
            with pytest.raises(ConditionalCheckFailedException):
                await failed
            status, body, _ = app.handle(request("GetItem", {"TableName": "queued",
                                                             "Key": {"pk": {"S": "k"}}}))
            assert orjson.loads(body)["Item"]["v"] == {"S": "1"}
        finally:
            await deployment.close()

    asyncio.run(scenario())
