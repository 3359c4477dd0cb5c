"""The repair bound a cluster node collects from its peers before rebuilding a replica.

`collect_bound` (engine/replica_repair.py) with scripted peers, and the
node-to-node request (node/storage_node.py over transport/mesh.py) between
two real PeerNetworks on 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest

from triplica.common.replica_ids import replica_id
from triplica.common.topology import NodeSpec
from triplica.engine.node_config import NodeConfig
from triplica.node.storage_node import StorageNode
from triplica.transport.mesh import PeerNetwork
from triplica.transport.tcp import TcpTransport
from triplica.engine.replica_repair import RepairBound, collect_bound
from triplica.replication.ballot import Ballot


def _bound(round_: int, node: int, until: int) -> RepairBound:
    return RepairBound(Ballot(round_, node), until)


def test_bound_wire_round_trip_and_malformed_answers() -> None:
    bound = _bound(7, 2, 41)
    assert RepairBound.from_wire(bound.to_wire()) == bound
    for bad in (None, [], {}, {"promised": [1, 2]}, {"promised": [1, 2], "until": -1},
                {"promised": [1], "until": 3}, {"promised": ["1", 2], "until": 3},
                {"promised": [1, 2], "until": True}, {"unavailable": "repairing"}):
        with pytest.raises(ValueError):
            RepairBound.from_wire(bad)


def test_collect_bound_keeps_answers_across_rounds_and_takes_the_max() -> None:
    script = {2: [_bound(3, 1, 50)], 3: ["unreachable", "unavailable: repairing", _bound(4, 3, 20)]}
    asked: list[int] = []

    async def ask(peer: int) -> RepairBound | str:
        asked.append(peer)
        return script[peer].pop(0)

    bound = asyncio.run(collect_bound(ask, [2, 3], "test", wait_s=5.0, retry_s=0.01))
    assert bound == _bound(4, 3, 50)
    assert asked == [2, 3, 3, 3]  # node 2 answered once and is not asked again


def test_collect_bound_gives_up_after_its_wait(caplog: pytest.LogCaptureFixture) -> None:
    async def ask(peer: int) -> RepairBound | str:
        return _bound(1, 1, 9) if peer == 2 else "unavailable: its own replica is damaged"

    async def run() -> tuple[RepairBound | None, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        bound = await collect_bound(ask, [2, 3], "partition p", wait_s=0.2, retry_s=0.05)
        return bound, loop.time() - started

    with caplog.at_level(logging.WARNING):
        bound, elapsed_s = asyncio.run(run())
    assert bound is None and elapsed_s < 1.0
    assert "partition p is damaged and stays unopened" in caplog.text
    assert "node 3: unavailable: its own replica is damaged" in caplog.text
    assert "no files were moved" in caplog.text


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Replica:
    closed = False

    def __init__(self, answer: RepairBound | str) -> None:
        self.answer = answer

    def repair_bound(self) -> RepairBound | str:
        return self.answer


def test_a_node_answers_its_peers_repair_bound_requests(tmp_path: Any) -> None:
    specs = tuple(NodeSpec(i, f"az-{c}", "127.0.0.1", _free_port(), _free_port())
                  for i, c in zip((1, 2, 3), "abc"))

    async def run() -> None:
        networks = [PeerNetwork(n.id, TcpTransport(), ("127.0.0.1", n.peer_port),
                                {m.id: ("127.0.0.1", m.peer_port) for m in specs if m.id != n.id})
                    for n in specs[:2]]
        nodes = [StorageNode(NodeConfig(node_id=n.id, az=n.az, data_dir=str(tmp_path / str(n.id)),
                                        http_port=n.http_port, peer_port=n.peer_port,
                                        nodes=specs), network)
                 for n, network in zip(specs, networks)]
        for network in networks:
            await network.start()
        try:
            nodes[1].replicas[("g/healthy", 2)] = _Replica(_bound(5, 3, 77))  # type: ignore[assignment]
            nodes[1].replicas[("g/repairing", 2)] = _Replica("its replica is repairing")  # type: ignore[assignment]
            # A second replica of a group on node 2 (one replacing another): asked by its id.
            nodes[1].replicas[("g/healthy", replica_id(2, 1))] = _Replica(_bound(6, 1, 90))  # type: ignore[assignment]
            asker = nodes[0]
            assert await asker.ask_bound(2, "g/healthy") == _bound(5, 3, 77)
            assert await asker.ask_bound(replica_id(2, 1), "g/healthy") == _bound(6, 1, 90)
            assert await asker.ask_bound(replica_id(2, 2), "g/healthy") == \
                "unavailable: it hosts no open replica of the group"
            assert await asker.ask_bound(2, "g/repairing") == \
                "unavailable: its replica is repairing"
            assert await asker.ask_bound(2, "g/other") == \
                "unavailable: it hosts no open replica of the group"
            assert (await asker.ask_bound(3, "g/healthy")).startswith("unreachable")
            with pytest.raises(Exception, match="unknown request"):
                await networks[0].request(2, {"something": "else"}, 1.0)
        finally:
            for network in networks:
                await network.close()

    asyncio.run(asyncio.wait_for(run(), 20))
