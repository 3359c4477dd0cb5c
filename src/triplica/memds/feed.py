"""How a MemDS server learns map changes: it polls the storage nodes in epoch order.

Every storage node keeps the catalogue log, so any of them can answer
`{"map_changes_after": E}` with `{"changes": [change, ...]}`: the map changes
with epochs above E, in increasing epoch order, possibly none. `NodeFeed`
asks the nodes in turn, sticking to the last one that answered, and takes
the first valid answer. `run_feed` applies what it fetches to a MapStore
and advances the store's poll cursor (`feed_epoch`), so the store is always
"the catalogue log up to feed_epoch" plus whatever was pushed ahead.

Pushes (the metadata leader sending `{"map_changes": [...]}` at once) are
handled by the server (server.py) with `apply_pushed`; polling is the
backstop that repairs a lost push, and because the store keeps the newest
version per table, a push and a poll may deliver the same change in any
order.

Bounds: CHANGES_PER_FETCH_MAX changes are applied per fetch (the rest come
on the next one, fetched at once), every call has FETCH_DEADLINE_S, the poll
interval is at least POLL_S_MIN.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from triplica.memds.map_store import ChangeError, MapStore, StoreFullError, is_int
from triplica.transport.base import TransportError
from triplica.transport.base import Address, Client, Transport
from triplica.transport.tcp import TcpTransport

log = logging.getLogger(__name__)

CHANGES_PER_FETCH_MAX = 1000
CHANGES_PER_PUSH_MAX = 1000
FETCH_DEADLINE_S = 1.0
POLL_S_MIN = 0.05
NODES_MAX = 1000


class FeedUnavailableError(TransportError):
    """No storage node gave a valid answer to a fetch."""


class FeedReplyError(TransportError):
    """A node's answer is not a valid change list (treated like a node failure)."""


class NodeFeed:
    """Fetches map changes from whichever storage node answers first."""

    def __init__(self, addresses: list[Address], *, transport: Transport | None = None,
                 deadline_s: float = FETCH_DEADLINE_S) -> None:
        assert 1 <= len(addresses) <= NODES_MAX, len(addresses)
        assert deadline_s > 0
        self._addresses = [(str(host), int(port)) for host, port in addresses]
        self._transport = transport if transport is not None else TcpTransport()
        self._clients: dict[int, Client] = {}
        self._deadline_s = deadline_s
        self._preferred = 0
        self.fetches = 0
        self.node_failures = 0

    async def fetch(self, after_epoch: int) -> list[dict[str, Any]]:
        """Changes with epochs above `after_epoch`, in order, at most CHANGES_PER_FETCH_MAX."""
        assert after_epoch >= 0
        self.fetches += 1
        errors = []
        for step in range(len(self._addresses)):
            index = (self._preferred + step) % len(self._addresses)
            try:
                reply = await self._client(index).call({"map_changes_after": after_epoch},
                                                       self._deadline_s)
                changes = check_reply(reply, after_epoch)
            except TransportError as error:
                self.node_failures += 1
                errors.append(f"{self._addresses[index]}: {error}")
                continue
            self._preferred = index
            return changes
        raise FeedUnavailableError("no storage node answered map_changes_after: "
                                   + "; ".join(errors)[:2000])

    def _client(self, index: int) -> Client:
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._transport.client(self._addresses[index])
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(client.close() for client in clients))


def check_reply(reply: Any, after_epoch: int) -> list[dict[str, Any]]:
    """The changes of a valid reply (a prefix, if it is over the bound); FeedReplyError if not."""
    if not isinstance(reply, dict):
        raise FeedReplyError(f"map_changes_after reply is not a map: {reply!r:.80}")
    changes = reply.get("changes")
    if not isinstance(changes, list):
        raise FeedReplyError(f"map_changes_after reply has no change list: {reply!r:.80}")
    changes = changes[:CHANGES_PER_FETCH_MAX]
    previous = after_epoch
    for change in changes:
        epoch = change.get("epoch") if isinstance(change, dict) else None
        if not is_int(epoch) or epoch <= previous:
            raise FeedReplyError(f"map change epochs must rise above {previous}, "
                                 f"got {epoch!r:.40}")
        previous = epoch
    return changes


def apply_fetched(store: MapStore, changes: list[dict[str, Any]]) -> int:
    """Apply polled changes in order, advancing the poll cursor; return how many applied.

    A change that can't be applied (malformed, store full) stops the batch
    with its error and the cursor stays before it: the store remains exactly
    a prefix of the log, and the next poll retries from there.
    """
    applied = 0
    for change in changes:
        applied += store.apply(change)
        store.mark_fed(change["epoch"])
    return applied


def apply_pushed(store: MapStore, changes: Any) -> int:
    """Apply pushed changes (any order, any repetition); the poll cursor stays put."""
    if not isinstance(changes, list) or len(changes) > CHANGES_PER_PUSH_MAX:
        raise ChangeError(f"map_changes must be a list of at most {CHANGES_PER_PUSH_MAX}")
    return sum(store.apply(change) for change in changes)


async def run_feed(store: MapStore, feed: NodeFeed, poll_s: float,
                   stop: asyncio.Event | None = None) -> None:
    """Poll `feed` into `store` until `stop` is set (or the task is cancelled).

    A full batch is followed by another fetch at once (catching up after a
    restart); otherwise the loop waits `poll_s`. Failures are logged and
    retried after `poll_s`: MemDS keeps serving what it has meanwhile.
    """
    assert poll_s >= POLL_S_MIN, poll_s
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            changes = await feed.fetch(store.feed_epoch)
            apply_fetched(store, changes)
        except (TransportError, ChangeError, StoreFullError) as error:
            log.error("map feed stuck after epoch %d: %s", store.feed_epoch, error)
            changes = []
        if len(changes) >= CHANGES_PER_FETCH_MAX:
            await asyncio.sleep(0)
            continue
        try:
            await asyncio.wait_for(stop.wait(), poll_s)
        except TimeoutError:
            pass
