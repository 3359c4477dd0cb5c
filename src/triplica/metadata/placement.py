"""Replica placement: which nodes hold a new group's replicas.

A partition's replicas go to as many nodes in as many different AZs (three,
or one for `serve --replicas 1`), never two in one AZ. Per AZ the node is
chosen by rendezvous hashing of the partition's group key, and the AZs by
the same hash, so placement is a pure function every node computes alike;
with three nodes in three AZs every partition lives on all three.
"""
from __future__ import annotations

import hashlib

from triplica.common.topology import NodeSpec


def _score(group_key: str, name: str) -> bytes:
    return hashlib.sha256(f"{group_key}\0{name}".encode()).digest()


def placement(nodes: tuple[NodeSpec, ...], group_key: str, replicas: int = 3) -> list[int]:
    """The member node ids of a group: one node in each of `replicas` AZs."""
    by_zone: dict[str, list[NodeSpec]] = {}
    for node in nodes:
        by_zone.setdefault(node.az, []).append(node)
    zones = sorted(by_zone, key=lambda zone: _score(group_key, zone))[:replicas]
    assert len(zones) == replicas, f"need {replicas} AZs, have {sorted(by_zone)}"
    members = [max(by_zone[zone], key=lambda n: _score(group_key, str(n.id))).id
               for zone in zones]
    return sorted(members)
