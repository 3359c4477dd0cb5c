"""What one node saw of one group it hosts: the report a split decision merges.

Made by every node for each replica it hosts (engine/split_advisor.py) and
merged by the metadata leader (metadata/split_reports.py); it crosses the
network as a plain list (`to_wire` / `from_wire`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from triplica.engine.split_policy import WindowUsage

REPORTS_PER_NODE_MAX = 4096


@dataclass(frozen=True)
class GroupReport:
    table: str
    group: str
    hash_start: int
    hash_end: int
    leader: bool
    size_bytes: int                      # this replica's stored bytes
    size_boundary: int | None            # leader only, when over the size limit
    recent: tuple[WindowUsage, ...]      # closed windows, oldest first
    counts: tuple[float, ...]            # the access sketch's buckets
    heavy: tuple[tuple[int, float], ...]  # the access sketch's heavy keys

    def to_wire(self) -> list[Any]:
        return [self.table, self.group, str(self.hash_start), str(self.hash_end), self.leader,
                self.size_bytes, None if self.size_boundary is None else str(self.size_boundary),
                [[w.read_units_per_s, w.write_units_per_s] for w in self.recent],
                list(self.counts), [[str(k), v] for k, v in self.heavy]]

    @staticmethod
    def from_wire(data: list[Any]) -> "GroupReport":
        (table, group, start, end, leader, size, boundary, recent, counts, heavy) = data
        return GroupReport(str(table), str(group), int(start), int(end), bool(leader), int(size),
                           None if boundary is None else int(boundary),
                           tuple(WindowUsage(float(r), float(w)) for r, w in recent),
                           tuple(float(c) for c in counts),
                           tuple((int(k), float(v)) for k, v in heavy))
