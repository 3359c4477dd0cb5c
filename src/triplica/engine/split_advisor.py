"""What this node saw of its partitions' traffic and size: a cluster node's half of splits.

The metadata system decides and carries out splits (metadata/control_plane.py),
but only the replicas see the traffic: every replica meters the reads it
serves (eventually consistent reads go to every member in turn) and the
leader also the writes and strong reads (NodePartition.meter,
engine/access_meter.py). Every `check` the advisor closes a window each
`window_s` and makes one `GroupReport` per hosted replica
(metadata/split_reports.py): its windows, its access sketch, its size, and
on a leader holding more than `size_bytes_max` the hash that halves its
stored bytes (a bounded sample of its keys, off the event loop, computed
once per size doubling). The control plane merges every node's reports of
a group and applies the policy. Scans are not metered (access_meter.py).
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from triplica.engine.access_meter import AccessMeter
from triplica.engine.split_policy import SIZE_BYTES_MAX, AccessSketch, choose_split_point
from triplica.engine.group_report import REPORTS_PER_NODE_MAX, GroupReport

if TYPE_CHECKING:
    from triplica.engine.database import Database

WINDOW_S_DEFAULT = 5.0
SAMPLE_RECORDS_MAX = 100_000  # keys sampled to find a size split point


def size_split_point(partition: Any, start: int, end: int) -> int | None:
    """The hash that halves the partition's stored bytes (from a bounded sample of its keys)."""
    count, _ = partition.stats()
    step = max(1, count // SAMPLE_RECORDS_MAX)
    sketch = AccessSketch(start, end, buckets=64)
    for position, (key, value) in enumerate(partition.scan(b"", None)):
        if position % step == 0:
            sketch.record(int.from_bytes(key[:8], "big"), float(len(value)))
    return choose_split_point(sketch)



class SplitAdvisor:
    def __init__(self, db: "Database", size_bytes_max: int = SIZE_BYTES_MAX,
                 window_s: float = WINDOW_S_DEFAULT) -> None:
        assert size_bytes_max > 0 and window_s > 0
        self.db = db
        self.size_bytes_max = size_bytes_max
        self.window_s = window_s
        self.reports: list[GroupReport] = []
        self._window_started: float | None = None
        # group -> (size it was computed at, boundary): a scan per size doubling, not per check
        self._size_points: dict[str, tuple[int, int | None]] = {}

    async def check(self) -> list[GroupReport]:
        """Close the window if due and rebuild the reports (see the module docstring)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._window_started is None:
            self._window_started = now
        elapsed = now - self._window_started
        window_closed = elapsed >= self.window_s
        if window_closed:
            self._window_started = now
        reports: list[GroupReport] = []
        hosted: set[str] = set()
        for name, table in list(self.db.tables.items()):
            for info, partition in zip(list(table.info.partitions), list(table.partitions)):
                if getattr(partition, "driver", None) is None or info.group is None \
                        or partition.closed or partition.moved is not None:
                    continue
                hosted.add(info.group)
                if partition.meter is None:
                    partition.meter = AccessMeter(info.hash_start, info.hash_end)
                    continue
                if window_closed:
                    partition.meter.close_window(elapsed)
                leader = partition.serving()
                size = partition.stats()[1]
                boundary = None
                if leader and size > self.size_bytes_max:
                    boundary = await self._size_point(loop, info.group, partition,
                                                      info.hash_start, info.hash_end, size)
                sketch = partition.meter.sketch
                if len(reports) < REPORTS_PER_NODE_MAX:
                    reports.append(GroupReport(
                        name, info.group, info.hash_start, info.hash_end, leader, size, boundary,
                        tuple(partition.meter.recent), tuple(sketch.counts),
                        tuple(sketch.heavy.items())))
        self._size_points = {g: p for g, p in self._size_points.items() if g in hosted}
        self.reports = reports
        return reports

    async def _size_point(self, loop: asyncio.AbstractEventLoop, group: str, partition: object,
                          start: int, end: int, size: int) -> int | None:
        cached = self._size_points.get(group)
        if cached is not None and cached[0] <= size < 2 * cached[0] and cached[1] is not None:
            return cached[1]
        boundary = await loop.run_in_executor(None, size_split_point, partition, start, end)
        self._size_points[group] = (size, boundary)
        return boundary
