"""Which of this node's partitions should split, and where: a cluster node's half of splits.

The metadata system decides and carries out splits (metadata/control_plane.py),
but only a partition's leader sees its traffic. So every node meters the
groups it leads (NodePartition.meter: reads and writes it serves, and where
in the hash range they fall; engine/access_meter.py) and, every `check`,
closes a window each `window_s` and applies the same policy as `serve`
(metadata/split_policy.py): "size" beyond `size_bytes_max`, split at the hash
halving the stored bytes; "consumption" above 80% of a partition's read or
write units for three windows running, split at the point the observed key
distribution gives (heavy keys isolated, not the midpoint). The control
plane asks every node for its `suggestions` and splits one partition at a
time.

Limits: only the leader's meter counts, so eventually consistent reads
served by followers do not push a partition towards a split; Scans are not
metered (engine/access_meter.py).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from triplica.engine.access_meter import AccessMeter
from triplica.engine.table_splits import size_split_point
from triplica.metadata.split_policy import (READ_UNITS_PER_PARTITION, SIZE_BYTES_MAX,
                                            WRITE_UNITS_PER_PARTITION, choose_split_point,
                                            split_reason)

if TYPE_CHECKING:
    from triplica.engine.database import Database

WINDOW_S_DEFAULT = 5.0
SUGGESTIONS_MAX = 16


@dataclass(frozen=True)
class SplitSuggestion:
    table: str
    group: str
    reason: str      # "size" or "consumption"
    boundary: int

    def to_wire(self) -> list[Any]:
        return [self.table, self.group, self.reason, str(self.boundary)]

    @staticmethod
    def from_wire(data: list[Any]) -> "SplitSuggestion":
        table, group, reason, boundary = data
        return SplitSuggestion(str(table), str(group), str(reason), int(boundary))


class SplitAdvisor:
    def __init__(self, db: "Database", size_bytes_max: int = SIZE_BYTES_MAX,
                 read_units_max: float = READ_UNITS_PER_PARTITION,
                 write_units_max: float = WRITE_UNITS_PER_PARTITION,
                 window_s: float = WINDOW_S_DEFAULT, for_traffic: bool = True) -> None:
        assert size_bytes_max > 0 and read_units_max > 0 and write_units_max > 0 and window_s > 0
        self.db = db
        self.size_bytes_max = size_bytes_max
        self.read_units_max = read_units_max
        self.write_units_max = write_units_max
        self.window_s = window_s
        self.for_traffic = for_traffic
        self.suggestions: list[SplitSuggestion] = []
        self._window_started: float | None = None

    async def check(self) -> list[SplitSuggestion]:
        """Close the window if due and recompute the suggestions (see the module docstring)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._window_started is None:
            self._window_started = now
        elapsed = now - self._window_started
        window_closed = elapsed >= self.window_s
        if window_closed:
            self._window_started = now
        found: list[SplitSuggestion] = []
        for name, table in list(self.db.tables.items()):
            for info, partition in zip(list(table.info.partitions), list(table.partitions)):
                serving = getattr(partition, "serving", None)
                if serving is None or info.group is None:
                    continue
                if not serving():
                    partition.meter = None  # a new leadership starts a new record
                    continue
                if partition.meter is None:
                    partition.meter = AccessMeter(info.hash_start, info.hash_end)
                    continue
                if window_closed:
                    partition.meter.close_window(elapsed)
                recent = list(partition.meter.recent) if self.for_traffic else []
                reason = split_reason(partition.stats()[1], recent, self.size_bytes_max,
                                      self.read_units_max, self.write_units_max)
                if reason is None or len(found) >= SUGGESTIONS_MAX:
                    continue
                if reason == "size":  # a scan of the whole partition: off the event loop
                    boundary = await loop.run_in_executor(
                        None, size_split_point, partition, info.hash_start, info.hash_end)
                else:
                    boundary = choose_split_point(partition.meter.sketch)
                if boundary is not None:
                    found.append(SplitSuggestion(name, info.group, reason, boundary))
        self.suggestions = found
        return found
