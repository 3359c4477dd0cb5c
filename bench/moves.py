"""How long the control plane takes to move replicas: a drained node and a dead one.

    .venv/bin/python bench/moves.py [--runs 3] [--items 2000] [--replace-after 5]

Each run starts a six-node local cluster (two nodes per AZ, `triplica
cluster up --nodes 6`), creates a table of three partitions (3,000 WCU),
loads --items items of ~1 KB and keeps one writer busy, then:
- drains the node holding the most replicas (`triplica node drain`): time
  until no partition lists it;
- undrains it, then kills -9 the node holding the most replicas of a
  second table: time until no partition of either table lists it
  (every group it held, one after the other; this includes
  --replace-after, the silence after which a node counts as dead).
Reports each run and the medians; writes bench/results/moves.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import statistics
import sys
import tempfile
import threading
import time

import boto3
from botocore.config import Config

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from triplica.cluster.drain import _call, drain  # noqa: E402
from triplica.cluster.local import cluster_down, cluster_up  # noqa: E402
from triplica.common.internal import PARTITION_MAP_TARGET  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")
WAIT_S = 180.0
RUNS_MAX = 20


def _client(endpoint: str):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench",
                        config=Config(retries={"max_attempts": 1}, read_timeout=10))


def _members(endpoint: str, table: str) -> list[list[int]]:
    return [p["members"] for p in _call(endpoint, PARTITION_MAP_TARGET, {"TableName": table})["partitions"]]


def _busiest(endpoint: str, table: str) -> int:
    counts: dict[int, int] = {}
    for members in _members(endpoint, table):
        for m in members:
            counts[m] = counts.get(m, 0) + 1
    return max(sorted(counts), key=lambda n: counts[n])


def _table(ddb, name: str, items: int) -> None:
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     ProvisionedThroughput={"ReadCapacityUnits": 10, "WriteCapacityUnits": 3000})
    for i in range(items):
        ddb.put_item(TableName=name, Item={"pk": {"S": f"k{i}"}, "pad": {"S": "x" * 1000}})


class Writer:
    def __init__(self, endpoint: str, table: str) -> None:
        self.ddb = _client(endpoint)
        self.table = table
        self.last_ok = time.monotonic()
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set() and i < 1_000_000:
            try:
                self.ddb.put_item(TableName=self.table, Item={"pk": {"S": f"w{i % 500}"}})
                self.last_ok = time.monotonic()
            except Exception:
                self.failures += 1
            i += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def one_run(args: argparse.Namespace) -> dict:
    data_dir = tempfile.mkdtemp(prefix="triplica-moves-")
    base = 23000
    endpoint = cluster_up(data_dir, nodes=6, azs=3, base_port=base,
                          replace_after_s=args.replace_after)[0]
    try:
        ddb = _client(endpoint)
        _table(ddb, "drained", args.items)
        _table(ddb, "orphaned", args.items)
        writer = Writer(endpoint, "drained")
        node = _busiest(endpoint, "drained")
        started = time.monotonic()
        left = drain(endpoint, node, WAIT_S)
        drain_s = time.monotonic() - started
        assert left == 0, f"{left} replicas left on node {node}"
        drain(endpoint, node, WAIT_S, undo=True)  # back in service: a place to move to
        writer.stop()
        writer = Writer(endpoint, "orphaned")
        victim = _busiest(endpoint, "orphaned")
        with open(os.path.join(data_dir, f"node-{victim}.pid")) as file:
            pid = int(file.read())
        time.sleep(0.5)
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        deadline = killed + WAIT_S
        while any(victim in m for table in ("drained", "orphaned")
                  for m in _members(endpoint, table)) and time.monotonic() < deadline:
            time.sleep(0.1)
        replaced_s = time.monotonic() - killed
        writer.stop()
        row = {"drain_s": drain_s, "replaced_s": replaced_s,
               "kill_write_failures": writer.failures}
        print(row, flush=True)
        return row
    finally:
        cluster_down(data_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--replace-after", type=float, default=5.0)
    args = parser.parse_args()
    assert 1 <= args.runs <= RUNS_MAX
    rows = [one_run(args) for _ in range(args.runs)]
    median = {key: statistics.median(r[key] for r in rows) for key in ("drain_s", "replaced_s")}
    lines = [f"# Moving replicas ({dt.date.today()})", "",
             f"`bench/moves.py --runs {args.runs} --items {args.items} --replace-after "
             f"{args.replace_after:g}`: six-node cluster, tables of three partitions holding "
             f"{args.items} ~1 KB items, one writer (see the docstring).", "",
             "| run | drain a node (s) | dead node's replicas replaced (s) | writes failed at the kill |",
             "|---|---|---|---|"]
    for number, r in enumerate(rows, start=1):
        lines.append(f"| {number} | {r['drain_s']:.1f} | {r['replaced_s']:.1f} | "
                     f"{r['kill_write_failures']} |")
    lines += ["", f"Medians: drain {median['drain_s']:.1f} s, replicas replaced "
                  f"{median['replaced_s']:.1f} s after the kill (of which {args.replace_after:g} s "
                  "is the silence before a node counts as dead)."]
    with open(os.path.join(RESULTS, "moves.md"), "w") as file:
        file.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
