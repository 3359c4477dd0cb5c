"""Healing bench: how fast a group replaces a replica that stays down.

    .venv/bin/python bench/healing.py [--runs 5] [--items 20000] [--item-bytes 1000]

Each run builds a `ReplicatedPartition` (the partition of `triplica serve`:
three real replicas, PaxosLog + LMDB each, serve's timing) in a temporary
directory, loads ITEMS items of ITEM_BYTES, then stops one follower's driver
(its disk failed, as far as the group can tell) while one writer keeps
proposing single-item writes back to back. With `heal_after_s` = 1 s the
healer replaces it; the bench records, from the moment the replacement was
declared (the log replica was spawned):

- voters_ms: until a configuration with the log replica is committed (the
  group has three voters again);
- full_ms: until the fresh full replica is a committed member;
- done_ms: until the group is three full members again (log replica gone);
- the writer's latency p50/p99/max and its failures over the whole run.

Medians over the runs go to stdout and bench/results/healing.md.
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

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from triplica.engine.replicated_partition import ReplicatedPartition  # noqa: E402

RUN_S_MAX = 120.0
WRITES_MAX = 200_000
RESULTS = os.path.join(os.path.dirname(__file__), "results", "healing.md")


def image(size: int, i: int) -> bytes:
    body = (b"%08d" % i) * (size // 8)
    return len(body).to_bytes(4, "big") + body


async def one_run(directory: str, items: int, item_bytes: int) -> dict:
    partition = ReplicatedPartition(directory, heal_after_s=1.0, compact_entries=2_000)
    try:
        for start in range(0, items, 100):
            await asyncio.gather(*(partition.propose([(b"item%08d" % i, image(item_bytes, i))])
                                   for i in range(start, min(items, start + 100))))
        leader = partition.leader()
        assert leader is not None
        victim = next(n for n in partition.drivers if n != leader.node_id)
        latencies: list[float] = []
        failures = 0
        stop = asyncio.Event()

        async def writer() -> None:
            nonlocal failures
            i = 0
            while not stop.is_set() and i < WRITES_MAX:
                began = time.perf_counter()
                try:
                    await partition.propose([(b"live%08d" % i, image(100, i))])
                    latencies.append(time.perf_counter() - began)
                except Exception:
                    failures += 1
                i += 1

        task = asyncio.create_task(writer())
        await partition.stop_replica(victim)
        marks: dict[str, float] = {}
        deadline = time.monotonic() + RUN_S_MAX
        while time.monotonic() < deadline:
            now = time.monotonic()
            spawned = [n for n in partition.roster.entries if n > 3] or \
                [n for n in partition.roster.retired if n > 3]
            if spawned and "declared" not in marks:
                marks["declared"] = now
            leader = partition.leader()
            config = leader.replica.committed_config if leader is not None else None
            if config is not None and "declared" in marks:
                if config.log_replicas and "voters" not in marks:
                    marks["voters"] = now
                if any(n > 4 for n in config.members) and "full" not in marks:
                    marks["full"] = now
                if ("full" in marks and not config.log_replicas and len(config.members) == 3
                        and victim not in config.members):
                    marks["done"] = now
                    break
            await asyncio.sleep(0.005)
        stop.set()
        await task
        assert "done" in marks, f"healing did not finish within {RUN_S_MAX} s: {marks}"
        latencies.sort()
        return {
            "voters_ms": (marks["voters"] - marks["declared"]) * 1000,
            "full_ms": (marks["full"] - marks["declared"]) * 1000,
            "done_ms": (marks["done"] - marks["declared"]) * 1000,
            "writes": len(latencies), "failures": failures,
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "max_ms": latencies[-1] * 1000,
        }
    finally:
        await partition.drain()
        await partition.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--items", type=int, default=20_000)
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
    lines = [f"# Healing a replica that stays down ({dt.date.today()})", "",
             f"`bench/healing.py --runs {args.runs} --items {args.items} --item-bytes {args.item_bytes}`"
             f" ({args.items * args.item_bytes / 1e6:.0f} MB of items), one writer during the replacement.",
             "", "| measure | median | max |", "|---|---|---|"]
    lines += [f"| {k} | {medians[k]:.1f} | {maxima[k]:.1f} |" for k in keys]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(RESULTS, "w") as file:
        file.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
