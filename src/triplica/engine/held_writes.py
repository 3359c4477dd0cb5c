"""Writes a partition holds back while it is being split (engine/partition_split.py).

While held, a write is neither proposed nor failed: it waits, in arrival
order, with its future. New writes are still evaluated against the latest
state, so the held writes form an overlay exactly like queued ones
(queued_writes.py): `latest(key)` and `future_of(key)` see them. When the
split ends the holder hands every held write, in order, to whichever
partition now owns its keys (`release`), or back to itself if the split was
abandoned. Nothing here touches a disk or a network.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from triplica.errors import InternalServerError

HELD_WRITES_MAX = 10_000

Write = tuple[bytes, "bytes | None"]
Propose = Callable[[list[Write]], asyncio.Future]


class HeldWrites:
    def __init__(self) -> None:
        self._writes: list[tuple[list[Write], asyncio.Future]] = []
        self._overlay: dict[bytes, tuple[bytes | None, asyncio.Future]] = {}

    def __len__(self) -> int:
        return len(self._writes)

    def add(self, writes: list[Write], future: asyncio.Future) -> None:
        if len(self._writes) >= HELD_WRITES_MAX:
            raise InternalServerError("Internal server error")
        self._writes.append((writes, future))
        for key, value in writes:
            self._overlay[key] = (value, future)

    def latest(self, key: bytes) -> tuple[bool, bytes | None]:
        held = self._overlay.get(key)
        return (False, None) if held is None else (True, held[0])

    def future_of(self, key: bytes) -> asyncio.Future | None:
        held = self._overlay.get(key)
        return None if held is None else held[1]

    def release(self, route: Callable[[bytes], Propose]) -> None:
        """Propose every held write, in order, where `route(key)` says its key now lives.

        A write whose keys now live in two partitions (a BatchWriteItem entry)
        becomes one proposal per partition; its future resolves when all did.
        """
        writes, self._writes = self._writes, []
        self._overlay.clear()
        for batch, future in writes:
            groups: dict[Propose, list[Write]] = {}
            for key, value in batch:
                groups.setdefault(route(key), []).append((key, value))
            try:
                parts = [propose(part) for propose, part in groups.items()]
            except Exception as error:  # e.g. the target is closed: a 500, never half silent
                if not future.done():
                    future.set_exception(error)
                continue
            _chain(parts, future)

    def fail_all(self) -> None:
        writes, self._writes = self._writes, []
        self._overlay.clear()
        for _, future in writes:
            if not future.done():
                future.set_exception(InternalServerError("Internal server error"))


def _chain(parts: list[asyncio.Future], future: asyncio.Future) -> None:
    """Resolve `future` once every part did: the last index, or the first failure."""
    remaining = [len(parts)]

    def done(part: asyncio.Future) -> None:
        if future.done():
            return
        if part.cancelled():
            future.set_exception(InternalServerError("Internal server error"))
        elif part.exception() is not None:
            future.set_exception(part.exception())
        else:
            remaining[0] -= 1
            if remaining[0] == 0:
                future.set_result(part.result())

    for part in parts:
        part.add_done_callback(done)
