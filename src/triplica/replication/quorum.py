"""Quorum arithmetic, kept apart from the protocol (etcd-raft's `quorum` idea).

All functions are pure. A "configuration set" is the list of memberships whose
majorities must ALL be reached (one normally; two while a membership change
is pending, see replica.py).
"""
from __future__ import annotations

from typing import Iterable, Mapping

from triplica.replication.membership import Membership


def majority(size: int) -> int:
    assert size >= 1
    return size // 2 + 1


def has_quorum(voters: "set[int] | frozenset[int]", configs: Iterable[Membership]) -> bool:
    """True when `voters` holds a majority of every configuration."""
    for config in configs:
        if len(voters & config.members) < majority(len(config.members)):
            return False
    return True


def quorum_value(values: Mapping[int, int], configs: Iterable[Membership], missing: int = 0) -> int:
    """The largest v such that a majority of every config has values >= v.

    Used for the commit index (values = match indexes) and for the lease
    start (values = send times of the latest acknowledged round). Members
    without an entry count as `missing`.
    """
    result: "int | None" = None
    for config in configs:
        ranked = sorted((values.get(node, missing) for node in config.members), reverse=True)
        value = ranked[majority(len(ranked)) - 1]
        result = value if result is None else min(result, value)
    assert result is not None, "at least one configuration"
    return result
