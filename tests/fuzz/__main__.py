"""`make fuzz`: fuzz a fresh `triplica serve` for a while (default an hour).

    python -m tests.fuzz [--minutes 60] [--seed N] [--batch 500]

Runs the four families of tests/fuzz/run.py in rounds of `--batch` cases
each, with a new hypothesis seed per round, until the time is up; a failure
is printed with its shrunk example and the run goes on. Prints the tally
(cases, answers by status class, error types, 5xx count) at the end and
exits non-zero if any case failed or the server died.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import traceback

from tests.fuzz import run
from tests.fuzz.harness import Target
from tests.integration.server import ServerProcess


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None, help="first round's seed")
    parser.add_argument("--batch", type=int, default=500, help="cases per family per round")
    args = parser.parse_args(argv)
    seeds = random.Random(args.seed)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="triplica-fuzz-") as data_dir:
        server = ServerProcess(data_dir, "--sync", "none").start()
        try:
            target = Target(server.port)
            deadline = time.monotonic() + args.minutes * 60
            rounds = 0
            while time.monotonic() < deadline:
                for fuzz in run.RUNS:
                    seed = seeds.randrange(2**32)
                    try:
                        fuzz(target, args.batch, seed)
                    except Exception:
                        failures += 1
                        print(f"FAILED {fuzz.__name__} seed {seed}:", file=sys.stderr)
                        traceback.print_exc()
                        if server.process.poll() is not None:
                            print("the server died", file=sys.stderr)
                            return 1
                        target.restore()
                        target.snapshot = target.take_snapshot()
                    if time.monotonic() >= deadline:
                        break
                rounds += 1
                print(f"round {rounds}: {target.tally.summary()}", flush=True)
            target.check_up()
            print(target.tally.summary())
            print(f"failures: {failures}")
        finally:
            alive = server.process.poll() is None
            server.stop()
    return 0 if failures == 0 and alive else 1


if __name__ == "__main__":
    raise SystemExit(main())
