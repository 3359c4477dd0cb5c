"""Client history events, the input of the linearizability checker.

One event per client operation: `invoke_ms` when the client started it,
`complete_ms` when it got a definite answer, or None when it gave up (the
operation may or may not have taken effect, at any time after invoke_ms).
Fields:
- op: 'put' | 'cas' | 'get'
- value: the value written (put, cas), None for get
- expected: the value a cas compares against (None = "key absent"), else None
- ok: True/False for a completed cas (swapped or not), True for put and get,
  None when complete_ms is None
- result: the value read (get), the previous value (cas), None for put
Times are virtual (simulated real-time) milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HistoryEvent:
    client: int
    op: str
    key: str
    value: Any
    expected: Any
    invoke_ms: int
    complete_ms: "int | None"
    ok: "bool | None"
    result: Any
