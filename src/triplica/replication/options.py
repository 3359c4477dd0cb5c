"""Timing and batching knobs of a replica, with the lease arithmetic.

Lease safety (all durations in ms, measured on each node's own clock, whose
rate is within [1 - rho, 1 + rho] of real time, rho = clock_drift_rate_max):

- A replica that accepted an Accept/heartbeat of the leader at its local
  time t refuses to promise any other ballot until its local clock reads
  t + E, E = election_timeout_base_ms. In real time that guard lasts at
  least E / (1 + rho), and it starts after the leader SENT the round.
- The leader's lease starts at the local send time of the latest round
  that a quorum acknowledged (its own vote included) and lasts L local ms,
  at most L / (1 - rho) real ms.
- Any new leader needs promises from a quorum, which intersects the lease
  quorum; the intersecting replica promises only after its guard ends.
  So leases never overlap when L / (1 - rho) <= E / (1 + rho), i.e.
      L <= E * (1 - rho) / (1 + rho)   (~ E * (1 - 2 rho)),
  and we subtract `lease_margin_ms` for clock granularity (integer ms) and
  processing between reading the clock and acting:
      lease_ms = floor(E * (1 - rho) / (1 + rho)) - margin.
  This is slightly below the often-quoted E * (1 - rho) - margin, which
  ignores that the follower's clock may run fast.
- The leader also guards itself: it refuses other ballots for E after each
  round it sends, so the intersection may be the old leader too.
- A replica that restarts lost its guard (volatile), so it refuses every
  promise for E after start.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReplicaOptions:
    heartbeat_interval_ms: int = 50
    election_timeout_base_ms: int = 300
    election_timeout_jitter_ms: int = 300
    clock_drift_rate_max: float = 0.02
    lease_margin_ms: int = 10
    accept_batch_entries_max: int = 64
    inflight_entries_max: int = 512
    # After the commit index moves, a leader tells every peer that has not heard the
    # new one within this long (an Accept without entries, like a heartbeat), so
    # followers apply committed writes in milliseconds, not at the next heartbeat.
    # Under load every peer hears it sooner, with the next entries: nothing extra.
    # 0: only with entries and heartbeats.
    commit_notice_ms: int = 2
    # Deliberate bugs, used ONLY by the test proving the simulator catches them.
    fault_skip_lease_check: bool = False
    fault_double_self_vote: bool = False

    @property
    def lease_ms(self) -> int:
        rho = self.clock_drift_rate_max
        lease = int(self.election_timeout_base_ms * (1 - rho) / (1 + rho)) - self.lease_margin_ms
        assert 0 < lease < self.election_timeout_base_ms
        return lease

    def __post_init__(self) -> None:
        assert self.heartbeat_interval_ms * 3 <= self.election_timeout_base_ms
        assert 0 <= self.commit_notice_ms < self.heartbeat_interval_ms
        assert 0 <= self.clock_drift_rate_max < 0.5
