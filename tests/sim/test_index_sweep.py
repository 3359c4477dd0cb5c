"""Seed sweeps of the global index propagation simulation (see triplica/sim/index_sim.py).

The sweep runs SEEDS seeds in chunks (spread over xdist workers with -n 2);
replay a failing one with `python -m triplica.sim --seed N --indexes --trace`.
The fault-injection tests switch on one deliberate bug each
(index_propagator.IndexFaults) and demand that the checks catch it.
"""
import pytest

from triplica.sim.index_propagator import IndexFaults
from triplica.sim.index_sim import run_index_seed

SEEDS = 240
CHUNK = 30
# Seeds that fail because of a production bug not fixed yet (the test below pins it):
# 65: a batch a grandparent base partition sent before two splits lands after its
# grandchildren's newer deltas at an index partition its child never sent to; the
# grandchildren fence only their parent (node/index_propagation.py names
# `[partition.split_from]` as ancestors), so the stale batch is applied. (Also seeds
# 463, 587 and 1105, outside this sweep; all pass with `fence_lineage=True`.)
KNOWN_BUG_SEEDS = {65}


@pytest.mark.parametrize("start", range(0, SEEDS, CHUNK))
def test_index_seed_sweep(start):
    failures = []
    for seed in range(start, start + CHUNK):
        if seed in KNOWN_BUG_SEEDS:
            continue
        result = run_index_seed(seed)
        if not result.ok:
            failures.append(f"seed {seed}: {result.failures[0]}\n"
                            f"  replay: python -m triplica.sim --seed {seed} --indexes --trace")
    assert not failures, "\n".join(failures)


@pytest.mark.xfail(strict=True, reason="production fences only a split child's parent (seed 65)")
def test_a_grandparents_late_batch_is_refused():
    result = run_index_seed(65)
    assert result.ok, result.failures


def test_fencing_every_ancestor_fixes_the_late_grandparent_batch():
    """What the fix must do: with every split ancestor fenced (a sim switch), seed 65 passes."""
    result = run_index_seed(65, fence_lineage=True)
    assert result.ok, result.failures
    assert result.stats["base_splits"] >= 2 and result.stats["fenced"] > 0


@pytest.mark.parametrize("seed", [3, 77, 1234])
def test_same_seed_same_trace_hash(seed):
    first, second = run_index_seed(seed), run_index_seed(seed)
    assert first.trace_hash == second.trace_hash
    assert first.stats == second.stats


def test_different_seeds_differ():
    assert len({run_index_seed(seed).trace_hash for seed in range(5)}) == 5


def test_sweep_exercises_the_propagation_paths():
    """The sweep is only worth something if batches meet splits, faults, retries and backfills."""
    stats = [run_index_seed(seed).stats for seed in range(30)]

    def seeds_with(name: str) -> int:
        return sum(s.get(name, 0) > 0 for s in stats)
    assert seeds_with("base_splits") >= 15 and seeds_with("index_splits") >= 15
    assert seeds_with("moved_answers") >= 5      # batches to index partitions that split
    assert seeds_with("fenced") >= 5             # a split parent's batches refused
    assert seeds_with("refused") >= 10           # retries and duplicates refused by the cursor
    assert seeds_with("leader_changes") >= 15 and seeds_with("lost") >= 10
    assert seeds_with("late") >= 5 and seeds_with("ask_timeouts") >= 10
    assert seeds_with("drops") >= 3              # an index deleted during the writes
    assert all(s["adopts"] >= 1 and s["delivered"] > 0 for s in stats)


def _caught(faults: IndexFaults, seeds: range, least: int) -> dict[int, list[str]]:
    """The failures of the first `least` seeds of `seeds` that catch the fault."""
    found = {}
    for seed in seeds:
        result = run_index_seed(seed, faults=faults)
        if not result.ok:
            found[seed] = result.failures
            if len(found) >= least:
                break
    return found


# (measured on seeds 0..59: 25 of 30, 9 of 30, 6 of 60, 10 of 60, 9 of 30, 5 of 60)
@pytest.mark.parametrize("fault, seeds, least", [
    ("trim_before_answers", 30, 15),       # deltas lost with their batches
    ("ignore_cursor", 30, 5),              # duplicates and late batches applied over newer ones
    ("no_fence", 60, 3),                   # a split parent's late batch over its child's deltas
    ("skip_last_backfill_chunk", 60, 4),   # items of the last chunk never indexed
    ("child_drops_outbox", 30, 5),         # a base split child forgets undelivered deltas
    ("moved_index_accepts", 60, 3),        # a split index parent answers "ok" to a late batch
])
def test_checks_catch_a_broken_propagation(fault, seeds, least):
    caught = _caught(IndexFaults(**{fault: True}), range(seeds), least)
    assert len(caught) >= least, sorted(caught)
    texts = [f for failures in caught.values() for f in failures]
    assert all("missing" in f or "extra or stale" in f for f in texts), texts
