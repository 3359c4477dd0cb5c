"""`python -m triplica.sim --seeds 500 [--start N] [--ops 200] [--jobs 2]`
or `python -m triplica.sim --seed 1234 [--trace]` to replay one seed.
`--splits` runs the partition-split simulation (split_sim.py) instead, `--indexes` the
global index propagation simulation (index_sim.py)."""
from __future__ import annotations

import argparse
import sys
import time
from multiprocessing import Pool
from typing import Callable

from triplica.sim.runner import SeedResult, run_seed
from triplica.sim.index_sim import run_index_seed
from triplica.sim.split_sim import run_split_seed

SIMULATIONS: dict[str, Callable[..., SeedResult]] = {
    "replication": run_seed, "splits": run_split_seed, "indexes": run_index_seed}


def _run(args: tuple[int, int, str]) -> SeedResult:
    seed, ops, kind = args
    try:
        result = SIMULATIONS[kind](seed, operations=ops)
    except Exception as error:  # a crash in the core or simulator is a failed seed
        return SeedResult(seed, False, [f"exception: {type(error).__name__}: {error}"], 0)
    result.trace = []
    return result


def _replay_command(seed: int, ops: int, kind: str) -> str:
    extra = (f" --ops {ops}" if ops != 200 else "") + ("" if kind == "replication" else f" --{kind}")
    return f"python -m triplica.sim --seed {seed}{extra} --trace"


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m triplica.sim")
    parser.add_argument("--seeds", type=int, default=0, help="number of seeds to sweep")
    parser.add_argument("--start", type=int, default=0, help="first seed of the sweep")
    parser.add_argument("--seed", type=int, help="run one seed")
    parser.add_argument("--ops", type=int, default=200, help="client operations per seed")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for a sweep")
    parser.add_argument("--trace", action="store_true", help="print the event trace of --seed")
    parser.add_argument("--splits", action="store_true", help="run the partition-split simulation")
    parser.add_argument("--indexes", action="store_true",
                        help="run the global index propagation simulation")
    args = parser.parse_args(argv)
    kind = "indexes" if args.indexes else "splits" if args.splits else "replication"
    if args.seed is not None:
        result = SIMULATIONS[kind](args.seed, operations=args.ops, trace=args.trace)
        for line in result.trace:
            print(line)
        print(f"seed {result.seed}: {'ok' if result.ok else 'FAILED'} trace_hash={result.trace_hash:08x} {result.stats}")
        for failure in result.failures:
            print(f"  {failure}")
        return 0 if result.ok else 1
    seeds = range(args.start, args.start + (args.seeds or 100))
    started = time.monotonic()
    failed: list[SeedResult] = []
    work = [(seed, args.ops, kind) for seed in seeds]
    if args.jobs > 1:
        with Pool(args.jobs) as pool:
            results = pool.imap_unordered(_run, work, chunksize=8)
            for result in results:
                if not result.ok:
                    failed.append(result)
    else:
        failed = [r for r in map(_run, work) if not r.ok]
    elapsed = time.monotonic() - started
    failed.sort(key=lambda r: r.seed)
    print(f"{len(seeds)} seeds ({seeds.start}..{seeds.stop - 1}), {args.ops} ops each: "
          f"{len(seeds) - len(failed)} ok, {len(failed)} failed, {elapsed:.1f}s")
    for result in failed:
        print(f"seed {result.seed} FAILED: {result.failures[0]}")
        print(f"  replay: {_replay_command(result.seed, args.ops, kind)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
