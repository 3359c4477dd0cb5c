"""Which replicas a partition of `triplica serve` hosts, kept durably.

A group of `triplica serve` starts as replicas 1..N in AZs az-a, az-b, az-c
(directories named after the AZ, as before this file existed: a partition
without `replicas.json` is read as exactly that). Healing (group_healer.py)
adds replicas with new ids (ids are never reused: the Paxos core tells
members apart by id, and a removed member must never come back under its old
name), each in its own directory `<az>.r<id>`, and retires removed ones.

The roster is written durably BEFORE a new replica's directory is created
and BEFORE a retired one is moved aside, so after a crash every directory
the partition owns is in the roster and nothing in the roster is needed
that is gone. A roster entry that never became a member of the group (a
crash between spawning and proposing it) is harmless: the healer retires it
(group_healer.py, "orphans").
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from triplica.storage.files import read_json, write_json_durably

ROSTER_FILE = "replicas.json"
AVAILABILITY_ZONES = ("az-a", "az-b", "az-c")
REPLICAS_MAX = 16  # live replicas of one partition: 3 members, a log replica, spares


@dataclass(frozen=True)
class ReplicaEntry:
    node: int
    az: str
    directory: str  # relative to the partition directory
    log_replica: bool = False


class ReplicaRoster:
    """The durable list of a partition's replicas (see the module docstring)."""

    def __init__(self, partition_directory: str, replicas: int) -> None:
        assert 1 <= replicas <= len(AVAILABILITY_ZONES), replicas
        self._path = os.path.join(partition_directory, ROSTER_FILE)
        self.initial = tuple(range(1, replicas + 1))
        if os.path.exists(self._path):
            document = read_json(self._path)
            self.initial = tuple(document["initial"])
            self.entries = {e["node"]: ReplicaEntry(e["node"], e["az"], e["directory"], e["log_replica"])
                            for e in document["replicas"]}
            self.retired = set(document["retired"])
            self.next_id = document["next_id"]
        else:
            self.entries = {n: ReplicaEntry(n, AVAILABILITY_ZONES[n - 1], AVAILABILITY_ZONES[n - 1])
                            for n in self.initial}
            self.retired = set()
            self.next_id = replicas + 1
        assert self.next_id > max(self.entries, default=0)

    def add(self, node: int, az: str, log_replica: bool) -> ReplicaEntry:
        """Record a new replica (id never used before), durably, before anything is created."""
        assert len(self.entries) < REPLICAS_MAX, "too many replicas in one partition"
        assert node >= self.next_id and az in AVAILABILITY_ZONES, (node, self.next_id, az)
        entry = ReplicaEntry(node, az, f"{az}.r{node}", log_replica)
        self.entries[node] = entry
        self.next_id = node + 1
        self._save()
        return entry

    def retire(self, node: int) -> ReplicaEntry:
        entry = self.entries.pop(node)
        self.retired.add(node)
        self._save()
        return entry

    def _save(self) -> None:
        write_json_durably(self._path, {
            "initial": list(self.initial), "next_id": self.next_id, "retired": sorted(self.retired),
            "replicas": [{"node": e.node, "az": e.az, "directory": e.directory,
                          "log_replica": e.log_replica} for e in self.entries.values()]})
