"""What each node saw of a group's traffic, and the split decision taken from all of them.

A cluster partition's reads are served by all three members (eventually
consistent reads go to each in turn), its writes and strong reads by the
leader. So no single replica sees the partition's whole consumption: each
node reports, for every replica it hosts, a `GroupReport` (its closed
windows of units per second, its access sketch, and on the leader the
partition's size and the size split point), and the metadata leader merges
the reports of a group (`decide_splits`): window usage summed member by
member, newest windows aligned (every node closes a window every `window_s`
of its own clock, so aligned windows cover nearly the same time), sketches
added bucket by bucket and heavy key by heavy key. The merged numbers go
through the same policy as `serve` (split_policy.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from triplica.engine.group_report import GroupReport
from triplica.engine.split_policy import (HEAVY_KEYS_MAX, HOT_WINDOWS, AccessSketch,
                                          WindowUsage, choose_split_point, split_reason)

@dataclass(frozen=True)
class SplitSuggestion:
    table: str
    group: str
    reason: str      # "size" or "consumption"
    boundary: int


@dataclass(frozen=True)
class Limits:
    size_bytes: int
    read_units: float
    write_units: float
    for_traffic: bool = True


def merged_usage(reports: list[GroupReport]) -> list[WindowUsage]:
    """Per-window usage of the whole group: each member's windows summed, newest aligned."""
    length = min((len(r.recent) for r in reports), default=0)
    merged = []
    for back in range(length, 0, -1):
        merged.append(WindowUsage(sum(r.recent[-back].read_units_per_s for r in reports),
                                  sum(r.recent[-back].write_units_per_s for r in reports)))
    return merged


def merged_sketch(reports: list[GroupReport]) -> AccessSketch | None:
    """The members' sketches added up (None if they do not cover the same buckets)."""
    first = reports[0]
    if any((r.hash_start, r.hash_end, len(r.counts)) != (first.hash_start, first.hash_end,
                                                         len(first.counts)) for r in reports):
        return None
    heavy: dict[int, float] = {}
    for report in reports:
        for key_hash, units in report.heavy:
            heavy[key_hash] = heavy.get(key_hash, 0.0) + units
    top = dict(sorted(heavy.items(), key=lambda item: -item[1])[:HEAVY_KEYS_MAX])
    return AccessSketch(first.hash_start, first.hash_end, buckets=len(first.counts),
                        counts=[sum(r.counts[i] for r in reports) for i in range(len(first.counts))],
                        heavy=top)


def decide_splits(reports: list[GroupReport], limits: Limits) -> list[SplitSuggestion]:
    """The groups that should split and where, from every node's reports."""
    by_group: dict[tuple[str, str], list[GroupReport]] = {}
    for report in reports:
        by_group.setdefault((report.table, report.group), []).append(report)
    suggestions = []
    for (table, group), members in sorted(by_group.items()):
        leaders = [r for r in members if r.leader]
        size = max(r.size_bytes for r in (leaders or members))
        usage = merged_usage(members) if limits.for_traffic else []
        reason = split_reason(size, usage[-HOT_WINDOWS:], limits.size_bytes, limits.read_units,
                              limits.write_units)
        boundary = None
        if reason == "size":
            boundary = next((r.size_boundary for r in leaders if r.size_boundary is not None), None)
        elif reason == "consumption":
            sketch = merged_sketch(members)
            boundary = None if sketch is None else choose_split_point(sketch)
        if boundary is not None:
            suggestions.append(SplitSuggestion(table, group, reason, boundary))
    return suggestions
