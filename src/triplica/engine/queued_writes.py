"""Writes a leader has proposed but not yet seen applied, for replicated partitions.

The leader evaluates each new write against the latest state, which includes
its own queued writes (DESIGN.md: "the log is the truth"): the overlay maps a
storage key to the latest queued value. Each queued entry has the future its
writer waits on. All of it belongs to one leadership (an owner such as
(node, ballot)): when that leadership ends, every queued write fails with a
500 (it may or may not be chosen later, which is DynamoDB's
InternalServerError contract) and the overlay is dropped, since a new leader
evaluates against its own state.

Invariants: every overlay entry points at a pending index; an entry leaves the
overlay only when its own index is settled (applied or failed).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable

from triplica.errors import InternalServerError

log = logging.getLogger(__name__)

PENDING_WRITES_MAX = 100_000

Write = tuple[bytes, "bytes | None"]


class QueuedWrites:
    def __init__(self, name: str) -> None:
        self.name = name
        self.owner: Any = None
        self._pending: dict[int, tuple[asyncio.Future, list[Write], bytes]] = {}
        self._overlay: dict[bytes, tuple[int, bytes | None]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def latest(self, key: bytes) -> tuple[bool, bytes | None]:
        """(True, queued value) when a write to `key` is queued, else (False, None)."""
        queued = self._overlay.get(key)
        if queued is None:
            return False, None
        return True, queued[1]

    def future_of(self, key: bytes) -> asyncio.Future | None:
        """The future of the latest queued write to `key`, if any."""
        queued = self._overlay.get(key)
        if queued is None:
            return None
        pending = self._pending.get(queued[0])
        return pending[0] if pending is not None else None

    def own(self, owner: Any) -> None:
        """Queued writes belong to one leadership: a new owner fails the old ones."""
        if self.owner != owner:
            self.fail_all()
            self.owner = owner

    def check_capacity(self) -> None:
        if len(self._pending) >= PENDING_WRITES_MAX:
            raise InternalServerError("Internal server error")

    def add(self, index: int, writes: list[Write], payload: bytes,
            future: asyncio.Future) -> None:
        assert index not in self._pending, index
        for key, value in writes:
            self._overlay[key] = (index, value)
        self._pending[index] = (future, writes, payload)

    def fail_all(self) -> None:
        pending, self._pending = self._pending, {}
        self._overlay.clear()
        self.owner = None
        for future, _, _ in pending.values():
            if not future.done():
                future.set_exception(InternalServerError("Internal server error"))

    def settle(self, entries: Iterable[Any], ballot: Any) -> None:
        """Resolve the writers of applied log entries (ours only if ballot and data match)."""
        if not self._pending:
            return
        for entry in entries:
            pending = self._pending.pop(entry.index, None)
            if pending is None:
                continue
            future, writes, payload = pending
            for key, _ in writes:
                queued = self._overlay.get(key)
                if queued is not None and queued[0] == entry.index:
                    del self._overlay[key]
            if future.done():
                continue
            if entry.ballot == ballot and entry.data == payload:
                future.set_result(entry.index)
            else:  # another leader's value won this slot: ours was not written
                log.error("partition %s: index %s applied another value", self.name, entry.index)
                future.set_exception(InternalServerError("Internal server error"))
