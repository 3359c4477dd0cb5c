"""A MemDS server: the partition map in memory, answering routers over TCP.

`MemdsService` decides (no sockets: a MapStore and counters); `serve` wires
it to a TcpServer and the node feed; `main` is the process
(`python -m triplica.memds.server --config FILE`, uvloop, SIGTERM/SIGINT
stop it cleanly).

Requests (transport CALL bodies) and replies:
- `{"lookup": [table, key_hash]}` -> `{"epoch", "index", "start", "end",
  "group", "members", "leader"}` or `{"missing": true}`; `end` is None for
  the last range (2**64 does not fit msgpack's integers), `leader` is None
  without a hint;
- `{"table": name}` -> `{"map": TableMap doc | None, "leaders": {group: node}}`;
- `{"map_changes": [change, ...]}` -> `{"epoch": E}` (a push, see feed.py);
- `{"leader": [group, node_id, term]}` -> `{}`;
- `{"stats": true}` -> `{"lookups", "tables", "epoch", ...}`.

`lookups` counts lookup and table CALLs served: with routers sending every
request to MemDS (router/map_cache.py), it grows with traffic and a
benchmark reads it to show that a router cache wipe does not change it.

Config FILE (JSON): `{"listen_host": "127.0.0.1", "port": N,
"nodes": [{"host": ..., "peer_port": ...}, ...], "poll_s": 0.2}`.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from dataclasses import dataclass
from typing import Any

from triplica.memds.feed import POLL_S_MIN, NodeFeed, apply_pushed, run_feed
from triplica.memds.map_store import (
    ChangeError,
    MapStore,
    check_table_name,
    is_int,
)
from triplica.model.partition_map import HASH_SPACE_END
from triplica.transport.tcp import TcpServer

log = logging.getLogger(__name__)

POLL_S_DEFAULT = 0.2
GROUP_KEY_CHARS_MAX = 1024


class MemdsService:
    """Answers MemDS requests from a MapStore; the TcpServer's handler is `handle`."""

    def __init__(self, store: MapStore | None = None) -> None:
        self.store = store if store is not None else MapStore()
        self.lookups = 0
        self.pushes = 0
        self._handlers = {
            "lookup": self._lookup,
            "table": self._table,
            "map_changes": self._map_changes,
            "leader": self._leader,
            "stats": self._stats,
        }

    async def handle(self, message: Any) -> dict[str, Any]:
        """The transport handler (async only to fit the Handler signature)."""
        return self.answer(message)

    def answer(self, message: Any) -> dict[str, Any]:
        """One reply per request; ChangeError (sent back as a RemoteError) if malformed."""
        if not isinstance(message, dict) or len(message) != 1:
            raise ChangeError(f"a MemDS request is a one-key map, not {message!r:.80}")
        (kind, body), = message.items()
        handler = self._handlers.get(kind)
        if handler is None:
            raise ChangeError(f"unknown MemDS request {kind!r:.40}")
        return handler(body)

    def _lookup(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, list) or len(body) != 2:
            raise ChangeError("lookup takes [table, key_hash]")
        table, key_hash = body
        check_table_name(table)
        if not is_int(key_hash) or not 0 <= key_hash < HASH_SPACE_END:
            raise ChangeError(f"key_hash must be an integer in [0, 2**64), not {key_hash!r:.40}")
        self.lookups += 1
        answer = self.store.lookup(table, key_hash)
        if answer is None:
            return {"missing": True}
        route = answer.route
        return {"epoch": route.epoch, "index": route.index, "start": route.hash_start,
                "end": route.hash_end if route.hash_end < HASH_SPACE_END else None,
                "group": route.group, "members": list(route.members),
                "leader": answer.leader}

    def _table(self, body: Any) -> dict[str, Any]:
        check_table_name(body)
        self.lookups += 1
        table_map = self.store.table(body)
        return {"map": table_map.to_doc() if table_map is not None else None,
                "leaders": self.store.leaders_of(body)}

    def _map_changes(self, body: Any) -> dict[str, Any]:
        self.pushes += 1
        apply_pushed(self.store, body)
        return {"epoch": self.store.epoch}

    def _leader(self, body: Any) -> dict[str, Any]:
        if (not isinstance(body, list) or len(body) != 3 or not isinstance(body[0], str)
                or len(body[0]) > GROUP_KEY_CHARS_MAX
                or not is_int(body[1]) or not is_int(body[2])):
            raise ChangeError("leader takes [group, node_id, term]")
        self.store.note_leader(body[0], body[1], body[2])
        return {}

    def _stats(self, body: Any) -> dict[str, Any]:
        store = self.store
        return {"lookups": self.lookups, "tables": store.table_count, "epoch": store.epoch,
                "feed_epoch": store.feed_epoch, "applied": store.applied,
                "ignored": store.ignored, "pushes": self.pushes}


@dataclass(frozen=True)
class MemdsConfig:
    listen_host: str
    port: int
    nodes: tuple[tuple[str, int], ...]
    poll_s: float = POLL_S_DEFAULT


def load_config(path: str) -> MemdsConfig:
    """Read and check the JSON config; ValueError names what is wrong."""
    with open(path, encoding="utf-8") as file:
        doc = json.load(file)
    try:
        nodes = tuple((str(n["host"]), int(n["peer_port"])) for n in doc["nodes"])
        config = MemdsConfig(listen_host=str(doc.get("listen_host", "127.0.0.1")),
                             port=int(doc["port"]), nodes=nodes,
                             poll_s=float(doc.get("poll_s", POLL_S_DEFAULT)))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"bad MemDS config {path}: {error!r}") from None
    if not config.nodes:
        raise ValueError(f"bad MemDS config {path}: no nodes to feed from")
    if config.poll_s < POLL_S_MIN:
        raise ValueError(f"bad MemDS config {path}: poll_s must be >= {POLL_S_MIN}")
    return config


async def serve(config: MemdsConfig, stop: asyncio.Event) -> None:
    """Serve and poll the feed until `stop` is set, then close everything."""
    service = MemdsService()
    server = TcpServer(config.listen_host, config.port, service.handle)
    feed = NodeFeed(list(config.nodes))
    await server.start()
    host, port = server.address
    print(f"memds listening on {host}:{port}", flush=True)
    feeding = asyncio.create_task(run_feed(service.store, feed, config.poll_s, stop))
    try:
        await stop.wait()
    finally:
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
        await server.close()
        await feed.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triplica-memds")
    parser.add_argument("--config", required=True)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)

    import uvloop

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(config, stop)

    uvloop.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
