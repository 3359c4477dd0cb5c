"""One future for several: how an answer waits for log entries without a task.

A write's answer waits for its log entries' futures; the HTTP front waits
for the answer. Both chain with done-callbacks (no task per request, which
costs more than the rest of a cached GetItem), and take the loop from the
futures themselves: `asyncio.get_running_loop()` checks the process id on
every call on Python 3.11, a system call on the write path.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Sequence


def when_all(futures: Sequence[asyncio.Future],
             result_of: Callable[[asyncio.Future], Any]) -> asyncio.Future:
    """A future that resolves with `result_of(last future done)` once every one of
    `futures` succeeded; the first failure or cancellation fails or cancels it."""
    assert futures, "nothing to wait for"
    answer: asyncio.Future = futures[0].get_loop().create_future()
    remaining = [len(futures)]

    def done(future: asyncio.Future) -> None:
        if answer.done():
            return
        if future.cancelled():
            answer.cancel()
            return
        error = future.exception()
        if error is not None:
            answer.set_exception(error)
            return
        remaining[0] -= 1
        if remaining[0] == 0:
            answer.set_result(result_of(future))

    for future in futures:
        future.add_done_callback(done)
    return answer
