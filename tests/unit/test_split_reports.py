"""Split decisions from every member's reports (metadata/split_reports.py)."""
from __future__ import annotations

from triplica.engine.catalogue import HASH_SPACE_END
from triplica.engine.split_policy import AccessSketch, WindowUsage
from triplica.engine.group_report import GroupReport
from triplica.metadata.split_reports import (Limits, decide_splits, merged_sketch,
                                             merged_usage)

LIMITS = Limits(size_bytes=1_000_000, read_units=3000, write_units=1000)
HOT_A, HOT_B = 3 << 60, 11 << 60


def _report(leader: bool, reads: float, writes: float = 0.0, windows: int = 3,
            heavy: dict[int, float] | None = None, size: int = 10,
            size_boundary: int | None = None) -> GroupReport:
    sketch = AccessSketch(0, HASH_SPACE_END)
    for key_hash, units in (heavy or {}).items():
        sketch.record(key_hash, units)
    return GroupReport("t", "g", 0, HASH_SPACE_END, leader, size, size_boundary,
                       tuple(WindowUsage(reads, writes) for _ in range(windows)),
                       tuple(sketch.counts), tuple(sketch.heavy.items()))


def test_reads_served_by_every_member_add_up_to_a_hot_partition() -> None:
    """Each member alone serves 1,000 RCU/s, under 80% of 3,000; together 3,000."""
    members = [_report(True, 1000, heavy={HOT_A: 50}), _report(False, 1000, heavy={HOT_B: 50}),
               _report(False, 1000, heavy={HOT_A: 10, HOT_B: 10})]
    assert decide_splits(members[:1], LIMITS) == []
    (suggestion,) = decide_splits(members, LIMITS)
    assert suggestion.reason == "consumption"
    # The two hot keys, seen by different members, end up on different sides.
    assert HOT_A < suggestion.boundary <= HOT_B


def test_windows_are_aligned_newest_first_and_need_three_hot_ones() -> None:
    older = GroupReport("t", "g", 0, HASH_SPACE_END, True, 0, None,
                        (WindowUsage(0, 0), WindowUsage(0, 900), WindowUsage(0, 900)), (0.0,) * 64, ())
    newer = _report(False, 0, writes=0, windows=2)
    assert merged_usage([older, newer]) == [WindowUsage(0, 900), WindowUsage(0, 900)]
    assert decide_splits([older, newer], LIMITS) == []  # two windows only


def test_size_splits_at_the_leaders_point_and_only_when_over_the_limit() -> None:
    big = _report(True, 0, size=2_000_000, size_boundary=5 << 60)
    (suggestion,) = decide_splits([big, _report(False, 0, size=2_000_000)], LIMITS)
    assert (suggestion.reason, suggestion.boundary) == ("size", 5 << 60)
    assert decide_splits([_report(True, 0, size=999_999)], LIMITS) == []
    # No leader's point yet (its scan has not run): no split this round.
    assert decide_splits([_report(False, 0, size=2_000_000)], LIMITS) == []


def test_traffic_is_ignored_when_splits_for_traffic_are_off() -> None:
    members = [_report(True, 0, writes=2000, heavy={HOT_A: 5, HOT_B: 5})]
    assert decide_splits(members, LIMITS)[0].reason == "consumption"
    assert decide_splits(members, Limits(1_000_000, 3000, 1000, for_traffic=False)) == []


def test_reports_travel_intact_and_sketches_of_other_ranges_are_not_merged() -> None:
    report = _report(True, 12.5, writes=3.0, heavy={HOT_A: 7}, size=99, size_boundary=HOT_B)
    assert GroupReport.from_wire(report.to_wire()) == report
    other = GroupReport("t", "g", 0, HOT_B, False, 0, None, (), (0.0,) * 64, ())
    assert merged_sketch([report, other]) is None
    merged = merged_sketch([report, report])
    assert merged is not None and merged.heavy[HOT_A] == 14 and merged.total == 2 * report_total(report)


def report_total(report: GroupReport) -> float:
    return sum(report.counts)
