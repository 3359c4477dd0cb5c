"""What one partition consumed, and where in its hash range: the input of consumption splits.

A partition's leader sees every item read and write, so it meters them
(paper: a partition that keeps running hot splits at a key chosen from the
key distribution it experienced). Units follow DynamoDB's rules as far as a
partition can apply them: a read costs ceil(size / 4 KB) units, half for an
eventually consistent read; a write costs ceil(size / 1 KB) (a delete
counts one). Scans are not metered here (they spread over the whole range
and cannot be helped by a split point).

`close_window(seconds)` turns the window's totals into a WindowUsage (units
per second), keeps the last WINDOWS_KEPT of them and decays the access
sketch, so the split point follows the current traffic.
"""
from __future__ import annotations

from collections import deque

from triplica.engine.split_policy import AccessSketch, WindowUsage

READ_UNIT_BYTES = 4 * 1024
WRITE_UNIT_BYTES = 1024
WINDOWS_KEPT = 8
DECAY_PER_WINDOW = 0.5


class AccessMeter:
    def __init__(self, hash_start: int, hash_end: int) -> None:
        self.sketch = AccessSketch(hash_start, hash_end)
        self.recent: deque[WindowUsage] = deque(maxlen=WINDOWS_KEPT)
        self._read_units = 0.0
        self._write_units = 0.0

    def read(self, key: bytes, size_bytes: int, consistent: bool) -> None:
        units = max(1, -(-size_bytes // READ_UNIT_BYTES)) * (1.0 if consistent else 0.5)
        self._read_units += units
        self.sketch.record(int.from_bytes(key[:8], "big"), units)

    def write(self, key: bytes, size_bytes: int) -> None:
        units = float(max(1, -(-size_bytes // WRITE_UNIT_BYTES)))
        self._write_units += units
        self.sketch.record(int.from_bytes(key[:8], "big"), units)

    def close_window(self, seconds: float) -> WindowUsage:
        assert seconds > 0, seconds
        usage = WindowUsage(self._read_units / seconds, self._write_units / seconds)
        self.recent.append(usage)
        self._read_units = self._write_units = 0.0
        self.sketch.decay(DECAY_PER_WINDOW)
        return usage
