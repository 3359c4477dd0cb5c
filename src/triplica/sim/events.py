"""The simulators' virtual clock: an ordered queue of timed actions.

Events at the same virtual ms run in the order they were scheduled (a
sequence number breaks ties), so a seed always replays the same way.
`after_event` runs after every action (the clusters check leases there).
"""
from __future__ import annotations

import heapq
from typing import Callable


class EventQueue:
    def __init__(self) -> None:
        self.now_ms = 0
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = 0

    def at(self, delay_ms: int, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.now_ms + max(0, delay_ms), self._seq, action))

    def run_until(self, predicate: Callable[[], bool], limit_ms: int) -> bool:
        """Process events until predicate() holds or virtual time passes limit."""
        deadline = self.now_ms + limit_ms
        while not predicate():
            if not self._queue or self._queue[0][0] > deadline:
                self.now_ms = max(self.now_ms, deadline)
                return predicate()
            self._step_one()
        return True

    def run_for(self, duration_ms: int) -> None:
        self.run_until(lambda: False, duration_ms)

    def _step_one(self) -> None:
        time_ms, _, action = heapq.heappop(self._queue)
        assert time_ms >= self.now_ms
        self.now_ms = time_ms
        action()
        self.after_event()

    def after_event(self) -> None:
        return None
