"""`triplica node drain`: move every replica off one node, and wait until none is left.

Asks the cluster (through a router) to drain the node: the metadata leader
records it and its replica mover (metadata/replica_mover.py) moves the
node's replicas, one group at a time, to other nodes of the same AZ. This
waits (bounded) until no partition of any table lists the node, asking the
router for each table's partition map. `--undo` stops a drain.
"""
from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from triplica.common.internal import DRAIN_TARGET, PARTITION_MAP_TARGET
from triplica.common.replica_ids import node_of

POLL_S = 1.0
CALL_S = 20.0
LIST_PAGES_MAX = 1000


def _call(endpoint: str, target: str, body: dict[str, Any]) -> Any:
    """POST one request, SigV4-signed like an SDK's (the router checks signatures when it
    has credentials): keys from the usual AWS environment, else placeholders."""
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    session = boto3.session.Session()
    credentials = session.get_credentials() or Credentials("triplica", "triplica")
    url = endpoint.rstrip("/") + "/"
    data = json.dumps(body).encode()
    signed = AWSRequest(method="POST", url=url, data=data,
                        headers={"X-Amz-Target": target,
                                 "Content-Type": "application/x-amz-json-1.0"})
    SigV4Auth(credentials, "dynamodb", session.region_name or "us-east-1").add_auth(signed)
    request = urllib.request.Request(url, data=data, method="POST", headers=dict(signed.headers))
    with urllib.request.urlopen(request, timeout=CALL_S) as answer:
        return json.loads(answer.read())


def replicas_on(endpoint: str, node: int) -> int:
    """How many partitions (of all tables) still have a replica on `node`."""
    count, start = 0, None
    for _ in range(LIST_PAGES_MAX):
        body: dict[str, Any] = {} if start is None else {"ExclusiveStartTableName": start}
        page = _call(endpoint, "DynamoDB_20120810.ListTables", body)
        for name in page.get("TableNames", []):
            table_map = _call(endpoint, PARTITION_MAP_TARGET, {"TableName": name})
            count += sum(any(node_of(int(m)) == node for m in p["members"])  # replica ids
                         for p in table_map["partitions"])
        start = page.get("LastEvaluatedTableName")
        if start is None:
            return count
    raise RuntimeError("too many tables")


def drain(endpoint: str, node: int, wait_s: float, undo: bool = False) -> int:
    """Start (or stop) draining; returns the replicas left on the node after waiting."""
    _call(endpoint, DRAIN_TARGET, {"Node": node, "Drain": not undo})
    deadline = time.monotonic() + wait_s
    left = replicas_on(endpoint, node)
    while not undo and left and time.monotonic() < deadline:
        time.sleep(POLL_S)
        left = replicas_on(endpoint, node)
    return left
