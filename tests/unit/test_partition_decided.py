"""A proposer that loses its leadership learns its entry's fate (NodePartition.decided).

Three in-process replicas (group_harness.py) on a network that can cut one
node off. The leader proposes while cut off, so its write fails with the
usual InternalServerError (outcome unknown); the other two elect a leader
and go on; once the network heals, the old leader applies the decided slot
and can tell whether its entry was committed. Both fates are checked: the
entry reached no one (lost), or the entry reached both peers but their
answers did not come back (committed by the next leader's recovery).
This is what metadata/metadata_replica.py's `append` relies on to answer a
table operation exactly once.
"""
from __future__ import annotations

import asyncio

import pytest

from tests.unit.group_harness import LocalGroup, image, run, until
from triplica.errors import InternalServerError
from triplica.replication.options import ReplicaOptions
from triplica.transport.inprocess import InProcessClient, InProcessNetwork

FAST = ReplicaOptions(heartbeat_interval_ms=50, election_timeout_base_ms=300,
                      election_timeout_jitter_ms=150)
FATE_S = 10.0


class CuttableNetwork(InProcessNetwork):
    """Drops replication messages by (kind, sender, to) while `drop` says so."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = lambda kind, sender, to: False

    def client(self, address):
        return _CuttableClient(self, address)


class _CuttableClient(InProcessClient):
    def try_local(self, message):
        return False  # every message as wires through `send`, where the cut applies

    async def send(self, message, deadline_s=1.0):
        group, replica, wires = message
        kept = [w for w in wires if not self._network.drop(w[0], w[1], w[2])]
        if kept:
            await super().send([group, replica, kept], deadline_s)


async def _fate(tmp_path, drop_while_cut) -> tuple[bool, bytes | None]:
    """Propose on a leader cut off by `drop_while_cut`; heal; (decided, value) there."""
    network = CuttableNetwork()
    group = await LocalGroup(str(tmp_path), options=FAST, network=network).start()
    try:
        old = group.leading()
        old_id = old.driver.node_id
        await group.propose([(b"before", image("0"))])
        network.drop = lambda kind, sender, to: drop_while_cut(kind, sender, to, old_id)
        index, future = old.propose_indexed([(b"in-flight", image("x"))])
        # Cut off entirely after its Accept went out, so the others elect a leader.
        await asyncio.sleep(0.05)
        network.drop = lambda kind, sender, to: old_id in (sender, to)
        await until(lambda: any(r is not None and r is not old and r.serving()
                                for r in group.replicas.values()), FATE_S)
        new = next(r for r in group.replicas.values() if r is not old and r.serving())
        await new.propose([(b"after", image("1"))])
        network.drop = lambda kind, sender, to: False
        with pytest.raises(InternalServerError):
            await asyncio.wait_for(future, FATE_S)
        decided = await old.decided(index, FATE_S)
        value = old.read_applied(b"in-flight")
        assert old.read_applied(b"after") == image("1")
        return decided, value
    finally:
        await group.close()


def test_an_entry_no_peer_accepted_is_known_lost(tmp_path):
    def nothing_leaves(kind, sender, to, old_id):
        return old_id in (sender, to)
    decided, value = None, None

    async def scenario() -> None:
        nonlocal decided, value
        decided, value = await _fate(tmp_path, nothing_leaves)
    run(scenario)
    assert decided and value is None


def test_an_entry_both_peers_accepted_is_known_committed(tmp_path):
    def answers_lost(kind, sender, to, old_id):
        return to == old_id  # its Accepts arrive; nothing comes back
    decided, value = None, None

    async def scenario() -> None:
        nonlocal decided, value
        decided, value = await _fate(tmp_path, answers_lost)
    run(scenario)
    assert decided and value == image("x")
