"""Splits that follow traffic, watched second by second (serve, one process).

    .venv/bin/python bench/splits.py [--seconds 60] [--connections 32] [--keys 100000] [--zipf 1.1]

Starts `triplica serve --split-for-traffic` (three storage nodes in one process,
three replicas per partition,
DynamoDB's default per-partition limits: 1,000 WCU) in a temporary directory, creates one
on-demand table (one partition) and drives PutItem of ~1 KB items (1 WCU
each) over raw keep-alive connections, keys drawn from a Zipf distribution
(a few keys take most of the writes). Every second it records the requests
completed, their p50/p99, errors, and the table's partition count (from the
server's catalogue). A partition above 80% of its write capacity for three
5 s windows splits at the point chosen from the keys it saw.

What this shows: the partition count follows the load, and no request
fails during a split (p99 shows the pause while a split holds writes). It
also shows why `serve` leaves consumption splits off by default: in one
process every partition shares the same two cores and each extra group adds
its own log, fsyncs and messages, so throughput falls with each split. The
gain needs the children's leaders on different machines (bench/cluster_splits.py
runs the same load on the multi-process cluster). The partition count comes
from the server's partition map (Triplica.PartitionMap). Writes bench/results/splits.md and splits.png.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from loadgen import SigV4, build_request, new_loop, percentile, run_closed_loop  # noqa: E402

from triplica.common.internal import PARTITION_MAP_TARGET  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")
STARTUP_S_MAX = 30.0
# serve parses (without verifying, unless started with --credentials) the Authorization header
UNSIGNED_AUTHORIZATION = ("AWS4-HMAC-SHA256 Credential=bench/20240101/us-east-1/dynamodb/aws4_request, "
                          "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)


def zipf_sampler(keys: int, exponent: float, rng: random.Random):
    weights = [1.0 / (rank ** exponent) for rank in range(1, keys + 1)]
    total = sum(weights)
    cumulative, running = [], 0.0
    for weight in weights:
        running += weight / total
        cumulative.append(running)
    import bisect

    def sample() -> int:
        return min(bisect.bisect_left(cumulative, rng.random()), keys - 1)
    return sample


def partition_count(url: str, table: str) -> int:
    """The table's partitions, from the server's partition map (the internal
    Triplica.PartitionMap request that routers use; serve and the nodes answer it);
    -1 if it cannot be had."""
    request = urllib.request.Request(url + "/", data=json.dumps({"TableName": table}).encode(),
                                     method="POST", headers={
                                         "X-Amz-Target": PARTITION_MAP_TARGET,
                                         "Content-Type": "application/x-amz-json-1.0",
                                         "Authorization": UNSIGNED_AUTHORIZATION})
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:
            return len(json.loads(answer.read())["partitions"])
    except (OSError, ValueError, KeyError):
        return -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="triplica-splits-")
    server = subprocess.Popen([sys.executable, "-m", "triplica.cli", "serve", "--host", "127.0.0.1",
                               "--port", str(args.port), "--data-dir", data_dir, "--split-for-traffic"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = f"http://127.0.0.1:{args.port}"
    try:
        if "listening" not in (server.stdout.readline() if server.stdout else ""):
            raise RuntimeError("server did not start")
        signer = SigV4(f"127.0.0.1:{args.port}")
        create = json.dumps({"TableName": "zipf", "BillingMode": "PAY_PER_REQUEST",
                             "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                             "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]})
        loop, _ = new_loop()
        asyncio.set_event_loop(loop)
        result = loop.run_until_complete(run_closed_loop(
            "127.0.0.1", args.port, lambda: (build_request(signer, "CreateTable", create.encode()), None),
            1, 0.0, 0.5, max_requests=1))
        assert result.completed == 1 or partition_count(url, "zipf") == 1, result.error_samples
        rng = random.Random(7)
        sample = zipf_sampler(args.keys, args.zipf, rng)
        pad = "x" * 900
        pool = [build_request(signer, "PutItem", json.dumps(
            {"TableName": "zipf", "Item": {"pk": {"S": f"key{sample():06d}"}, "pad": {"S": pad}}}).encode())
            for _ in range(20_000)]
        position = [0]

        def next_request():
            position[0] = (position[0] + 1) % len(pool)
            return pool[position[0]], None

        rows = []
        for second in range(args.seconds):
            result = loop.run_until_complete(run_closed_loop(
                "127.0.0.1", args.port, next_request, args.connections, 0.0, 1.0))
            latencies = sorted(result.latencies)
            rows.append({"second": second + 1, "requests": result.completed, "errors": result.errors,
                         "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
                         "partitions": partition_count(url, "zipf")})
            print(json.dumps(rows[-1]), flush=True)
        write_results(args, rows)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


def write_results(args: argparse.Namespace, rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = [r["second"] for r in rows]
    figure, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    axes[0].plot(seconds, [r["requests"] for r in rows])
    axes[0].set_ylabel("PutItem/s")
    axes[1].plot(seconds, [r["p99_ms"] for r in rows], label="p99")
    axes[1].plot(seconds, [r["p50_ms"] for r in rows], label="p50")
    axes[1].set_ylabel("latency ms")
    axes[1].set_yscale("log")
    axes[1].legend()
    axes[2].step(seconds, [r["partitions"] for r in rows], where="post")
    axes[2].set_ylabel("partitions")
    axes[2].set_xlabel("seconds")
    figure.suptitle(f"Zipf({args.zipf}) PutItem, {args.connections} connections, triplica serve")
    figure.tight_layout()
    figure.savefig(os.path.join(RESULTS, "splits.png"), dpi=100)
    errors = sum(r["errors"] for r in rows)
    lines = [f"# Splits that follow traffic ({dt.date.today()})", "",
             f"`bench/splits.py --seconds {args.seconds} --connections {args.connections} "
             f"--keys {args.keys} --zipf {args.zipf}` (triplica serve, one process; see the docstring "
             f"for what this does and does not show). Errors: {errors}.", "",
             "| second | PutItem/s | p50 ms | p99 ms | partitions |", "|---|---|---|---|---|"]
    lines += [f"| {r['second']} | {r['requests']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['partitions']} |"
              for r in rows]
    with open(os.path.join(RESULTS, "splits.md"), "w") as file:
        file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"done in {time.monotonic() - started:.0f} s")
    sys.exit(code)
