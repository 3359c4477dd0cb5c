"""Log entries of a partition's group: the writes one entry carries, and their encoding.

A write is (storage key, new stored value or None for a delete), the result
of the leader's evaluation: applying an entry never re-evaluates a user
expression, so replaying a log after a crash is deterministic. An entry's
items' writes are a msgpack array; a partition record (RecordKey,
storage/lmdb_store.py, e.g. a split marker) travels alone, as a msgpack map.
"""
from __future__ import annotations

import struct

import msgpack

from triplica.storage.index_outbox import OpKey
from triplica.storage.lmdb_store import RecordKey

Write = tuple[bytes, "bytes | None"]

_SIZE_PREFIX = struct.Struct(">I")


def stored_item_size(stored: bytes) -> int:
    """DynamoDB size of a stored item image (`u32 size || JSON`, see engine/operations/item_access.py)."""
    return _SIZE_PREFIX.unpack_from(stored)[0]


def encode_entry(writes: list[Write]) -> bytes:
    """Items' writes are a msgpack array; a partition record (RecordKey, see
    storage/lmdb_store.py) is an entry of its own, a msgpack map; so is a global index
    operation (OpKey, storage/index_outbox.py), first, with the items' writes that
    follow it (an index partition's batch after its cursor)."""
    if len(writes) == 1 and type(writes[0][0]) is RecordKey:
        key, value = writes[0]
        return msgpack.packb({"record": [bytes(key), value]}, use_bin_type=True)
    if writes and type(writes[0][0]) is OpKey:
        key, value = writes[0]
        rest = writes[1:]
        assert not any(type(k) in (RecordKey, OpKey) for k, _ in rest), "one operation"
        return msgpack.packb({"op": [bytes(key), value], "w": rest}, use_bin_type=True)
    assert not any(type(key) in (RecordKey, OpKey) for key, _ in writes), \
        "a record or an operation comes first"
    return msgpack.packb(writes, use_bin_type=True)


def decode_entry(payload: bytes) -> list[Write]:
    decoded = msgpack.unpackb(payload, raw=False)
    if type(decoded) is dict:
        if "op" in decoded:
            key, value = decoded["op"]
            return [(OpKey(key), value)] + [(k, v) for k, v in decoded["w"]]
        key, value = decoded["record"]
        return [(RecordKey(key), value)]
    return [(key, value) for key, value in decoded]
