"""Stored item images: `u32 big-endian DynamoDB item size || JSON of the item`.

Keeping the size beside the image lets reads compute consumed capacity and the
1 MB page limit without re-measuring, and lets GetItem splice the JSON
straight into its response. A local secondary index entry has the same form
(engine/local_indexes.py).
"""
from __future__ import annotations

import struct
from typing import Any

import orjson

SIZE_PREFIX = struct.Struct(">I")


def encode_image(item: dict[str, Any], size: int) -> bytes:
    return SIZE_PREFIX.pack(size) + orjson.dumps(item)


def decode_image(stored: bytes | None) -> dict[str, Any] | None:
    if stored is None:
        return None
    return orjson.loads(memoryview(stored)[4:])


def image_size(stored: bytes | None) -> int:
    if stored is None:
        return 0
    return SIZE_PREFIX.unpack_from(stored)[0]
