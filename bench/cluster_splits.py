"""Splits for consumption on a multi-process cluster, second by second.

    .venv/bin/python bench/cluster_splits.py [--seconds 60] [--connections 32] [--zipf 1.1]

Paper: a partition that keeps running hot splits at a key chosen from the
traffic it saw, so that heavy items end up on different partitions (and,
with their leaders, on different nodes). This runs the same skewed workload
twice, each time on a fresh local cluster (`triplica cluster up`: three node
processes in three AZs, two MemDS servers, one router, all on 127.0.0.1):

- "no splits": consumption splits off (`--no-split-for-traffic`);
- "splits": consumption splits on, with DynamoDB's per-partition limit of
  1,000 write units (a partition above 80% of it for three 5 s windows
  splits; the point comes from the observed key distribution);
- "4 partitions": splits off, the table created provisioned with 4,000 WCU
  (four partitions from the start): what the same writes cost in four groups
  on this machine, with no split involved.

The workload: one on-demand table (one partition at first), PutItem of
~1 KB items (1 WCU each) through the router over raw keep-alive connections
(closed loop), keys drawn from a Zipf distribution over --keys keys. Every
second: requests completed, p50/p99, errors, and the table's partition
count (asked of a node, `Triplica.PartitionMap`).

Everything shares this machine's cores: three nodes, the router, the MemDS
servers and the load generator. A split helps when the children's leaders
land on different node processes; the children's first leaders are picked
to differ (metadata/control_plane.py), later elections may move them.
Writes bench/results/cluster_splits.md and cluster_splits.png.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import socket
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from loadgen import SigV4, build_request, new_loop, percentile, run_closed_loop  # noqa: E402
from splits import partition_count, zipf_sampler  # noqa: E402

from triplica.engine.node_config import SplitLimits  # noqa: E402
from triplica.cluster.local import cluster_down, cluster_up  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")
SECONDS_MAX = 3600
REQUEST_POOL = 20_000
TABLE = "zipf"


def _free_base_port() -> int:
    """A base port whose cluster ports (base .. base+400) look free."""
    for base in range(21000, 60000, 1000):
        try:
            for offset in (0, 1, 2, 3, 101, 102, 103, 301, 302):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range")


def run_phase(label: str, splits: SplitLimits, args: argparse.Namespace,
              write_units: int | None = None) -> list[dict]:
    """One run on a fresh cluster; an on-demand table, or provisioned with `write_units`."""
    data_dir = tempfile.mkdtemp(prefix=f"triplica-cluster-splits-{label}-")
    base = _free_base_port()
    cluster_up(data_dir, base_port=base, splits=splits)
    try:
        host, port = "127.0.0.1", base
        signer = SigV4(f"{host}:{port}")
        table: dict = {"TableName": TABLE, "BillingMode": "PAY_PER_REQUEST",
                       "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                       "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}
        if write_units is not None:
            table["BillingMode"] = "PROVISIONED"
            table["ProvisionedThroughput"] = {"ReadCapacityUnits": 100,
                                              "WriteCapacityUnits": write_units}
        create = json.dumps(table)
        loop, _ = new_loop()
        asyncio.set_event_loop(loop)
        result = loop.run_until_complete(run_closed_loop(
            host, port, lambda: (build_request(signer, "CreateTable", create.encode()), None),
            1, 0.0, 15.0, max_requests=1))
        assert result.completed == 1, result.error_samples
        rng = random.Random(7)
        sample = zipf_sampler(args.keys, args.zipf, rng)
        pad = "x" * 900
        pool = [build_request(signer, "PutItem", json.dumps(
            {"TableName": TABLE, "Item": {"pk": {"S": f"key{sample():06d}"}, "pad": {"S": pad}}}).encode())
            for _ in range(REQUEST_POOL)]
        position = [0]

        def next_request():
            position[0] = (position[0] + 1) % len(pool)
            return pool[position[0]], None

        rows = []
        node_url = f"http://{host}:{base + 1}"
        for second in range(args.seconds):
            result = loop.run_until_complete(run_closed_loop(
                host, port, next_request, args.connections, 0.0, 1.0))
            latencies = sorted(result.latencies)
            rows.append({"phase": label, "second": second + 1, "requests": result.completed,
                         "errors": result.errors,
                         "p50_ms": percentile(latencies, 50) * 1000 if latencies else 0.0,
                         "p99_ms": percentile(latencies, 99) * 1000 if latencies else 0.0,
                         "partitions": partition_count(node_url, TABLE)})
            print(json.dumps(rows[-1]), flush=True)
        loop.close()
        return rows
    finally:
        cluster_down(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--write-units", type=float, default=1000.0,
                        help="per-partition write units (DynamoDB: 1,000)")
    args = parser.parse_args()
    assert 1 <= args.seconds <= SECONDS_MAX
    baseline = run_phase("no splits", SplitLimits(for_traffic=False), args)
    splitting = run_phase("splits", SplitLimits(write_units=args.write_units), args)
    four = run_phase("4 partitions", SplitLimits(for_traffic=False), args, write_units=4000)
    write_results(args, [baseline, splitting, four])
    return 0


def _summary(rows: list[dict], last: int) -> tuple[float, float, int]:
    tail = rows[-last:]
    return (statistics.median(r["requests"] for r in tail),
            statistics.median(r["p99_ms"] for r in tail), max(r["partitions"] for r in tail))


def write_results(args: argparse.Namespace, runs: list[list[dict]]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    for rows, style in zip(runs, ("--", "-", ":")):
        seconds = [r["second"] for r in rows]
        label = rows[0]["phase"]
        axes[0].plot(seconds, [r["requests"] for r in rows], style, label=label)
        axes[1].plot(seconds, [r["p99_ms"] for r in rows], style, label=f"p99, {label}")
        axes[2].step(seconds, [r["partitions"] for r in rows], style, where="post", label=label)
    axes[0].set_ylabel("PutItem/s")
    axes[0].legend()
    axes[1].set_ylabel("p99 ms")
    axes[1].set_yscale("log")
    axes[1].legend()
    axes[2].set_ylabel("partitions")
    axes[2].set_xlabel("seconds")
    axes[2].legend()
    figure.suptitle(f"Zipf({args.zipf}) PutItem, {args.connections} connections, "
                    "3-node cluster + router")
    figure.tight_layout()
    figure.savefig(os.path.join(RESULTS, "cluster_splits.png"), dpi=100)
    last = max(1, args.seconds // 3)
    summaries = [(rows[0]["phase"], *_summary(rows, last), sum(r["errors"] for r in rows))
                 for rows in runs]
    base_rate = max(summaries[0][1], 1)
    lines = [f"# Splits for consumption on a 3-node cluster ({dt.date.today()})", "",
             f"`bench/cluster_splits.py --seconds {args.seconds} --connections {args.connections} "
             f"--keys {args.keys} --zipf {args.zipf} --write-units {args.write_units:g}` "
             "(see the docstring for the set-up). Medians over the last "
             f"{last} seconds of each run:", "",
             "| run | PutItem/s | p99 ms | partitions | errors | vs no splits |",
             "|---|---|---|---|---|---|"]
    for label, rate, p99, parts, errors in summaries:
        lines.append(f"| {label} | {rate:.0f} | {p99:.1f} | {parts} | {errors} | "
                     f"{rate / base_rate:.2f} |")
    lines += ["", "| second | " + " | ".join(f"{rows[0]['phase']} PutItem/s | p99 ms | partitions"
                                              for rows in runs) + " |",
              "|---|" + "---|---|---|" * len(runs)]
    for group in zip(*runs):
        lines.append(f"| {group[0]['second']} | " + " | ".join(
            f"{r['requests']} | {r['p99_ms']:.1f} | {r['partitions']}" for r in group) + " |")
    with open(os.path.join(RESULTS, "cluster_splits.md"), "w") as file:
        file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"done in {time.monotonic() - started:.0f} s")
    sys.exit(code)
