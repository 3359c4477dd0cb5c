"""Scan page stitching: slices in hash order, sub-requests, merged pages."""
from __future__ import annotations

from typing import Any

from triplica.model.partition_map import HASH_SPACE_END, TableMap
from triplica.model import limits
from triplica.model.keys import partition_hash
from triplica.common.internal import (BYTES_MAX, BYTES_READ, HASH_RANGE, INTERNAL_KEY,
                                      LAST_KEY, scan_slice)
from triplica.router.scan_pages import ScanStitch, scan_slices, segment_range, sub_request

THIRD = HASH_SPACE_END // 3


def _map() -> TableMap:
    return TableMap("t", 0, "pk", "S", None, None, (0, THIRD, 2 * THIRD),
                    ("g0", "g1", "g2"), ((1, 2, 3),) * 3)


def test_segments_cut_the_hash_space() -> None:
    assert segment_range({}) == (0, HASH_SPACE_END)
    assert segment_range({"Segment": 1, "TotalSegments": 4}) == (HASH_SPACE_END // 4,
                                                                HASH_SPACE_END // 2)
    for bad in ({"Segment": 4, "TotalSegments": 4}, {"Segment": 0}, {"TotalSegments": 2},
                {"Segment": "0", "TotalSegments": 2}, {"Segment": -1, "TotalSegments": 2}):
        assert segment_range(bad) is None


def test_slices_walk_partitions_within_the_segment() -> None:
    whole = scan_slices(_map(), {"TableName": "t"})
    assert whole is not None
    assert [(p.route.index, p.hash_start, p.hash_end) for p in whole] == [
        (0, 0, THIRD), (1, THIRD, 2 * THIRD), (2, 2 * THIRD, HASH_SPACE_END)]
    second_quarter = scan_slices(_map(), {"Segment": 1, "TotalSegments": 4})
    assert second_quarter is not None
    assert [(p.route.index, p.hash_start, p.hash_end) for p in second_quarter] == [
        (0, HASH_SPACE_END // 4, THIRD), (1, THIRD, HASH_SPACE_END // 2)]


def test_a_start_key_starts_at_its_partition() -> None:
    key = {"pk": {"S": "resume"}}
    index = _map().index_of(partition_hash(key["pk"]))
    plans = scan_slices(_map(), {"ExclusiveStartKey": key})
    assert plans is not None and plans[0].route.index == index and len(plans) == 3 - index
    assert scan_slices(_map(), {"ExclusiveStartKey": {"pk": {"N": "1"}}}) is None
    assert scan_slices(_map(), {"ExclusiveStartKey": "x"}) is None


def test_sub_requests_carry_the_slice_and_the_budget_left() -> None:
    parameters: dict[str, Any] = {"TableName": "t", "Limit": 10, "ExclusiveStartKey": {
        "pk": {"S": "a"}}, INTERNAL_KEY: {"client": "junk"}}
    plans = scan_slices(_map(), {"TableName": "t"})
    assert plans is not None
    first = sub_request(parameters, plans[1], True, 7, 500)
    assert first["Limit"] == 7 and first["ExclusiveStartKey"] == {"pk": {"S": "a"}}
    assert first[INTERNAL_KEY] == {HASH_RANGE: [str(THIRD), str(2 * THIRD)], BYTES_MAX: 500}
    restriction = scan_slice(first)
    assert restriction is not None
    assert (restriction.hash_start, restriction.hash_end) == (THIRD, 2 * THIRD)
    later = sub_request(parameters, plans[2], False, None, 500)
    assert "Limit" not in later and "ExclusiveStartKey" not in later
    assert later[INTERNAL_KEY][HASH_RANGE][1] == str(HASH_SPACE_END)


def _answer(items: list[int], scanned: int, full: bool, bytes_read: int = 10) -> dict[str, Any]:
    answer: dict[str, Any] = {"Items": [{"pk": {"S": str(i)}} for i in items],
                              "Count": len(items), "ScannedCount": scanned,
                              INTERNAL_KEY: {LAST_KEY: {"pk": {"S": str(items[-1])}}
                                             if items else None, BYTES_READ: bytes_read}}
    if full:
        answer["LastEvaluatedKey"] = {"pk": {"S": "node's"}}
    return answer


def test_stitch_stops_when_a_sub_page_is_full() -> None:
    stitch = ScanStitch({"TableName": "t", "Limit": 5, "ReturnConsumedCapacity": "TOTAL"})
    assert stitch.add(_answer([], 0, False)) is False          # an empty partition
    assert stitch.limit_left == 5
    assert stitch.add(_answer([1, 2], 3, False)) is False      # filtered one out
    assert stitch.limit_left == 2
    assert stitch.add(_answer([3, 4], 2, True)) is True
    response = stitch.response()
    assert response["Count"] == 4 and response["ScannedCount"] == 5
    assert [i["pk"]["S"] for i in response["Items"]] == ["1", "2", "3", "4"]
    assert response["LastEvaluatedKey"] == {"pk": {"S": "4"}}  # the router's, a key
    assert response["ConsumedCapacity"] == {"TableName": "t", "CapacityUnits": 0.5,
                                            "ReadCapacityUnits": 0.5}
    assert INTERNAL_KEY not in response


def test_stitch_without_a_full_page_has_no_last_key_and_counts_only() -> None:
    stitch = ScanStitch({"TableName": "t", "Select": "COUNT"})
    assert stitch.add(_answer([1], 1, False)) is False
    assert stitch.add(_answer([2, 3], 2, False, bytes_read=limits.QUERY_PAGE_BYTES_MAX - 5)) \
        is False
    assert stitch.bytes_left == 1  # never zero: a budget a node can take
    assert stitch.response() == {"Count": 3, "ScannedCount": 3}
