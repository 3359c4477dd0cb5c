"""Messages between replicas of one group: frozen dataclasses, wire = tuples.

Phase 1:  Prepare (1a) -> Promise (1b) or Reject.
Phase 2:  Accept (2a, also the heartbeat; carries the commit index and a
          lease round number) -> Accepted (2b) or Reject.
Catch-up: InstallSnapshot (answered by Accepted).

`to_wire()` gives a tuple of plain values (ints, bytes, bools, lists), ready
for msgpack; `message_from_wire()` is its inverse.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from triplica.replication.ballot import Ballot
from triplica.replication.log import LogEntry, Snapshot


@dataclass(frozen=True, slots=True)
class Prepare:
    sender: int
    to: int
    group: int
    ballot: Ballot
    first_index: int  # candidate's commit index + 1: report accepted slots from here


@dataclass(frozen=True, slots=True)
class Promise:
    sender: int
    to: int
    group: int
    ballot: Ballot
    commit_index: int
    entries: tuple[LogEntry, ...]  # every accepted slot >= first_index, with its ballot
    snapshot: "Snapshot | None"  # set when first_index is at or below our snapshot


@dataclass(frozen=True, slots=True)
class Reject:
    sender: int
    to: int
    group: int
    ballot: Ballot  # the ballot being rejected
    promised: Ballot  # the higher ballot the sender has promised


@dataclass(frozen=True, slots=True)
class Accept:
    sender: int
    to: int
    group: int
    ballot: Ballot
    entries: tuple[LogEntry, ...]  # all stamped with `ballot`
    commit_index: int
    lease_round: int


@dataclass(frozen=True, slots=True)
class Accepted:
    sender: int
    to: int
    group: int
    ballot: Ballot
    match_index: int  # every slot <= match holds the leader's value
    lease_round: int
    voting: bool  # False while the sender repairs a damaged log
    gap: bool  # the accept started past match_index + 1: please resend


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    sender: int
    to: int
    group: int
    ballot: Ballot
    snapshot: Snapshot
    commit_index: int
    lease_round: int


Message = Prepare | Promise | Reject | Accept | Accepted | InstallSnapshot

_TYPES: dict[str, type] = {cls.__name__: cls for cls in (Prepare, Promise, Reject, Accept, Accepted, InstallSnapshot)}


def _encode(value: object) -> object:
    if isinstance(value, Ballot):
        return value.to_wire()
    if isinstance(value, (LogEntry, Snapshot)):
        return value.to_wire()
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


def message_to_wire(message: Message) -> tuple:
    return (type(message).__name__,) + tuple(_encode(getattr(message, f.name)) for f in fields(message))


def message_from_wire(value: "tuple | list") -> Message:
    cls = _TYPES[value[0]]
    kwargs = {}
    for f, raw in zip(fields(cls), value[1:]):
        if f.name in ("ballot", "promised"):
            raw = Ballot.from_wire(raw)
        elif f.name == "entries":
            raw = tuple(LogEntry.from_wire(e) for e in raw)
        elif f.name == "snapshot":
            raw = None if raw is None else Snapshot.from_wire(raw)
        kwargs[f.name] = raw
    return cls(**kwargs)
