"""Internal request parameters: honoured by a node's calls, dropped from a client's request.

On the engine `triplica serve` hosts: a node's `handle_call` (what a router
calls) runs a validate-only batch and a Scan restricted to a hash range;
the same parameters sent by a client through the API front are dropped, so
the batch runs as a plain batch and the Scan covers the whole table.
"""
from __future__ import annotations

import asyncio
import inspect
from typing import Any

from tests.unit.deployment_harness import call, create_table, started
from triplica.common.internal import (BYTES_READ, INTERNAL_KEY, LAST_KEY, VALIDATE_ONLY,
                                      encode_scan_slice)
from triplica.hosting.serve import Deployment
from triplica.model.partition_map import HASH_SPACE_END

ITEMS = 20


async def _node_call(deployment: Deployment, operation: str, body: dict[str, Any]) -> dict:
    """Straight to the node that leads the table's partition, as a router calls it."""
    node = next(n for n in deployment.nodes.values()
                if any(r.serving() for r in n.db.tables["tbl"].partitions))
    result = node.handle_call(operation, body, "us-east-1", "test")
    return await result if inspect.isawaitable(result) else result


def _run(tmp_path: Any, internal: bool) -> dict[str, Any]:
    """Write through a validate-only batch, then scan a slice of the hash space."""
    async def scenario() -> dict[str, Any]:
        deployment = await started(str(tmp_path))
        send = _node_call if internal else call
        try:
            await create_table(deployment, "tbl")
            checked = await send(deployment, "BatchWriteItem", {
                "RequestItems": {"tbl": [{"PutRequest": {"Item": {"pk": {"S": f"k{i}"}}}}
                                         for i in range(ITEMS)]},
                INTERNAL_KEY: {VALIDATE_ONLY: True}})
            if not internal:  # the check ran as a plain batch
                assert checked == {"UnprocessedItems": {}}
            else:
                assert checked == {}
                await call(deployment, "BatchWriteItem", {"RequestItems": {"tbl": [
                    {"PutRequest": {"Item": {"pk": {"S": f"k{i}"}}}} for i in range(ITEMS)]}})
            whole = await call(deployment, "Scan", {"TableName": "tbl"})
            assert whole["Count"] == ITEMS
            sliced = await send(deployment, "Scan", {"TableName": "tbl", "Limit": 3,
                                                     INTERNAL_KEY: encode_scan_slice(0, 1, 1000)})
            upper = await send(deployment, "Scan", {
                "TableName": "tbl", "Limit": 3,
                INTERNAL_KEY: encode_scan_slice(HASH_SPACE_END // 2, HASH_SPACE_END, 1000)})
            return {"sliced": sliced, "upper": upper}
        finally:
            await deployment.close()
    return asyncio.run(scenario())


def test_a_node_honours_internal_parameters(tmp_path: Any) -> None:
    answers = _run(tmp_path, internal=True)
    assert answers["sliced"]["Count"] == 0
    assert answers["sliced"][INTERNAL_KEY] == {LAST_KEY: None, BYTES_READ: 0}
    upper = answers["upper"]
    assert upper["ScannedCount"] == 3 and upper[INTERNAL_KEY][LAST_KEY] == \
        upper["LastEvaluatedKey"]
    assert upper[INTERNAL_KEY][BYTES_READ] > 0


def test_the_api_front_drops_a_clients(tmp_path: Any) -> None:
    answers = _run(tmp_path, internal=False)
    assert answers["sliced"]["Count"] == 3 and INTERNAL_KEY not in answers["sliced"]
    assert INTERNAL_KEY not in answers["upper"]
