"""The internal parameters a router adds to the requests it sends to nodes.

A router splits one client request (a Scan, a batch) into sub-requests, each
of which must run on one partition; the node needs a little more than the
DynamoDB parameters for that. They travel in the JSON body under
INTERNAL_KEY, a name no DynamoDB parameter has. Only a storage node honours
them (node/calls.py): the DynamoDB front (api/app.py, in front of the router
in every shape) drops the key from a client's body, so a client can never restrict a Scan or skip a batch's
writes by sending it.

Request fields:
- HASH_RANGE (Scan): ["start", "end"], decimal strings because the exclusive
  end may be 2**64, past JSON's unsigned 64-bit integers. The node scans
  only the intersection of this range with the request's segment.
- BYTES_MAX (Scan): the page ends once this much item data was read (the
  router's share of DynamoDB's 1 MB left for this partition).
- VALIDATE_ONLY (BatchGetItem, BatchWriteItem): run every check of the whole
  batch, then answer `{}` without reading or writing anything.

Response fields (Scan, under INTERNAL_KEY; the router strips them):
- LAST_KEY: key of the last item evaluated, or null, even when the page is
  not full (the router needs it to end its own page at a partition boundary);
- BYTES_READ: item bytes read (before any filter);
- FETCH_UNITS: read units of the items a local secondary index Scan fetched
  from the table (charged to the table, beside the index's).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from triplica.errors import ValidationException
from triplica.model.partition_map import HASH_SPACE_END
from triplica.model import limits

INTERNAL_KEY = "__triplica"
HASH_RANGE = "HashRange"
BYTES_MAX = "BytesMax"
VALIDATE_ONLY = "ValidateOnly"
LAST_KEY = "LastKey"
BYTES_READ = "BytesRead"
FETCH_UNITS = "FetchUnits"
# X-Amz-Target of the router's partition map request to a node (node/calls.py).
PARTITION_MAP_TARGET = "Triplica.PartitionMap"
# Router administration (operators and benchmarks; not DynamoDB operations):
# the map cache's counters, and wiping the cache (bench/memds.py).
ROUTER_STATS_TARGET = "Triplica.RouterStats"
WIPE_CACHE_TARGET = "Triplica.WipeRouterCache"
# Operator: move every replica off a node (`triplica node drain`), body
# {"Node": id, "Drain": true|false}; the router sends it to the metadata leader.
DRAIN_TARGET = "Triplica.DrainNode"
# Fault injection (tests and drills): stop one node's replicas of a table as a disk
# failure would, body {"TableName": name, "Node": id}; answered by the metadata leader,
# which asks the node. The control plane then replaces them (metadata/replica_mover.py).
STOP_REPLICA_TARGET = "Triplica.StopReplica"
# Requests the router sends to the metadata leader, beside the table operations.
OPERATOR_TARGETS = frozenset({DRAIN_TARGET, STOP_REPLICA_TARGET})


@dataclass(frozen=True)
class ScanSlice:
    """What a node's Scan must keep to: one hash range and a byte budget."""

    hash_start: int
    hash_end: int      # exclusive
    bytes_max: int


def encode_scan_slice(hash_start: int, hash_end: int, bytes_max: int) -> dict[str, Any]:
    assert 0 <= hash_start < hash_end <= HASH_SPACE_END, (hash_start, hash_end)
    assert 0 < bytes_max <= limits.QUERY_PAGE_BYTES_MAX, bytes_max
    return {HASH_RANGE: [str(hash_start), str(hash_end)], BYTES_MAX: bytes_max}


def scan_slice(request: dict[str, Any]) -> ScanSlice | None:
    """The internal Scan restriction of a request (None without one)."""
    internal = request.get(INTERNAL_KEY)
    if internal is None:
        return None
    try:
        start_text, end_text = internal[HASH_RANGE]
        hash_start, hash_end = int(start_text), int(end_text)
        bytes_max = int(internal.get(BYTES_MAX, limits.QUERY_PAGE_BYTES_MAX))
    except (TypeError, ValueError, KeyError, AttributeError):
        # Only a router sends this; a malformed one is its bug, reported, not guessed at.
        raise ValidationException(f"Malformed internal scan parameters: {internal!r:.200}")
    if not (0 <= hash_start < hash_end <= HASH_SPACE_END
            and 0 < bytes_max <= limits.QUERY_PAGE_BYTES_MAX):
        raise ValidationException(f"Malformed internal scan parameters: {internal!r:.200}")
    return ScanSlice(hash_start, hash_end, bytes_max)


def validate_only(request: dict[str, Any]) -> bool:
    internal = request.get(INTERNAL_KEY)
    return type(internal) is dict and internal.get(VALIDATE_ONLY) is True
