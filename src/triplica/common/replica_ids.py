"""Replica ids: which replica of a group, and on which node it lives.

A group's members are replica ids, not node ids, so that a node may host a
new replica of a group it already belongs to (a stopped replica replaced
on the same node, which a three-node `triplica serve` needs: there is no
other node in that AZ). The node is kept in the id's low bits, so every
replica's address follows from its id alone, also for members a replica
only learns from its group's log:

    replica id = node id + NODE_SLOTS * generation

Generation 0 is the node's first replica of the group, whose id IS the node
id: every group placed before replica ids existed keeps its members as they
were.
"""
from __future__ import annotations

from triplica.common.topology import NODE_ID_MAX

NODE_SLOTS = NODE_ID_MAX + 1
GENERATION_MAX = 1 << 20


def node_of(replica: int) -> int:
    assert replica >= 1, replica
    return replica % NODE_SLOTS


def generation_of(replica: int) -> int:
    return replica // NODE_SLOTS


def replica_id(node: int, generation: int = 0) -> int:
    assert 1 <= node <= NODE_ID_MAX and 0 <= generation <= GENERATION_MAX, (node, generation)
    return node + NODE_SLOTS * generation
