"""The bounded fuzz run of `make test` (issue 11): a few thousand cases from
botocore's input shapes of every operation, damaged valid requests, raw
bodies and raw bytes against a real `triplica serve`. Every answer is a
well-formed DynamoDB success or error, never a 5xx; the server stays up; a
rejected request writes nothing. `make fuzz` runs the same for longer.

The counts are fixed and the cases derandomized, so `make test` is stable;
`make fuzz` draws new cases every run. FUZZ_EXAMPLES scales the counts.
"""
from __future__ import annotations

import os
from typing import Iterator

import pytest

from tests.fuzz import run
from tests.fuzz.harness import Target
from tests.integration.server import ServerProcess

SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
EXAMPLES = {"shape_requests": 1000, "mutated_requests": 1000, "expression_requests": 1000,
            "raw_bodies": 400, "raw_sockets": 200}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    server = ServerProcess(str(tmp_path_factory.mktemp("fuzz")), "--sync", "none").start()
    target = Target(server.port)
    yield target
    print("\n" + target.tally.summary())
    target.check_up()
    assert server.process.poll() is None, "the server died"
    server.stop()


@pytest.mark.parametrize("fuzz", run.RUNS, ids=[f.__name__ for f in run.RUNS])
def test_fuzz(target: Target, fuzz) -> None:
    fuzz(target, max(1, int(EXAMPLES[fuzz.__name__] * SCALE)))
    target.check_up()
