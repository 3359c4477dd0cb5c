"""The metadata log's records: catalogue changes, numbered by epoch.

The cluster's catalogue (tables, their partitions as hash ranges, each
partition's replication group and members) is the fold of an ordered log of
changes kept by the metadata replication group (metadata_replica.py). A
change's epoch is its position in that log (1, 2, 3, ...), so every copy of
the catalogue (each storage node's, each MemDS server's) is "the log up to
epoch E" and two copies at the same epoch are equal.

Four kinds of change, each a whole document (a table's, or a list of nodes)
so that applying one never depends on reading anything but the previous
state:
- `{"op": "put_table", "info": TableInfo.to_json()}`: the table's full
  definition (create, update, status change, tags);
- `{"op": "delete_table", "name": name}`;
- `{"op": "set_draining", "nodes": [id, ...]}`: the nodes whose replicas the
  control plane moves away (`triplica node drain`, replica_mover.py); not a
  routing change, so MemDS never sees it;
- `{"op": "set_metadata_members", "nodes": [id, ...]}`: the metadata group's
  own members after a move (replica_mover.py).

Records are stored in the metadata partition's B-tree under
`LOG_PREFIX || epoch (8 bytes, big-endian)`, so a range scan returns them in
epoch order; the value is `u32 length || JSON` (the stored-value layout the
replication driver measures sizes with).
"""
from __future__ import annotations

import struct
from typing import Any

import orjson

from triplica.engine.catalogue import TableInfo, table_map_of

LOG_PREFIX = b"\x00catalogue-log\x00"
EPOCH_MAX = (1 << 63) - 1
CHANGE_BYTES_MAX = 4 * 1024 * 1024
_LENGTH = struct.Struct(">I")

Change = dict[str, Any]


def put_table(info: TableInfo) -> Change:
    return {"op": "put_table", "info": info.to_json()}


def delete_table(name: str) -> Change:
    return {"op": "delete_table", "name": name}


def set_draining(nodes: list[int]) -> Change:
    return {"op": "set_draining", "nodes": sorted(set(nodes))}


def set_metadata_members(nodes: list[int]) -> Change:
    return {"op": "set_metadata_members", "nodes": sorted(set(nodes))}


def check_change(change: Change) -> None:
    """Refuse a record that is not one of the known kinds (a bug or a damaged log)."""
    op = change.get("op")
    if op == "put_table":
        assert isinstance(change.get("info"), dict), change
    elif op == "delete_table":
        assert isinstance(change.get("name"), str), change
    elif op in ("set_draining", "set_metadata_members"):
        assert all(isinstance(n, int) for n in change.get("nodes", [None])), change
    else:
        raise AssertionError(f"unknown catalogue change {change!r:.200}")


def table_name_of(change: Change) -> str:
    return change["info"]["name"] if change["op"] == "put_table" else change["name"]


def log_key(epoch: int) -> bytes:
    assert 1 <= epoch <= EPOCH_MAX, epoch
    return LOG_PREFIX + epoch.to_bytes(8, "big")


def epoch_of_key(key: bytes) -> int:
    assert key.startswith(LOG_PREFIX) and len(key) == len(LOG_PREFIX) + 8, key
    return int.from_bytes(key[len(LOG_PREFIX):], "big")


def encode_change(change: Change) -> bytes:
    check_change(change)
    payload = orjson.dumps(change)
    assert len(payload) <= CHANGE_BYTES_MAX, len(payload)
    return _LENGTH.pack(len(payload)) + payload


def decode_change(stored: bytes) -> Change:
    (length,) = _LENGTH.unpack_from(stored)
    assert len(stored) == _LENGTH.size + length, "truncated catalogue change"
    change = orjson.loads(stored[_LENGTH.size:])
    check_change(change)
    return change


def map_changes_of(changes: list[tuple[int, Change]]) -> list[dict[str, Any]]:
    """The routing changes among catalogue changes, as MemDS receives them."""
    return [map_change_of(epoch, change) for epoch, change in changes
            if change["op"] in ("put_table", "delete_table")]


def map_change_of(epoch: int, change: Change) -> dict[str, Any]:
    """A catalogue change as MemDS receives it: the table's new map, or None once deleted."""
    if change["op"] == "delete_table":
        return {"epoch": epoch, "table": change["name"], "map": None}
    info = TableInfo.from_json(dict(change["info"]))
    return {"epoch": epoch, "table": info.name, "map": table_map_of(info, epoch).to_doc()}
