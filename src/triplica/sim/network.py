"""The simulated network: delay distribution, loss, duplication, partitions.

Reordering falls out of independent random delays. Partitions are sets of
blocked directed links, so asymmetric partitions (A hears B, B does not hear
A) are expressible. Every decision draws from the simulator's one seeded
random.Random.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class NetworkSettings:
    delay_ms_min: int = 1
    delay_ms_mean_extra: float = 2.0  # exponential tail above the minimum
    delay_ms_max: int = 200
    loss_rate: float = 0.0
    duplicate_rate: float = 0.0


@dataclass
class SimNetwork:
    rng: random.Random
    settings: NetworkSettings = field(default_factory=NetworkSettings)
    blocked: set[tuple[int, int]] = field(default_factory=set)

    def delays_ms(self, sender: int, to: int) -> list[int]:
        """Delivery delays for one message: [] lost, one, or two (duplicated)."""
        if (sender, to) in self.blocked:
            return []
        s = self.settings
        if s.loss_rate and self.rng.random() < s.loss_rate:
            return []
        copies = 2 if s.duplicate_rate and self.rng.random() < s.duplicate_rate else 1
        return [self._delay_ms() for _ in range(copies)]

    def _delay_ms(self) -> int:
        s = self.settings
        extra = self.rng.expovariate(1.0 / s.delay_ms_mean_extra) if s.delay_ms_mean_extra > 0 else 0.0
        return min(s.delay_ms_max, s.delay_ms_min + int(extra))

    def isolate(self, node: int, others: "list[int]", inbound: bool = True, outbound: bool = True) -> None:
        for other in others:
            if other == node:
                continue
            if outbound:
                self.blocked.add((node, other))
            if inbound:
                self.blocked.add((other, node))

    def heal(self) -> None:
        self.blocked.clear()
