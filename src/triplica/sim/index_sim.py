"""One seed -> one run of global secondary index propagation under faults, then the checks.

issue 12's "Verification": index propagation with leader changes, crashes,
message loss, base and index splits and backfill in flight, as a seed
sweep. Everything is drawn from one random.Random(seed) and runs on the
virtual clock of sim/events.py, so a seed replays exactly (its trace hash
is the proof).

The world (sim/index_world.py): a table starting as one base partition,
1-3 global indexes (sim/index_workload.py), each an index table of 1-2
partitions; every partition one real PartitionStore (base stores opened
with `indexer_of`, so their outboxes are production's, computed at apply).
What runs on it, all at random times:
- writes: puts, updates and deletes, one to three items per log entry,
  applied by the base partition whose range holds them (refused while it
  has no leader);
- a control plane that creates indexes during the writes (each base
  partition's leader adopts a new index at its own moment, so backfills
  run while writes go on) and may delete one (DELETING, a drop entry on
  every base partition, then the index and its table are gone);
- a propagator per base partition leader (sim/index_propagator.py), whose
  batches travel over a network with delay, loss, duplication,
  reordering and a few very late messages; index partitions apply a batch
  as one cursor entry and answer "ok", "not_leader" (no leader) or "moved"
  (split since, as a real node answers);
- leader changes of base and index partitions (a crash: no leader for a
  while, the propagator's memory is lost, its messages still land);
- base and index partition splits (copy, cut, new ids, the log continues),
  with batches in flight.
At the end every fault heals, the control plane and propagation drain
(bounded virtual time), in-flight messages land, and sim/index_checks.py
checks the indexes against the table and the outboxes.

Not modelled: the replication inside a group, the index status (ACTIVE),
routers' stale maps (the propagator routes by the current map; a stale one
only adds "moved" answers, which splits already give), throttling.
"""
from __future__ import annotations

import random
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Hashable

from triplica.common.checksum import crc32c
from triplica.engine.global_index_keys import GlobalIndex, GlobalIndexer, indexer_of
from triplica.engine.index_batches import adopt_entry, drop_entry, trim_entry
from triplica.engine.log_entries import Write, decode_entry
from triplica.sim.events import EventQueue
from triplica.sim.index_checks import check_indexes, check_outboxes, check_placement
from triplica.sim.index_propagator import (ANSWER_MOVED, ANSWER_NOT_LEADER, ANSWER_OK, IndexFaults,
                                           Mute, PropagationSettings, SimPropagator)
from triplica.sim.index_workload import (Table, draw_indexes, draw_table, image_of, new_item,
                                         updated_item)
from triplica.sim.index_world import HASH_SPACE, Group, PartitionMap, Stores, key_hash, split_point
from triplica.sim.network import NetworkSettings, SimNetwork
from triplica.sim.runner import SeedResult
from triplica.storage.index_outbox import FENCED, SEQUENCE_BYTES, DeltaSource

CONTROL_PERIOD_MS = 50
SPLIT_RETRY_MS = 100
SPLIT_AIM_MS, SPLIT_AIM_TRIES = 5, 40
DRAIN_MS_MAX = 60_000
DRAIN_CHECK_MS = 100
LATE_MS_MIN, LATE_MS_MAX = 300, 4000
DOWN_MS_MIN, DOWN_MS_MAX = 10, 600
HOT_KEYS = 6


@dataclass
class CatalogueIndex:
    index: GlobalIndex
    deleting: bool = False


class _Muted:
    """An indexer whose backfill sees nothing while the Mute is on (a fault's)."""

    def __init__(self, real: GlobalIndexer, mute: Mute) -> None:
        self._real, self._mute = real, mute

    def deltas(self, key: bytes, old: bytes | None, new: bytes | None) -> list:
        return self._real.deltas(key, old, new)

    def entries(self, key: bytes, image: bytes) -> list:
        return [] if self._mute.on else self._real.entries(key, image)


class IndexSim:
    """The world, its clock and network, and the actors on it (module docstring)."""

    def __init__(self, seed: int, root: str, faults: IndexFaults, trace: bool,
                 fence_lineage: bool = True) -> None:
        self.rng = rng = random.Random(seed)
        self.queue = EventQueue()
        self.faults = faults
        self.mute = Mute()
        self.stats: Counter[str] = Counter()
        self.trace_hash = 0
        self.trace_enabled = trace
        self.trace_lines: list[str] = []
        self.table: Table = draw_table(rng)
        self.planned: list[GlobalIndex] = draw_indexes(rng, self.table)
        self.network = SimNetwork(rng, NetworkSettings(
            delay_ms_min=rng.randint(1, 3), delay_ms_mean_extra=rng.choice([1.0, 3.0, 10.0]),
            loss_rate=rng.choice([0.0, 0.01, 0.05, 0.1]),
            duplicate_rate=rng.choice([0.0, 0.02, 0.1])))
        self.late_rate = rng.choice([0.0, 0.02, 0.05])
        self.hot_rate = rng.choice([0.0, 0.3, 0.6])
        self.settings = PropagationSettings(read_max=rng.choice([3, 8, 30, 4000]),
                                            backfill_chunk=rng.choice([2, 5, 20]),
                                            backfill_outbox_max=rng.choice([4, 30, 2000]),
                                            fence_lineage=fence_lineage)
        self.stores = Stores(root, self._global_of)
        self.groups: dict[str, Group] = {}
        self.bases = PartitionMap([self._new_group("b1", True)])
        self.catalogue: dict[str, CatalogueIndex] = {}
        self.index_maps: dict[str, PartitionMap] = {}
        self.propagators: dict[str, SimPropagator] = {}
        self.in_flight = 0
        self.stalls: dict[str, tuple[int, int]] = {}   # gid -> (since, until)
        self.sending: Counter[str] = Counter()    # batches in flight from a base partition
        self.receiving: Counter[str] = Counter()  # batches in flight to an index partition
        self.faults_enabled = True
        self._ids = 1

    # -- the Host protocol of sim/index_propagator.py ------------------------

    @property
    def now_ms(self) -> int:
        return self.queue.now_ms

    def at(self, delay_ms: int, action: Callable[[], None]) -> None:
        self.queue.at(delay_ms, action)

    def trace(self, *fields: object) -> None:
        line = " ".join(str(f) for f in (self.now_ms,) + fields)
        self.trace_hash = crc32c(line.encode(), self.trace_hash)
        if self.trace_enabled:
            self.trace_lines.append(line)

    def route(self, name: str, index_key: bytes) -> tuple[Hashable, str] | None:
        found = self.catalogue.get(name)
        if found is None or found.deleting:
            return None  # not kept any more: its deltas go (production's _route)
        return self.index_maps[name].find(key_hash(index_key)).gid, name

    def lineage(self, group: Group) -> list[str]:
        """Every split ancestor of a partition, its parent first."""
        found = []
        while group.split_from:
            found.append(group.split_from)
            group = self.groups[group.split_from]
        return found

    def send_batch(self, destination: Hashable, source: str, high: bytes, entry: bytes,
                   on_answer: Callable[[str], None]) -> None:
        sent_ms = self.now_ms

        def arrive() -> None:
            held = self._held(sent_ms, source, str(destination))
            if held:
                self.at(held, arrive)
                return
            self.in_flight -= 1
            self.sending[source] -= 1
            self.receiving[str(destination)] -= 1
            answer = self._receive(str(destination), source, high, entry)
            for delay in self._delays():
                self.in_flight += 1
                self.at(delay, lambda: self._answer(on_answer, answer))
        for delay in self._delays():
            self.in_flight += 1
            self.sending[source] += 1
            self.receiving[str(destination)] += 1
            self.at(delay, arrive)

    # -- the network and the index partitions' side ---------------------------

    def _delays(self) -> list[int]:
        delays = self.network.delays_ms(0, 1)
        if not delays:
            self.stats["lost"] += 1
        elif self.late_rate and self.rng.random() < self.late_rate:
            delays[0] += self.rng.randint(LATE_MS_MIN, LATE_MS_MAX)
            self.stats["late"] += 1
        return delays

    def stall(self, gid: str) -> None:
        """Hold the messages a partition has in flight now (to it or from it) for a while:
        a leader that crashed or split with batches queued on a slow link."""
        if self.faults_enabled:
            until = self.now_ms + self.rng.randint(LATE_MS_MIN, LATE_MS_MAX)
            self.stalls[gid] = (self.now_ms, until)
            self.trace("stall", gid, until)

    def _held(self, sent_ms: int, source: str, destination: str) -> int:
        """How much longer a message stays held by a stall (0: it lands now)."""
        for gid in (source, destination):
            stall = self.stalls.get(gid)
            if stall and sent_ms <= stall[0] and self.now_ms < stall[1]:
                return stall[1] - self.now_ms + self.rng.randint(0, 50)
        return 0

    def _answer(self, on_answer: Callable[[str], None], answer: str) -> None:
        self.in_flight -= 1
        on_answer(answer)

    def _receive(self, gid: str, source: str, high: bytes, entry: bytes) -> str:
        """An index partition's leader gets a batch (node/index_propagation.py IndexRequests)."""
        group = self.groups[gid]
        if group.gone and not (self.faults.moved_index_accepts and gid in self._split_parents()):
            return ANSWER_MOVED
        if not group.gone and not group.leads(self.now_ms):
            return ANSWER_NOT_LEADER
        writes = decode_entry(entry)
        cursor = group.store.cursor(source)
        outcome = "new" if cursor < high else "fenced" if cursor == FENCED else "refused"
        self.stats[outcome] += 1
        if self.faults.ignore_cursor:
            writes = writes[1:]
        index = group.apply(writes)
        self.trace("apply", gid, source, high.hex(), len(writes), outcome, index)
        return ANSWER_OK

    def _split_parents(self) -> set[str]:
        return {g.split_from for g in self.groups.values() if g.split_from}

    # -- groups, splits, leader changes ---------------------------------------

    def _global_of(self, definitions: list[dict]) -> DeltaSource | None:
        real = indexer_of(definitions)
        if real is None or not self.faults.skip_last_backfill_chunk:
            return real
        return _Muted(real, self.mute)

    def _new_group(self, gid: str, base: bool, low: int = 0, high: int = HASH_SPACE) -> Group:
        group = Group(gid, low, high, self.stores.open(gid, base))
        self.groups[gid] = group
        return group

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def split(self, partition_map: PartitionMap, base: bool, prefix: str) -> None:
        live = [g for g in partition_map.groups if g.high - g.low >= 2]
        if live:
            self._split(partition_map, self.rng.choice(live), base, prefix, SPLIT_AIM_TRIES)

    def _split(self, partition_map: PartitionMap, parent: Group, base: bool, prefix: str,
               tries: int) -> None:
        """Split `parent`, preferably while batches from it (base) or to it (index) are in
        flight: the moment the fences and "moved" answers are for."""
        if parent.gone:
            return
        busy = (self.sending if base else self.receiving)[parent.gid] > 0
        if not parent.leads(self.now_ms) or (not busy and tries > 0):
            self.at(SPLIT_RETRY_MS if not parent.leads(self.now_ms) else SPLIT_AIM_MS,
                    lambda: self._split(partition_map, parent, base, prefix, tries - 1))
            return
        keys = lambda: [k for k, _ in parent.store.scan(b"", None)]  # noqa: E731
        boundary = split_point(parent, keys, self.rng.choice)
        children = []
        for low, high in ((parent.low, boundary), (boundary, parent.high)):
            gid = f"{prefix}{self._next_id()}"
            child = self.stores.cut_child(parent, gid, low, high, base)
            if base and self.faults.child_drops_outbox:
                child.apply(trim_entry(b"\xff" * SEQUENCE_BYTES))  # the parent's undelivered deltas
            self.groups[gid] = child
            children.append(child)
        parent.gone = True
        partition_map.replace(parent, children)
        if self.rng.random() < 0.7:
            self.stall(parent.gid)
        self.propagators.pop(parent.gid, None)
        self.stats["base_splits" if base else "index_splits"] += 1
        self.trace("split", parent.gid, f"{boundary:016x}", children[0].gid, children[1].gid,
                   parent.store.applied_index())

    def leader_change(self, groups: list[Group]) -> None:
        if not self.faults_enabled or not groups:
            return
        group = self.rng.choice(groups)
        group.term += 1
        group.down_until_ms = self.now_ms + self.rng.randint(DOWN_MS_MIN, DOWN_MS_MAX)
        self.stats["leader_changes"] += 1
        if self.rng.random() < 0.3:
            self.stall(group.gid)
        self.trace("leader-change", group.gid, group.term, group.down_until_ms)

    def _all_index_groups(self) -> list[Group]:
        return [g for m in self.index_maps.values() for g in m.groups]

    # -- the control plane ----------------------------------------------------

    def create_index(self, index: GlobalIndex) -> None:
        self.catalogue[index.name] = CatalogueIndex(index)
        count = self.rng.randint(1, 2)
        bounds = [HASH_SPACE * i // count for i in range(count + 1)]
        self.index_maps[index.name] = PartitionMap([
            self._new_group(f"{index.name}.{self._next_id()}", False, bounds[i], bounds[i + 1])
            for i in range(count)])
        self.trace("create-index", index.name, count)

    def delete_index(self, name: str) -> None:
        self.catalogue[name].deleting = True
        self.trace("delete-index", name)

    def control(self) -> None:
        """Every period: adopt and drop on base partitions' leaders, finish deletions."""
        self.at(CONTROL_PERIOD_MS, self.control)
        for group in list(self.bases.groups):
            if not group.leads(self.now_ms):
                continue
            kept = {d["name"] for d in group.store.global_definitions()}
            for name, found in self.catalogue.items():
                if found.deleting and name in kept:
                    self._propose(group, drop_entry(name), "drop")
                elif not found.deleting and name not in kept and self.rng.random() < 0.5:
                    self._propose(group, adopt_entry(found.index.to_json()), "adopt")
        for name in [n for n, f in self.catalogue.items() if f.deleting]:
            if not any(name in {d["name"] for d in g.store.global_definitions()}
                       for g in self.bases.groups):
                del self.catalogue[name]
                for group in self.index_maps.pop(name).groups:
                    group.gone = True
                self.trace("index-gone", name)

    def _propose(self, group: Group, writes: list[Write], what: str) -> None:
        index = group.apply(writes)
        self.stats[what + "s"] += 1
        self.trace(what, group.gid, index)

    # -- propagation and writes -----------------------------------------------

    def propagation_tick(self) -> None:
        """Every idle period: each base partition's leader runs its propagator (one per
        term: a new leader's starts from the outbox)."""
        self.at(self.settings.idle_ms, self.propagation_tick)
        if not self.catalogue:
            return  # a table without global indexes has no propagator (production's)
        for group in list(self.bases.groups):
            if not group.leads(self.now_ms):
                continue
            propagator = self.propagators.get(group.gid)
            if propagator is None or propagator.term != group.term:
                propagator = self.propagators[group.gid] = SimPropagator(self, group, self.settings)
            propagator.tick()

    def write(self) -> None:
        """One log entry of one to three item writes on the partition of a random key."""
        table, rng = self.table, self.rng
        first = rng.randrange(table.key_count)
        if rng.random() < self.hot_rate:
            first = rng.randrange(HOT_KEYS)  # rewritten often: late batches meet newer deltas
        group = self.bases.find(key_hash(table.storage_key(first)))
        if not group.leads(self.now_ms):
            self.stats["refused_writes"] += 1
            return
        numbers = [first]
        if rng.random() < 0.2:
            numbers += [n for n in rng.sample(range(table.key_count), 2)
                        if n != first and group.holds(key_hash(table.storage_key(n)))]
        writes: list[Write] = []
        for number in numbers:
            key = table.storage_key(number)
            kind = rng.choice(["put", "put", "update", "update", "delete"])
            if kind == "delete":
                writes.append((key, None))
                continue
            item = (new_item(rng, table, number) if kind == "put" else
                    updated_item(rng, table, number, group.store.get(key)))
            writes.append((key, image_of(item)))
        index = group.apply(writes)
        self.stats["writes"] += len(writes)
        self.trace("write", group.gid, index, numbers)

    # -- the end ----------------------------------------------------------------

    def heal(self) -> None:
        self.faults_enabled = False
        self.network.settings.loss_rate = 0.0
        self.network.settings.duplicate_rate = 0.0
        self.late_rate = 0.0
        self.stalls.clear()
        for group in self.groups.values():
            group.down_until_ms = min(group.down_until_ms, self.now_ms)
        self.trace("heal")

    def drained(self) -> bool:
        if any(f.deleting for f in self.catalogue.values()) or self.in_flight:
            return False
        names = sorted(self.catalogue)
        for group in self.bases.groups:
            store = group.store
            if sorted(d["name"] for d in store.global_definitions()) != names:
                return False
            if store.outbox_size() or store.backfilling():
                return False
            propagator = self.propagators.get(group.gid)
            if propagator is not None and propagator.running:
                return False
        return True

    def checks(self) -> list[str]:
        indexes = {name: found.index for name, found in self.catalogue.items()}
        return (check_outboxes(self.bases, indexes)
                + check_placement([self.bases] + list(self.index_maps.values()))
                + check_indexes(self.table, self.bases, indexes, self.index_maps))


def run_index_seed(seed: int, operations: int = 200, trace: bool = False,
                   faults: IndexFaults = IndexFaults(), fence_lineage: bool = True) -> SeedResult:
    """Run one seed of the index simulation. `faults` is for the self-test only;
    `fence_lineage` tries the fix of the fence bug (PropagationSettings)."""
    root = tempfile.mkdtemp(prefix="triplica-index-sim-")
    sim = IndexSim(seed, root, faults, trace, fence_lineage)
    try:
        failures = _run(sim, operations)
    finally:
        sim.stores.close()
        shutil.rmtree(root, ignore_errors=True)
    stats = dict(sorted(sim.stats.items()))
    stats.update(sim_ms=sim.now_ms, indexes=[i.name for i in sim.planned],
                 range_key=sim.table.has_range, settings=sim.settings)
    return SeedResult(seed, not failures, failures, sim.trace_hash, stats, sim.trace_lines)


def _run(sim: IndexSim, operations: int) -> list[str]:
    rng = sim.rng
    window_ms = 300 + operations * rng.randint(8, 20)
    _schedule(sim, operations, window_ms)
    sim.at(0, sim.control)
    sim.at(0, sim.propagation_tick)
    sim.queue.run_for(window_ms)
    sim.heal()
    waited = 0
    while not sim.drained() and waited < DRAIN_MS_MAX:
        sim.queue.run_for(DRAIN_CHECK_MS)
        waited += DRAIN_CHECK_MS
    failures = [] if sim.drained() else [
        f"propagation did not drain within {DRAIN_MS_MAX} ms of healing: in flight {sim.in_flight}, "
        f"outboxes {[g.store.outbox_size() for g in sim.bases.groups]}, "
        f"backfilling {[sorted(g.store.backfilling()) for g in sim.bases.groups]}"]
    return failures + sim.checks()


def _schedule(sim: IndexSim, operations: int, window_ms: int) -> None:
    """The run's plan: writes, index creations and a deletion, splits, leader changes."""
    rng = sim.rng
    for _ in range(operations):
        sim.at(rng.randrange(0, window_ms), sim.write)
    created: dict[str, int] = {}
    for index in sim.planned:
        at_ms = 0 if rng.random() < 0.5 else rng.randrange(50, window_ms * 2 // 3)
        created[index.name] = at_ms
        sim.at(at_ms, lambda index=index: sim.create_index(index))
    if rng.random() < 0.3:
        name = rng.choice(sorted(created))
        sim.at(rng.randrange(created[name] + 1, window_ms), lambda: sim.delete_index(name))
    for _ in range(rng.randint(0, 3)):
        sim.at(rng.randrange(50, window_ms), lambda: sim.split(sim.bases, True, "b"))
    for _ in range(rng.randint(0, 3)):
        def split_index() -> None:
            live = sorted(sim.index_maps)
            if live:
                name = rng.choice(live)
                sim.split(sim.index_maps[name], False, f"{name}.")
        sim.at(rng.randrange(50, window_ms), split_index)
    for _ in range(rng.randint(0, 8)):
        at_index = rng.random() < 0.5
        sim.at(rng.randrange(0, window_ms), lambda at_index=at_index: sim.leader_change(
            sim._all_index_groups() if at_index else list(sim.bases.groups)))
