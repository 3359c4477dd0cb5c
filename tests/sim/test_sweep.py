"""Seed sweeps of the deterministic simulator (see triplica/sim/runner.py).

`make test` runs 500 seeds here (10 chunks, spread over xdist workers);
`make sim SEEDS=N` runs a longer sweep from the command line.
"""
import pytest

from triplica.replication.options import ReplicaOptions
from triplica.sim.runner import run_seed

SEEDS = 500
CHUNK = 50


@pytest.mark.parametrize("start", range(0, SEEDS, CHUNK))
def test_seed_sweep(start):
    failures = []
    for seed in range(start, start + CHUNK):
        result = run_seed(seed)
        if not result.ok:
            failures.append(f"seed {seed}: {result.failures[0]}\n  replay: python -m triplica.sim --seed {seed} --trace")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("seed", [3, 77, 1234])
def test_same_seed_same_trace_hash(seed):
    first, second = run_seed(seed), run_seed(seed)
    assert first.trace_hash == second.trace_hash
    assert first.stats == second.stats


def test_different_seeds_differ():
    assert len({run_seed(seed).trace_hash for seed in range(5)}) == 5


def _failing_seeds(options: ReplicaOptions, seeds: range) -> list[int]:
    return [seed for seed in seeds if not run_seed(seed, replica_options=options).ok]


def test_checks_catch_a_leader_that_counts_its_own_vote_twice():
    failing = _failing_seeds(ReplicaOptions(fault_double_self_vote=True), range(20))
    assert len(failing) >= 3, failing


def test_checks_catch_a_leader_that_skips_the_lease_check():
    # Rarer than a double vote: it takes a deposed leader that still gets a
    # strong read while its successor has acknowledged a write. Measured with
    # the current workload: 6 of seeds 0..399 (the first is 189), so stop at
    # the first one caught. tests/unit/test_replication_scenarios.py stages
    # the same fault on purpose and checks the verdict both ways.
    options = ReplicaOptions(fault_skip_lease_check=True)
    caught = next((seed for seed in range(400) if not run_seed(seed, replica_options=options).ok), None)
    assert caught is not None, "a leader serving reads without a lease went unnoticed in 400 seeds"


def test_churn_replaces_members_in_a_fraction_of_seeds():
    churned = [r.stats["churn"] for r in map(run_seed, range(30)) if "churn" in r.stats]
    assert 4 <= len(churned) <= 20, len(churned)
    assert sum(c["replacements"] for c in churned) >= 4
    assert any(c["retired"] for c in churned) and all(len(c["members"]) == 3 for c in churned)


def test_churn_seed_is_deterministic():
    seed = next(s for s in range(50) if run_seed(s).stats.get("churn", {}).get("proposals"))
    first, second = run_seed(seed), run_seed(seed)
    assert first.trace_hash == second.trace_hash and first.stats == second.stats
