"""The storage-key range a sort key condition can match, under a key prefix.

Keys are model/keys.py encodings, each self-delimiting and order-preserving,
so the keys of one partition key value (a table's, a local index's, a
global index's with its leading RANGE values) share a prefix, and a
comparison on the next encoded value is a range of keys under it. What may
follow that value (`after`) depends on the key space: nothing in a table
(AFTER_EXACT bounds exactly the keys ending with it), more encoded values
in an index (PARTITION_END, above every type tag, bounds them all).
"""
from __future__ import annotations

from triplica.model.keys import encode_key_value

AFTER_EXACT = b"\x00"     # key + this is above key and below anything key is not a prefix of
PARTITION_END = b"\xff"   # above every encoded key value (type tags are below 0xff)


def sort_range(prefix: bytes, op: str | None, values: tuple[dict, ...],
               after: bytes) -> tuple[bytes, bytes]:
    """[start, end) of keys under `prefix` whose next value can satisfy `op values`."""
    if op is None:
        return prefix, prefix + PARTITION_END
    if op == "begins_with":
        # S and B encode as tag || escaped bytes || 00 01, and escaping maps each byte on its
        # own, so every value starting with v encodes to a key starting with this prefix.
        start = prefix + encode_key_value(values[0])[:-2]
        return start, prefix_successor(start)
    first = prefix + encode_key_value(values[0])
    if op == "=":
        return first, first + after
    if op == "<":
        return prefix, first
    if op == "<=":
        return prefix, first + after
    if op == ">":
        return first + after, prefix + PARTITION_END
    if op == ">=":
        return first, prefix + PARTITION_END
    assert op == "BETWEEN", op
    return first, prefix + encode_key_value(values[1]) + after


def prefix_successor(key: bytes) -> bytes:
    """The smallest byte string above every string that starts with `key`."""
    stripped = key.rstrip(b"\xff")
    assert stripped, "a storage key prefix is never all 0xff bytes"
    return stripped[:-1] + bytes((stripped[-1] + 1,))
