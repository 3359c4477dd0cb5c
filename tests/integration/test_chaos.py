"""Chaos (short version of `make chaos`): kill -9 random nodes of a real 3-node
cluster under client load; every acknowledged write survives and strongly
consistent reads stay linearizable."""
from __future__ import annotations

import random
from typing import Any

from tests.integration.ports import free_base_port
from triplica.ops.chaos import run_chaos

CHAOS_SECONDS = 30.0


def test_chaos_kill_nodes_under_load(tmp_path: Any) -> None:
    seed = random.randrange(100_000)
    report = run_chaos(CHAOS_SECONDS, seed, str(tmp_path), free_base_port(3))
    replay = f"replay: python -m triplica.ops.chaos --seconds {CHAOS_SECONDS:g} --seed {seed}"
    print(f"chaos seed {seed}: kills {report.kills}, {report.acknowledged_writes} acknowledged "
          f"writes, {report.unknown_writes} unknown, longest write-unavailability "
          f"{report.write_unavailability_s_max:.2f} s")
    assert len(report.kills) >= 4, replay
    assert report.acknowledged_writes > 100, replay
    assert not report.ledger_missing, (report.ledger_missing[:5], replay)
    assert report.linearizability == "ok", (report.linearizability_explanation, replay)
    assert report.write_unavailability_s_max < 15.0, replay
