"""What one MemDS server holds: every table's compact map, plus leader hints.

Pure (no I/O, no clock): the server feeds it changes and asks it questions.

A change is `{"epoch": E, "table": name, "map": TableMap doc | None}` (None:
the table was deleted), E being the metadata log index that produced it
(metadata/catalogue_log.py `map_change_of`). Changes reach a server two
ways, polled in log order from the storage nodes and pushed at once by the
metadata leader, so they may arrive late, twice or out of order. The store
therefore keeps, per table, the version with the highest epoch (a deleted
table keeps a tombstone with its deletion epoch): a change whose epoch is
not above its table's current epoch is ignored and counted, never applied.
Whatever the delivery order, the end state equals applying the distinct
changes in epoch order.

Two epochs are tracked:
- `epoch`: the highest change epoch applied (what `stats` reports);
- `feed_epoch`: the poll cursor, "every change up to here has been seen".
  Only the in-order feed advances it; a push may run ahead of it without
  making the poll skip the changes in between.

Tombstones are bounded (TOMBSTONES_MAX): past it the oldest is forgotten and
`forgotten_epoch` rises to its epoch; a change for a table the store does not
know, at or below that epoch, is then ignored (it is older than a deletion the
store has forgotten). This is exact while the in-order feed is no more than
TOMBSTONES_MAX deletions behind the pushes.

Leader hints: per replication group, the node that last claimed leadership
with the highest term (a Paxos ballot round); a hint for a node that is not
among the group's members in the current map is not returned.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from triplica.model.partition_map import HASH_SPACE_END, Route, TableMap

TABLES_MAX = 10_000
TOMBSTONES_MAX = 10_000
LEADER_HINTS_MAX = 200_000
TABLE_NAME_BYTES_MAX = 255


class ChangeError(ValueError):
    """A change or request is malformed (a bug on the sending side)."""


class StoreFullError(Exception):
    """Applying the change would hold more than TABLES_MAX tables."""


@dataclass(frozen=True)
class Answer:
    """A lookup's result: the route, and the group's leader if a hint is known."""

    route: Route
    leader: int | None


@dataclass(frozen=True)
class _LeaderHint:
    node_id: int
    term: int


class MapStore:
    """Every table's map at its newest epoch, and per-group leader hints."""

    def __init__(self, *, tables_max: int = TABLES_MAX,
                 tombstones_max: int = TOMBSTONES_MAX,
                 leader_hints_max: int = LEADER_HINTS_MAX) -> None:
        assert tables_max >= 1 and tombstones_max >= 1 and leader_hints_max >= 1
        self._tables_max = tables_max
        self._tombstones_max = tombstones_max
        self._leader_hints_max = leader_hints_max
        self._tables: dict[str, TableMap] = {}
        self._table_epochs: dict[str, int] = {}   # change epoch of each live table
        self._tombstones: dict[str, int] = {}     # deleted table -> deletion epoch
        self._leaders: dict[str, _LeaderHint] = {}
        self.epoch = 0
        self.feed_epoch = 0
        self.forgotten_epoch = 0
        self.applied = 0
        self.ignored = 0
        self.leader_hints_refused = 0

    # -- changes ---------------------------------------------------------

    def apply(self, change: Any) -> bool:
        """Apply one change if it is newer than its table's version; say whether it was."""
        epoch, table, table_map = parse_change(change)
        if epoch <= self._known_epoch(table):
            self.ignored += 1
            return False
        if table_map is None:
            self._delete(table, epoch)
        else:
            self._put(table, table_map, epoch)
        self.epoch = max(self.epoch, epoch)
        self.applied += 1
        self._check()
        return True

    def mark_fed(self, epoch: int) -> None:
        """The feed has delivered (and we applied or ignored) every change up to `epoch`."""
        assert self.feed_epoch <= epoch <= self.epoch, (self.feed_epoch, epoch, self.epoch)
        self.feed_epoch = epoch

    def _known_epoch(self, table: str) -> int:
        if table in self._table_epochs:
            return self._table_epochs[table]
        if table in self._tombstones:
            return self._tombstones[table]
        return self.forgotten_epoch

    def _put(self, table: str, table_map: TableMap, epoch: int) -> None:
        if table not in self._tables and len(self._tables) >= self._tables_max:
            raise StoreFullError(f"MemDS holds {len(self._tables)} tables, the most it may")
        self._tombstones.pop(table, None)
        self._tables[table] = table_map
        self._table_epochs[table] = epoch

    def _delete(self, table: str, epoch: int) -> None:
        self._tables.pop(table, None)
        self._table_epochs.pop(table, None)
        self._tombstones[table] = epoch
        if len(self._tombstones) > self._tombstones_max:
            oldest = min(self._tombstones, key=self._tombstones.__getitem__)
            self.forgotten_epoch = max(self.forgotten_epoch, self._tombstones.pop(oldest))

    def _check(self) -> None:
        assert len(self._tables) <= self._tables_max
        assert len(self._tombstones) <= self._tombstones_max
        assert self._tables.keys() == self._table_epochs.keys()
        assert self.forgotten_epoch <= self.epoch and self.feed_epoch <= self.epoch

    # -- questions -------------------------------------------------------

    def table(self, table: str) -> TableMap | None:
        return self._tables.get(table)

    def tables(self) -> list[str]:
        return list(self._tables)

    @property
    def table_count(self) -> int:
        return len(self._tables)

    def lookup(self, table: str, key_hash: int) -> Answer | None:
        """The partition holding `key_hash` and its leader hint; None if no such table."""
        assert 0 <= key_hash < HASH_SPACE_END, key_hash
        table_map = self._tables.get(table)
        if table_map is None:
            return None
        route = table_map.route_for_hash(key_hash)
        assert route.hash_start <= key_hash < route.hash_end
        return Answer(route, self._leader_in(route.group, route.members))

    def leaders_of(self, table: str) -> dict[str, int]:
        """Leader hints for the groups of `table` (only those naming a current member)."""
        table_map = self._tables.get(table)
        if table_map is None:
            return {}
        hints = {}
        for group, members in zip(table_map.groups, table_map.members):
            leader = self._leader_in(group, members)
            if leader is not None:
                hints[group] = leader
        return hints

    def _leader_in(self, group: str, members: tuple[int, ...]) -> int | None:
        hint = self._leaders.get(group)
        if hint is None or hint.node_id not in members:
            return None
        return hint.node_id

    # -- leader hints ----------------------------------------------------

    def note_leader(self, group: str, node_id: int, term: int) -> bool:
        """Keep the hint if its term is above the group's current one; say whether kept."""
        hint = self._leaders.get(group)
        if hint is not None and term <= hint.term:
            return False
        if hint is None and len(self._leaders) >= self._leader_hints_max:
            self._prune_leader_hints()
            if len(self._leaders) >= self._leader_hints_max:
                self.leader_hints_refused += 1
                return False
        self._leaders[group] = _LeaderHint(node_id, term)
        assert len(self._leaders) <= self._leader_hints_max
        return True

    def _prune_leader_hints(self) -> None:
        """Drop hints for groups no current map mentions (split away, table deleted)."""
        live = {group for table_map in self._tables.values() for group in table_map.groups}
        for group in [g for g in self._leaders if g not in live]:
            del self._leaders[group]


def parse_change(change: Any) -> tuple[int, str, TableMap | None]:
    """Check a change's shape; ChangeError if it is not one (it came over the network)."""
    if not isinstance(change, dict):
        raise ChangeError(f"a map change must be a map, not {type(change).__name__}")
    epoch, table, doc = change.get("epoch"), change.get("table"), change.get("map")
    if not is_int(epoch) or epoch < 1:
        raise ChangeError(f"a map change needs an integer epoch >= 1, not {epoch!r:.40}")
    check_table_name(table)
    if doc is None:
        return epoch, table, None
    try:
        table_map = TableMap.from_doc(doc)
    except (AssertionError, KeyError, TypeError, ValueError) as error:
        raise ChangeError(f"map change {epoch} for {table!r}: bad map: {error!r:.200}") from None
    if table_map.name != table:
        raise ChangeError(f"map change {epoch} names table {table!r} but carries "
                          f"the map of {table_map.name!r}")
    return epoch, table, table_map


def check_table_name(table: Any) -> None:
    if not isinstance(table, str) or not 1 <= len(table.encode()) <= TABLE_NAME_BYTES_MAX:
        raise ChangeError(f"a table name must be a string of 1 to {TABLE_NAME_BYTES_MAX} "
                          f"bytes, not {table!r:.40}")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
