"""Secondary index benchmark (issue 12's numbers), triplica against dynalite and moto.

    .venv/bin/python bench/gsi.py [--servers triplica,dynalite,moto] [--seconds 10]
        [--backfill-items 100000] [--repeat 3]

For each server, in one run:
- PutItem throughput, latency percentiles and server CPU µs per request at 64
  connections on a table with no index, 1 LSI, 1 GSI and 5 GSIs (each item
  has every index's key attributes, so each put changes every index);
- propagation lag of a global index (triplica): during the 1-GSI put load a
  probe writes a new item every 50 ms and polls a Query of the index until
  it is there; p50/p99/max of write-acknowledged -> visible-in-index;
- Query on the GSI vs Query on the table, 10 items back, 64 connections;
- time to backfill a GSI added with UpdateTable to a table of
  `--backfill-items` items while a put load runs, until DescribeTable shows
  it ACTIVE (as each server reports it).
Results: bench/results/gsi.md and gsi.json (medians over --repeat rounds).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
import peers  # noqa: E402
from workloads import _batch_write, _client, _dumps  # noqa: E402

TABLE = "bench_idx"
KEYS = 10_000
CONCURRENCY = 64
CONFIGS = ("none", "lsi1", "gsi1", "gsi5")
RESULTS = Path(__file__).resolve().parent / "results"


def _gsi(number: int) -> dict:
    return {"IndexName": f"gsi{number}",
            "KeySchema": [{"AttributeName": f"h{number}", "KeyType": "HASH"},
                          {"AttributeName": f"r{number}", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}


def create(client, config: str, table: str = TABLE) -> None:
    definitions = {"pk": "S", "sk": "S"}
    extra: dict = {}
    if config == "lsi1":
        definitions["l0"] = "S"
        extra["LocalSecondaryIndexes"] = [{
            "IndexName": "lsi0", "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                          {"AttributeName": "l0", "KeyType": "RANGE"}]}]
    gsis = {"gsi1": 1, "gsi5": 5}.get(config, 0)
    if gsis:
        for number in range(gsis):
            definitions[f"h{number}"] = "S"
            definitions[f"r{number}"] = "S"
        extra["GlobalSecondaryIndexes"] = [_gsi(n) for n in range(gsis)]
    client.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                   {"AttributeName": "sk", "KeyType": "RANGE"}],
                        AttributeDefinitions=[{"AttributeName": n, "AttributeType": t}
                                              for n, t in definitions.items()], **extra)
    _wait_active(client, table)


def _wait_active(client, table: str, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        described = client.describe_table(TableName=table)["Table"]
        if described["TableStatus"] == "ACTIVE" and all(
                i.get("IndexStatus", "ACTIVE") == "ACTIVE"
                for i in described.get("GlobalSecondaryIndexes", [])):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{table} not ACTIVE in {limit_s} s")


def item(number: int, salt: int = 0) -> dict:
    """~200 bytes; every index's key attributes (5 GSIs, 1 LSI) present."""
    found = {"pk": {"S": f"p{number % 1000:04d}"}, "sk": {"S": f"s{number:06d}"},
             "l0": {"S": f"l{(number * 7 + salt) % 97:03d}"},
             "payload": {"S": "x" * 100}}
    for index in range(5):
        found[f"h{index}"] = {"S": f"h{(number + salt + index) % 500:03d}"}
        found[f"r{index}"] = {"S": f"r{(number * 3 + salt) % 1000:04d}"}
    return found


def _closed_loop(server, make_body, operation: str, seconds: float) -> dict:
    signer = loadgen.SigV4(f"{server.host}:{server.port}")
    counter = [0]

    def next_request():
        counter[0] += 1
        return loadgen.build_request(signer, operation, make_body(counter[0])), None

    loop, _ = loadgen.new_loop()
    cpu_before = server.cpu_seconds()
    try:
        result = loop.run_until_complete(loadgen.run_closed_loop(
            server.host, server.port, next_request, CONCURRENCY, 1.0, seconds))
    finally:
        loop.close()
    cpu = server.cpu_seconds() - cpu_before
    latencies = sorted(result.latencies)
    completed = max(1, result.completed)
    return {"rps": result.completed / seconds, "errors": result.errors,
            "p50_ms": 1000 * loadgen.percentile(latencies, 50),
            "p99_ms": 1000 * loadgen.percentile(latencies, 99),
            "cpu_us": 1e6 * cpu / completed, "samples": result.error_samples[:2]}


def put_load(server, seconds: float, table: str = TABLE) -> dict:
    return _closed_loop(server, lambda n: _dumps({"TableName": table,
                                                  "Item": item(n % KEYS, n)}),
                        "PutItem", seconds)


class LagProbe(threading.Thread):
    """Writes a fresh item every 50 ms and times until a Query of gsi0 returns it."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.client = _client(endpoint)
        self.stop = threading.Event()
        self.lags: list[float] = []
        self.missed = 0

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            probe = item(10_000_000 + number)
            probe["h0"] = {"S": f"probe{number}"}
            self.client.put_item(TableName=TABLE, Item=probe)
            acked = time.perf_counter()
            deadline = acked + 10.0
            while time.perf_counter() < deadline:
                found = self.client.query(TableName=TABLE, IndexName="gsi0",
                                          KeyConditionExpression="h0 = :h",
                                          ExpressionAttributeValues={":h": {"S": f"probe{number}"}})
                if found["Count"]:
                    self.lags.append(time.perf_counter() - acked)
                    break
            else:
                self.missed += 1
            self.stop.wait(0.05)


def query_load(server, seconds: float, index: str | None) -> dict:
    def body(n: int) -> bytes:
        if index is None:
            return _dumps({"TableName": TABLE, "KeyConditionExpression": "pk = :p", "Limit": 10,
                           "ExpressionAttributeValues": {":p": {"S": f"p{n % 1000:04d}"}}})
        return _dumps({"TableName": TABLE, "IndexName": index, "Limit": 10,
                       "KeyConditionExpression": "h0 = :h",
                       "ExpressionAttributeValues": {":h": {"S": f"h{n % 500:03d}"}}})
    return _closed_loop(server, body, "Query", seconds)


def load(client, table: str, count: int) -> None:
    for start in range(0, count, 25):
        _batch_write(client, table, [item(n) for n in range(start, min(count, start + 25))])


def backfill(server, items: int, seconds_max: float = 600.0) -> dict:
    client = _client(server.endpoint)
    table = "bench_backfill"
    create(client, "none", table)
    started = time.monotonic()
    load(client, table, items)
    loaded_s = time.monotonic() - started
    writes = threading.Thread(target=put_load, args=(server, 5.0, table), daemon=True)
    definitions = [{"AttributeName": n, "AttributeType": "S"} for n in ("h0", "r0")]
    began = time.monotonic()
    client.update_table(TableName=table, AttributeDefinitions=definitions,
                        GlobalSecondaryIndexUpdates=[{"Create": _gsi(0)}])
    writes.start()
    _wait_active(client, table, seconds_max)
    took = time.monotonic() - began
    writes.join()
    count = client.query(TableName=table, IndexName="gsi0", Select="COUNT",
                         KeyConditionExpression="h0 = :h",
                         ExpressionAttributeValues={":h": {"S": "h000"}})["Count"]
    return {"items": items, "load_s": loaded_s, "backfill_s": took, "probe_count": count}


def one_server(name: str, args) -> dict:
    out: dict = {"puts": {}}
    for config in CONFIGS:
        server = peers.start(name, log=lambda *_: None)
        try:
            client = _client(server.endpoint)
            create(client, config)
            load(client, TABLE, 2000)
            probe = None
            if config == "gsi1" and name.startswith("triplica"):
                probe = LagProbe(server.endpoint)
                probe.start()
            out["puts"][config] = put_load(server, args.seconds)
            if probe is not None:
                probe.stop.set()
                probe.join(30)
                lags = sorted(probe.lags)
                out["lag"] = {"samples": len(lags), "missed": probe.missed,
                              "p50_ms": 1000 * loadgen.percentile(lags, 50),
                              "p99_ms": 1000 * loadgen.percentile(lags, 99),
                              "max_ms": 1000 * (lags[-1] if lags else float("nan"))}
            if config == "gsi1":
                time.sleep(2.0)  # let propagation settle before reading the index
                out["query_table"] = query_load(server, args.seconds, None)
                out["query_gsi"] = query_load(server, args.seconds, "gsi0")
        finally:
            server.stop()
    if args.backfill_items:
        server = peers.start(name, log=lambda *_: None)
        try:
            out["backfill"] = backfill(server, args.backfill_items)
        except Exception as error:  # a peer that refuses the request: reported, not fatal
            out["backfill"] = {"error": str(error)[:200]}
            print(f"{name}: backfill: {error}")
        finally:
            server.stop()
    return out


def median_of(rounds: list[dict], *path: str) -> float:
    values = []
    for round_ in rounds:
        value = round_
        for step in path:
            value = value.get(step, {}) if isinstance(value, dict) else {}
        if isinstance(value, (int, float)):
            values.append(float(value))
    return statistics.median(values) if values else float("nan")


def render(results: dict[str, list[dict]], args) -> str:
    lines = [f"# Secondary indexes ({args.seconds:.0f} s per cell, {CONCURRENCY} connections, "
             f"medians of {args.repeat} round(s))", "",
             "## PutItem by index configuration", "",
             "| server | config | req/s | p50 ms | p99 ms | server CPU µs/req | errors |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name, rounds in results.items():
        for config in CONFIGS:
            lines.append(f"| {name} | {config} | {median_of(rounds, 'puts', config, 'rps'):,.0f} "
                         f"| {median_of(rounds, 'puts', config, 'p50_ms'):.1f} "
                         f"| {median_of(rounds, 'puts', config, 'p99_ms'):.1f} "
                         f"| {median_of(rounds, 'puts', config, 'cpu_us'):,.0f} "
                         f"| {median_of(rounds, 'puts', config, 'errors'):.0f} |")
    lines += ["", "## Query: table vs global index (10 items back)", "",
              "| server | table req/s | table p50 ms | GSI req/s | GSI p50 ms |",
              "|---|---:|---:|---:|---:|"]
    for name, rounds in results.items():
        lines.append(f"| {name} | {median_of(rounds, 'query_table', 'rps'):,.0f} "
                     f"| {median_of(rounds, 'query_table', 'p50_ms'):.1f} "
                     f"| {median_of(rounds, 'query_gsi', 'rps'):,.0f} "
                     f"| {median_of(rounds, 'query_gsi', 'p50_ms'):.1f} |")
    lines += ["", "## Propagation lag under the 1-GSI put load (write acknowledged -> in a "
              "Query of the index)", "", "| server | samples | p50 ms | p99 ms | max ms |",
              "|---|---:|---:|---:|---:|"]
    for name, rounds in results.items():
        if any("lag" in r for r in rounds):
            lines.append(f"| {name} | {median_of(rounds, 'lag', 'samples'):.0f} "
                         f"| {median_of(rounds, 'lag', 'p50_ms'):.1f} "
                         f"| {median_of(rounds, 'lag', 'p99_ms'):.1f} "
                         f"| {median_of(rounds, 'lag', 'max_ms'):.1f} |")
    if args.backfill_items:
        lines += ["", f"## Backfill of a GSI added to a table of {args.backfill_items:,} items "
                  "while puts run", "", "| server | load s | backfill s |", "|---|---:|---:|"]
        for name, rounds in results.items():
            error = next((r["backfill"]["error"] for r in rounds
                          if "error" in r.get("backfill", {})), None)
            if error is not None:
                lines.append(f"| {name} | - | refused: {error[:120]} |")
                continue
            lines.append(f"| {name} | {median_of(rounds, 'backfill', 'load_s'):.1f} "
                         f"| {median_of(rounds, 'backfill', 'backfill_s'):.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="triplica,dynalite,moto")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backfill-items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    results: dict[str, list[dict]] = {name: [] for name in args.servers.split(",")}
    for _ in range(args.repeat):
        for name in results:
            try:
                results[name].append(one_server(name, args))
            except peers.Missing as missing:
                print(f"{name}: skipped ({missing})")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gsi.json").write_text(json.dumps(results, indent=1, default=str))
    text = render(results, args)
    (RESULTS / "gsi.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
