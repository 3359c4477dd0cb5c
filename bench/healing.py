"""Healing bench: how fast a group replaces a replica whose node stays down.

    .venv/bin/python bench/healing.py [--runs 3] [--items 5000] [--item-bytes 1000]

Each run builds the deployment of `triplica serve --nodes 6 --replace-after 1`
in this process (hosting/serve.py: six storage nodes, two per AZ, the
metadata group on three of them, MemDS and the router, in-process transport)
in a temporary directory, creates a one-partition table, loads ITEMS items
of ITEM_BYTES through the router, then stops one node holding a follower of
the table's group (its StorageNode, metadata role and peer endpoint are
closed: to the others it is silent, like a machine that lost power), while
one writer keeps sending PutItem through the router back to back. The
control plane (metadata/replica_mover.py, running replication/healing.py's
plan) declares the node dead after `replace_after_s` = 1 s of silence and
replaces its replica: {A, B, X} -> {A, B, X, L} -> {A, B, L} -> {A, B, L, F}
-> {A, B, F}. The bench records, from the kill:

- declared_ms: until a node outside the group hosts a replica of it (the
  log replica L was placed; includes the 1 s of silence and the mover's
  ping cadence);

and from that moment (as the previous, per-group healer's bench did):

- voters_ms: until a configuration with the log replica is committed (three
  live voters again);
- full_ms: until the fresh full replica F is a committed member;
- done_ms: until the group is three full members again (L and X gone);
- the writer's latency p50/p99/max and its failures over the whole run.

The victim is a follower that holds no metadata replica when there is one
(else the mover would first move the metadata group). Medians over the runs
go to stdout and bench/results/healing.md.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import tempfile
import time

import orjson

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from triplica.hosting.serve import Deployment, ServeSettings  # noqa: E402
from triplica.router.node_client import Call  # noqa: E402

RUN_S_MAX = 120.0
READY_S_MAX = 30.0
WRITES_MAX = 200_000
LOAD_BATCH = 50
TABLE = "heal"
RESULTS = os.path.join(os.path.dirname(__file__), "results", "healing.md")


async def call(deployment: Deployment, operation: str, parameters: dict) -> dict:
    """One DynamoDB operation through the deployment's router (no HTTP)."""
    assert deployment.router is not None
    answer = deployment.router.handle(Call(operation, parameters, "us-east-1", "127.0.0.1:8000"))
    if not isinstance(answer, (dict, bytes)):
        answer = await answer
    return orjson.loads(answer) if isinstance(answer, bytes) else answer


def item(i: int, size: int, prefix: str = "item") -> dict:
    return {"pk": {"S": f"{prefix}{i:08d}"}, "v": {"S": (b"%08d" % i).decode() * (size // 8)}}


async def create_table(deployment: Deployment) -> None:
    await call(deployment, "CreateTable", {
        "TableName": TABLE, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
    deadline = time.monotonic() + READY_S_MAX
    while time.monotonic() < deadline:
        described = await call(deployment, "DescribeTable", {"TableName": TABLE})
        if described["Table"]["TableStatus"] == "ACTIVE":
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"table {TABLE} not ACTIVE after {READY_S_MAX} s")


def table_group(deployment: Deployment) -> tuple[str, list[int]]:
    for node in deployment.nodes.values():
        info = node.db.catalogue.tables.get(TABLE)
        if info is not None:
            assert len(info.partitions) == 1, "expected a one-partition table"
            partition = info.partitions[0]
            return partition.group, sorted(partition.members)
    raise RuntimeError(f"no node knows table {TABLE}")


def group_leader(deployment: Deployment, group: str):
    for node_id, node in deployment.nodes.items():
        replica = node.replica_for(group)
        if replica is not None and not replica.closed and replica.status() is not None:
            return node_id, replica
    return None, None


def metadata_members(deployment: Deployment) -> set[int]:
    return {m for role in deployment.roles.values() for m in role.members}


async def stop_node(deployment: Deployment, node_id: int) -> None:
    """The node goes silent: no answers to peers, its replicas and roles closed."""
    await deployment.meshes[node_id].close()
    await deployment.roles[node_id].close()
    await deployment.nodes[node_id].close()


async def one_run(directory: str, items: int, item_bytes: int) -> dict:
    settings = ServeSettings(data_dir=directory, nodes=6, replicas=3, replace_after_s=1.0)
    deployment = Deployment(settings)
    stopped: int | None = None
    try:
        await deployment.start()
        waiting = await deployment.wait_ready()
        assert not waiting, f"groups without a leader: {waiting}"
        await create_table(deployment)
        for start in range(0, items, LOAD_BATCH):
            await asyncio.gather(*(call(deployment, "PutItem", {"TableName": TABLE,
                                                                "Item": item(i, item_bytes)})
                                   for i in range(start, min(items, start + LOAD_BATCH))))
        group, members = table_group(deployment)
        leader, _ = group_leader(deployment, group)
        assert leader is not None, f"group {group} has no leader"
        followers = [n for n in members if n != leader]
        plain = [n for n in followers if n not in metadata_members(deployment)]
        victim = (plain or followers)[0]
        latencies: list[float] = []
        failures = 0
        stop = asyncio.Event()

        async def writer() -> None:
            nonlocal failures
            i = 0
            while not stop.is_set() and i < WRITES_MAX:
                began = time.perf_counter()
                try:
                    await call(deployment, "PutItem", {"TableName": TABLE,
                                                       "Item": item(i, 100, "live")})
                    latencies.append(time.perf_counter() - began)
                except Exception:
                    failures += 1
                    await asyncio.sleep(0.001)
                i += 1

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.2)
        killed = time.monotonic()
        stopped = victim
        await stop_node(deployment, victim)
        marks: dict[str, float] = {}
        deadline = killed + RUN_S_MAX
        while time.monotonic() < deadline:
            now = time.monotonic()
            outside = [n for n, node in deployment.nodes.items()
                       if n not in members and group in node.replicas]
            if outside and "declared" not in marks:
                marks["declared"] = now
            _, replica = group_leader(deployment, group)
            committed = replica.committed_members() if replica is not None else None
            if committed is not None and "declared" in marks:
                full, log_replicas = committed
                if log_replicas and "voters" not in marks:
                    marks["voters"] = now
                if any(n not in members and n not in log_replicas for n in full) \
                        and "full" not in marks:
                    marks["full"] = now
                if ("full" in marks and not log_replicas and len(full) == 3
                        and victim not in full):
                    marks["done"] = now
                    break
            await asyncio.sleep(0.005)
        stop.set()
        await task
        assert "done" in marks, f"healing did not finish within {RUN_S_MAX} s: {marks}"
        marks.setdefault("voters", marks["full"])  # a step faster than one poll
        latencies.sort()
        return {
            "declared_ms": (marks["declared"] - killed) * 1000,
            "voters_ms": (marks["voters"] - marks["declared"]) * 1000,
            "full_ms": (marks["full"] - marks["declared"]) * 1000,
            "done_ms": (marks["done"] - marks["declared"]) * 1000,
            "writes": len(latencies), "failures": failures,
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "max_ms": latencies[-1] * 1000,
        }
    finally:
        if stopped is not None:  # already closed; Deployment.close must not close it twice
            deployment.nodes.pop(stopped, None)
            deployment.roles.pop(stopped, None)
            deployment.meshes.pop(stopped, None)
        await deployment.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--item-bytes", type=int, default=1_000)
    args = parser.parse_args()
    results = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="triplica-healing-") as directory:
            result = asyncio.run(one_run(directory, args.items, args.item_bytes))
        results.append(result)
        print(f"run {run + 1}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in result.items()), flush=True)
    keys = list(results[0])
    medians = {k: statistics.median(r[k] for r in results) for k in keys}
    maxima = {k: max(r[k] for r in results) for k in keys}
    lines = [f"# Healing a replica whose node stays down ({dt.date.today()})", "",
             f"`bench/healing.py --runs {args.runs} --items {args.items} --item-bytes {args.item_bytes}`"
             f" ({args.items * args.item_bytes / 1e6:.0f} MB of items): serve's deployment with six "
             "nodes, replace-after 1 s, one writer through the router during the replacement. "
             "declared_ms counts from the kill; voters/full/done from the declaration.",
             "", "| measure | median | max |", "|---|---|---|"]
    lines += [f"| {k} | {medians[k]:.1f} | {maxima[k]:.1f} |" for k in keys]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(RESULTS, "w") as file:
        file.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
