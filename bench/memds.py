"""MemDS lookups per request with the router's cache warm, cold and wiped.

Paper: the router's partition-map cache must not make MemDS load depend on
the cache's state. This starts a 3-node cluster with two MemDS servers
(`triplica cluster up`), creates a provisioned table of several
partitions, and runs the same GetItem workload through the router three
times: cold (cache wiped just before), warm (cache full), and wiped halfway.
For each phase it reads the router's counters (`Triplica.RouterStats`) and
the MemDS servers' own lookup counters, and reports MemDS calls per request.

    python bench/memds.py --requests 2000
Writes bench/results/memds.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

from triplica.cluster.local import MEMDS_PORT_OFFSET, cluster_down, cluster_up
from triplica.memds.client import MemdsClient
from triplica.common.internal import ROUTER_STATS_TARGET, WIPE_CACHE_TARGET

REQUESTS_MAX = 100_000
MEMDS_SERVERS = 2
KEYS = 500


def _router_admin(endpoint: str, target: str) -> dict:
    request = urllib.request.Request(endpoint + "/", data=b"{}", method="POST",
                                     headers={"X-Amz-Target": target})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _memds_lookups(base_port: int) -> int:
    async def read() -> int:
        total = 0
        for m in range(1, MEMDS_SERVERS + 1):
            client = MemdsClient([("127.0.0.1", base_port + MEMDS_PORT_OFFSET + m)])
            try:
                total += int((await client.stats())["lookups"])
            finally:
                await client.close()
        return total
    return asyncio.run(read())


def _phase(ddb, endpoint: str, base_port: int, requests: int, wipe_at: int | None) -> dict:
    router_before = _router_admin(endpoint, ROUTER_STATS_TARGET)
    memds_before = _memds_lookups(base_port)
    rng = random.Random(7)
    started = time.monotonic()
    for i in range(requests):
        if wipe_at is not None and i == wipe_at:
            _router_admin(endpoint, WIPE_CACHE_TARGET)
        ddb.get_item(TableName="bench", Key={"pk": {"S": f"k{rng.randrange(KEYS)}"}})
    elapsed_s = time.monotonic() - started
    time.sleep(0.5)  # background lookups of the last hits land
    router_after = _router_admin(endpoint, ROUTER_STATS_TARGET)
    memds_after = _memds_lookups(base_port)
    counted = {k: router_after[k] - router_before.get(k, 0)
               for k in ("requests", "hits", "misses", "memds_calls", "shed")}
    counted["memds_lookups_served"] = memds_after - memds_before
    counted["per_request"] = counted["memds_lookups_served"] / requests
    counted["requests_per_s"] = requests / elapsed_s
    return counted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--base-port", type=int, default=27000)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "memds.md"))
    args = parser.parse_args(argv)
    assert 1 <= args.requests <= REQUESTS_MAX
    data_dir = tempfile.mkdtemp(prefix="triplica-memds-bench-")
    endpoint = cluster_up(data_dir, base_port=args.base_port, memds=MEMDS_SERVERS)[0]
    try:
        ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="bench", aws_secret_access_key="bench",
                           config=Config(retries={"max_attempts": 3}))
        ddb.create_table(TableName="bench", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         ProvisionedThroughput={"ReadCapacityUnits": 9000,
                                                "WriteCapacityUnits": 1000})
        for k in range(KEYS):
            ddb.put_item(TableName="bench", Item={"pk": {"S": f"k{k}"}, "v": {"N": str(k)}})
        _router_admin(endpoint, WIPE_CACHE_TARGET)
        phases = {"cold (wiped before)": _phase(ddb, endpoint, args.base_port, args.requests, 0),
                  "warm": _phase(ddb, endpoint, args.base_port, args.requests, None),
                  "wiped halfway": _phase(ddb, endpoint, args.base_port, args.requests,
                                          args.requests // 2)}
    finally:
        cluster_down(data_dir)
    lines = ["# MemDS lookups per request (bench/memds.py)", "",
             f"`python bench/memds.py --requests {args.requests}`: GetItem through one router, "
             "3 nodes, 2 MemDS servers, a 3-partition table.", "",
             "| router cache | requests | hits | misses | router MemDS calls | "
             "lookups served by MemDS | per request | GetItem/s |",
             "|---|---|---|---|---|---|---|---|"]
    for name, c in phases.items():
        lines.append(f"| {name} | {c['requests']} | {c['hits']} | {c['misses']} | "
                     f"{c['memds_calls']} | {c['memds_lookups_served']} | "
                     f"{c['per_request']:.3f} | {c['requests_per_s']:.0f} |")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as file:
        file.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
