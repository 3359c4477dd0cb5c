"""Global secondary indexes' lifecycle, driven by the control plane (docs/GLOBAL_INDEXES.md,
"Definitions, backfill and status").

`step` looks at one table and moves each of its global indexes on as far as
the base partitions' answers allow, with no state of its own (every fact is
in the catalogue or asked of the partitions' leaders, so a new metadata
leader carries on where the last one stopped):

- CREATING: each base partition's leader is asked for its index state
  (`gsi_status`); one that does not keep the index is asked to adopt it;
  once every partition keeps it, has finished backfilling it and holds none
  of its deltas, and the index table is ACTIVE (its groups lead), the
  index is ACTIVE (Backfilling false).
- DELETING: each partition that still keeps it is asked to drop it; once
  none does, the index leaves the table's definition and its index table is
  deleted.

It returns the catalogue changes to commit (the caller commits them under
the control plane's lock) and whether every index of the table is ACTIVE.
"""
from __future__ import annotations

import asyncio
import copy
from typing import Any, Awaitable, Callable

from triplica.engine.catalogue import PartitionInfo, TableInfo
from triplica.engine.database import Database
from triplica.engine.global_index_keys import GlobalIndex, index_table_name
from triplica.engine.index_definitions import ACTIVE, CREATING, DELETING, IndexInfo
from triplica.engine.leader_asks import ADOPT_REQUEST, DROP_REQUEST, STATUS_REQUEST
from triplica.metadata.catalogue_log import Change, delete_table, put_table

# (partition, request) -> the group leader's answer, or None
AskGroup = Callable[[PartitionInfo, dict], Awaitable[Any]]


def definition_of(info: TableInfo, index: IndexInfo) -> dict[str, Any]:
    """The definition document a base partition adopts for a global index."""
    table_keys = [info.hash_key] + ([info.range_key] if info.range_key else [])
    return GlobalIndex.of(index, table_keys).to_json()


async def _partition_states(info: TableInfo, ask: AskGroup) -> list[dict | None]:
    return list(await asyncio.gather(*(ask(p, {STATUS_REQUEST: p.group})
                                       for p in info.partitions)))


async def step(db: Database, info: TableInfo, ask: AskGroup) -> tuple[list[Change], bool]:
    """One pass over a table's global indexes (module docstring)."""
    pending = [i for i in info.global_indexes if i.status != ACTIVE]
    if not pending:
        return [], True
    states = await _partition_states(info, ask)
    changed = copy.deepcopy(info)
    changes: list[Change] = []
    for index in pending:
        if index.status == CREATING:
            if await _creating(db, info, index, states, ask):
                target = changed.index(index.name)
                assert target is not None
                target.status, target.backfilling = ACTIVE, False
        else:
            assert index.status == DELETING, index.status
            if await _deleting(info, index, states, ask):
                changed.global_indexes = [i for i in changed.global_indexes
                                          if i.name != index.name]
                changes.append(delete_table(index_table_name(info.name, index.name)))
    if changed.global_indexes != info.global_indexes:
        changes.insert(0, put_table(changed))
    return changes, all(i.status == ACTIVE for i in changed.global_indexes)


async def _creating(db: Database, info: TableInfo, index: IndexInfo,
                    states: list[dict | None], ask: AskGroup) -> bool:
    done = True
    for partition, state in zip(info.partitions, states):
        if not isinstance(state, dict) or not state.get("ok"):
            done = False
            continue
        if index.name not in state.get("kept", []):
            await ask(partition, {ADOPT_REQUEST: partition.group,
                                  "definition": definition_of(info, index)})
            done = False
        elif index.name in state.get("backfilling", []) or \
                state.get("waiting", {}).get(index.name, 0):
            done = False
    index_table = db.tables.get(index_table_name(info.name, index.name))
    return done and index_table is not None and index_table.info.status == ACTIVE


async def _deleting(info: TableInfo, index: IndexInfo, states: list[dict | None],
                    ask: AskGroup) -> bool:
    done = True
    for partition, state in zip(info.partitions, states):
        if not isinstance(state, dict) or not state.get("ok"):
            done = False
        elif index.name in state.get("kept", []):
            await ask(partition, {DROP_REQUEST: partition.group, "index": index.name})
            done = False
    return done
