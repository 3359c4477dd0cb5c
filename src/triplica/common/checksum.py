"""CRC32C (Castagnoli) checksums for everything triplica writes to disk.

One function so every on-disk format (WAL records today, snapshots and
archived segments later) uses the same polynomial and the same
hardware-accelerated implementation (the `crc32c` package uses SSE4.2 / ARMv8
CRC instructions when present). Paper: "continuous verification", every
record and stored page carries a checksum.
"""
from __future__ import annotations

import crc32c as _crc32c


def crc32c(data: bytes, value: int = 0) -> int:
    """Return the CRC32C of `data` as an unsigned 32-bit int.

    `value` continues a running checksum, so crc32c(a + b) ==
    crc32c(b, crc32c(a)) without concatenating.
    """
    result = _crc32c.crc32c(data, value)
    assert 0 <= result <= 0xFFFFFFFF
    return result
