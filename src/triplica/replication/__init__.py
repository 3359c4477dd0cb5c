"""Sans-I/O Multi-Paxos replication core (see replica.py)."""
from triplica.replication.ballot import Ballot
from triplica.replication.membership import Membership
from triplica.replication.log import EntryKind, HardState, LogEntry, PersistedState, Snapshot
from triplica.replication.options import ReplicaOptions
from triplica.replication.replica import Ready, Replica

__all__ = ["Ballot", "EntryKind", "HardState", "LogEntry", "Membership", "PersistedState", "Ready",
           "Replica", "ReplicaOptions", "Snapshot"]
