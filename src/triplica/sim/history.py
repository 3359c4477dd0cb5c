"""Client-observed operation histories, the input of the history checkers.

A history is what clients saw, not what the servers did: each event is one
operation with the virtual time it was invoked and the time its answer came
back (or None when no answer ever came). The linearizability checker
(`sim/linearizability.py`) and the lost-write check read these events; the
simulator's clients and the chaos test's clients write them.

Semantics of the fields:
- `op` is 'put', 'cas' or 'get' on one key (a register per key).
- `value` is what a put or cas writes; `expected` is the cas comparand
  (None = the key must be absent); `result` is what a get returned
  (None = absent).
- `complete_ms is None`: no answer; the op may or may not have taken effect,
  at any time after `invoke_ms`.
- `ok is False`: the op definitely had no effect (a cas whose condition
  failed, or a put/get failure known to have changed nothing).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HistoryEvent:
    client: int
    op: str  # 'put' | 'cas' | 'get'
    key: str
    value: Any
    expected: Any
    invoke_ms: int
    complete_ms: int | None
    ok: bool | None
    result: Any
