"""One seed -> one run of a table whose partition splits under faults, then the checks.

A table starts as one partition (group 1 on nodes 1, 2, 3, keys k0..k<n-1>,
a key's number standing for its hash) and is split 2-4 times, at random
times and boundaries, by a control plane that follows the production
protocol, with production's decisions (engine/split_protocol.py:
`split_refusal`, `SplitProgress`, as metadata/control_plane.py and
metadata/role.py use them):
1. intent: the parent, the boundary and the two new child group ids;
2. ask a member of the parent (the hinted leader, else each in turn) to
   split; its leader proposes the split entry and refuses later writes; the
   control plane asks again every CONTROL_PERIOD_MS until a member answers
   that it applied the split, with the index A;
3. switch: the metadata commits the new map (epoch + 1); every node's
   catalogue learns it after a delay (down nodes at restart, cut-off ones
   once reachable) and builds its children from its own parent replica.
Clients go through routers with stale maps (split_router.py). Faults, all
from the seed: message delay, loss and duplication; disk latency; clock
offset and drift; node crashes and restarts; symmetric and one-way
partitions, aimed at a node or at the leader of a live group; and faults
aimed at a split in flight (right after the intent: crash or cut off the
parent's leader, crash any node, pause the control plane as a metadata
failover would; right after a leader proposed the split entry: crash or
cut off that leader; right after the switch: crash a node while the
catalogues apply it).

After the workload every fault heals, the control plane finishes, and the
run checks:
- every split completed and every node carried out every switch;
- every builder of a child started it at the parent's split index A with
  identical state (the empty, catching-up replicas excepted);
- no acknowledged write is lost: it was applied in some group at an index
  not after that group's split index (so it is inside the children's
  snapshot), and the final strong reads (one per key) are in the history;
- every final partition holds only keys in its range; the final map covers
  the key space once;
- liveness: a probe write to each final partition and a strong read of each
  key succeed within LIVENESS_BOUND_MS of healing, and every replica of each
  final partition applies its probe;
- the cluster's continuous checks (split_cluster.py) and the
  linearizability checker over the whole history.

Not modelled: membership churn, bit flips, eventually consistent reads,
Query/Scan/batches, several tables, a metadata group of its own (the
control plane is one process whose crashes are pauses), splitting a group
whose members differ from the parent's.
"""
from __future__ import annotations

import random
from typing import Any

from triplica.replication.options import ReplicaOptions
from triplica.sim.linearizability import check_history
from triplica.sim.network import NetworkSettings, SimNetwork
from triplica.sim.runner import SeedResult
from triplica.engine.split_protocol import (ACTION_ASK, ACTION_SWITCH, ANSWER_APPLIED, ANSWER_NONE,
                                            ANSWER_NOT_LEADER, ANSWER_PROPOSED, SplitAnswer, SplitMarker,
                                            SplitProgress, split_refusal)
from triplica.sim.split_cluster import SplitCluster, SplitFaults, Switch, group_key
from triplica.sim.split_router import MemDS, PartitionMaps, Router, SplitClient, SplitWorkload, WorkloadSettings

NODES = [1, 2, 3]
RUN_CAP_MS = 120_000
SETTLE_MS = 20_000
LIVENESS_BOUND_MS = 6000
CONVERGE_BOUND_MS = 4000
CONTROL_PERIOD_MS = 50
ASK_TIMEOUT_MS = 300
PUBLISH_DELAY_MS_MAX = 200
PUBLISH_RETRY_MS = 100
SPLIT_RETRY_MS = 100


class SplitControlPlane:
    """Splits one partition at a time through intent, split entry and switch."""

    def __init__(self, cluster: SplitCluster, maps: PartitionMaps, rng: random.Random, split_times_ms: list[int],
                 faults_mid_split: bool) -> None:
        self.cluster = cluster
        self.maps = maps
        self.rng = rng
        self.faults_mid_split = faults_mid_split
        self.planned = len(split_times_ms)
        self.done = 0
        self.progress: "SplitProgress | None" = None  # the split whose intent is in the log
        self.parent_of: dict[int, int] = {}
        self.next_group = 2
        self.ask_seq = 0
        self.asked_seq = 0  # the ask whose answer we wait for (0: none)
        self.paused_until_ms = 0
        self.struck = False
        self.plan: list[str] = []
        for time_ms in split_times_ms:
            cluster.at(time_ms, self._start_split)
        cluster.at(CONTROL_PERIOD_MS, self._poll)

    @property
    def finished(self) -> bool:
        return self.done == self.planned and self.progress is None

    def pause(self, length_ms: int) -> None:
        """The metadata leader failed over: nothing moves, the intent stays in the log."""
        if not self.cluster.faults_enabled:
            return
        self.cluster.trace("control-pause", length_ms)
        self.paused_until_ms = max(self.paused_until_ms, self.cluster.now_ms + length_ms)
        self.asked_seq = 0  # an answer in flight reaches a process that is gone

    def _start_split(self) -> None:
        cluster = self.cluster
        if self.progress is not None or cluster.now_ms < self.paused_until_ms:
            cluster.at(SPLIT_RETRY_MS, self._start_split)  # one operation at a time
            return
        splittable = [p for p in self.maps.latest() if p.end - p.start >= 2]
        if not splittable:
            self.planned -= 1
            return
        parent = self.rng.choice(splittable)
        boundary = self.rng.randint(parent.start + 1, parent.end - 1)
        refusal = split_refusal((parent.start, parent.end), boundary, intent_pending=False)
        assert refusal is None, refusal
        left, right = self.next_group, self.next_group + 1
        self.next_group += 2
        self.parent_of[left] = self.parent_of[right] = parent.group
        marker = SplitMarker(boundary, group_key(left), group_key(right))
        # The first member asked is drawn (production asks the first member first).
        self.progress = SplitProgress(group_key(parent.group), marker, NODES, first_target=self.rng.choice(NODES))
        self.struck = False  # at most one strike at the proposer per split
        cluster.trace("intent", parent.group, boundary, left, right)
        if self.faults_mid_split and self.rng.random() < 0.6:
            self._fault_mid_split(parent.group)

    def _fault_mid_split(self, group: int) -> None:
        cluster, rng = self.cluster, self.rng
        kind = rng.choice(["crash_leader", "crash_leader", "cut_leader", "crash_any", "pause"])
        delay, length = rng.randrange(0, 150), rng.randrange(100, 1500)
        self.plan.append(f"{kind} of group {group} at +{delay} for {length}")

        def fire() -> None:
            target = cluster.leader_of(group) or rng.choice(NODES)
            if kind == "pause":
                self.pause(length)
            elif kind == "cut_leader":
                _cut(cluster, target, "partition", length)
            else:
                _crash(cluster, target if kind == "crash_leader" else rng.choice(NODES), length)
        cluster.at(delay, fire)

    def _poll(self) -> None:
        self.cluster.at(CONTROL_PERIOD_MS, self._poll)
        self._ask()

    def _ask(self) -> None:
        """Step 2: ask the member `progress` names (reconcile does the same after a pause)."""
        cluster, progress = self.cluster, self.progress
        if progress is None or progress.action != ACTION_ASK or cluster.now_ms < self.paused_until_ms \
                or self.asked_seq:
            return
        group, marker, target = int(progress.parent), progress.marker, progress.target
        self.ask_seq += 1
        seq = self.asked_seq = self.ask_seq

        def reply(answer: Any) -> None:
            cluster.at(_link_ms(self.rng), lambda: self._on_answer(seq, target, answer))
        cluster.at(_link_ms(self.rng), lambda: cluster.handle_split(target, group, marker, reply))
        cluster.at(ASK_TIMEOUT_MS, lambda: self._on_answer(seq, target, ("timeout", None)))

    def _on_answer(self, seq: int, target: int, answer: Any) -> None:
        progress = self.progress
        if seq != self.asked_seq or progress is None:
            return
        self.asked_seq = 0
        status, payload = answer
        decision = progress.after_answer(_split_answer(status, payload))
        if decision.done:
            self._switch()
            return
        if status == "pending" and self.faults_mid_split and not self.struck and self.rng.random() < 0.4:
            self._strike_proposer(target)
        if not decision.wait:
            self._ask()  # a hint: follow it at once

    def _strike_proposer(self, node_id: int) -> None:
        """Crash or cut off the leader that just proposed the split entry, while
        it is in flight: the next leader must find it (or not) and fence."""
        self.struck = True
        kind = self.rng.choice(["crash", "partition"])
        delay, length = self.rng.randrange(0, 30), self.rng.randrange(100, 1500)
        self.plan.append(f"{kind} proposer n{node_id} at +{delay} for {length}")
        if kind == "crash":
            self.cluster.at(delay, lambda: _crash(self.cluster, node_id, length))
        else:
            self.cluster.at(delay, lambda: _cut(self.cluster, node_id, "partition", length))

    def _switch(self) -> None:
        """Step 3: the switch record (epoch + 1); the nodes learn it later (`_publish`)."""
        cluster, progress = self.cluster, self.progress
        assert progress is not None and progress.action == ACTION_SWITCH
        group, marker = int(progress.parent), progress.marker
        parent = next(p for p in self.maps.latest() if p.group == group)
        self.maps.commit_split(group, marker.boundary, int(marker.left_group), int(marker.right_group))
        cluster.commit_switch(Switch(group, marker, (parent.start, parent.end), tuple(NODES)))
        progress.switched()
        cluster.trace("switch-committed", group, marker.index, "epoch", self.maps.latest_epoch)
        self.progress = None
        self.done += 1
        for node in NODES:
            cluster.at(self.rng.randint(1, PUBLISH_DELAY_MS_MAX), lambda n=node: self._publish(n))
        if self.faults_mid_split and self.rng.random() < 0.3:
            victim, delay, length = self.rng.choice(NODES), self.rng.randrange(0, 100), self.rng.randrange(100, 1500)
            self.plan.append(f"crash n{victim} at switch +{delay} for {length}")
            cluster.at(delay, lambda: _crash(cluster, victim, length))

    def _publish(self, node_id: int) -> None:
        cluster = self.cluster
        cut_off = all((other, node_id) in cluster.network.blocked for other in NODES if other != node_id)
        if cut_off and cluster.nodes[node_id].up:
            cluster.at(PUBLISH_RETRY_MS, lambda: self._publish(node_id))  # the catalogue follower retries
            return
        cluster.publish(node_id)


def _split_answer(status: str, payload: Any) -> SplitAnswer:
    """A sim node's answer (SplitCluster.handle_split) as production's (metadata/role.py)."""
    if status == "done":
        return SplitAnswer(ANSWER_APPLIED, index=payload)
    if status == "pending":
        return SplitAnswer(ANSWER_PROPOSED)
    if status == "not_leader":
        return SplitAnswer(ANSWER_NOT_LEADER, hint=payload)
    return SplitAnswer(ANSWER_NONE)  # timeout, or the node does not host the group


def _link_ms(rng: random.Random) -> int:
    return 1 + int(rng.expovariate(0.5))


def _crash(cluster: SplitCluster, node_id: int, length_ms: int) -> None:
    if not cluster.faults_enabled:
        return
    cluster.trace("fault", "crash", node_id, length_ms)
    cluster.crash(node_id)
    cluster.at(length_ms, lambda: _restart(cluster, node_id))


def _restart(cluster: SplitCluster, node_id: int) -> None:
    if not cluster.nodes[node_id].up:
        cluster.start(node_id)


def _cut(cluster: SplitCluster, node_id: int, kind: str, length_ms: int) -> None:
    if not cluster.faults_enabled:
        return
    cluster.trace("fault", kind, node_id, length_ms)
    links = set()
    for other in NODES:
        if other != node_id:
            if kind in ("partition", "outbound"):
                links.add((node_id, other))
            if kind in ("partition", "inbound"):
                links.add((other, node_id))
    cluster.network.blocked.update(links)
    cluster.at(length_ms, lambda: cluster.network.blocked.difference_update(links))


def _fault_schedule(rng: random.Random, cluster: SplitCluster, maps: PartitionMaps, window_ms: int) -> list[str]:
    """Faults at random times; half aim at the leader of a random live group when they fire."""
    plan: list[str] = []
    for _ in range(rng.randint(0, 6)):
        start, node, at_leader = rng.randrange(200, window_ms), rng.choice(NODES), rng.random() < 0.5
        kind = rng.choice(["crash", "crash", "partition", "partition", "inbound", "outbound"])
        length = rng.randrange(100, 2000)
        plan.append(f"{kind} {'leader' if at_leader else f'n{node}'} at {start} for {length}")

        def fire(kind: str = kind, node: int = node, at_leader: bool = at_leader, length: int = length) -> None:
            target = node
            if at_leader:
                group = rng.choice(maps.latest()).group
                target = cluster.leader_of(group) or node
            if kind == "crash":
                _crash(cluster, target, length)
            else:
                _cut(cluster, target, kind, length)
        cluster.at(start, fire)
    return plan


def run_split_seed(seed: int, operations: int = 200, trace: bool = False,
                   faults: SplitFaults = SplitFaults()) -> SeedResult:
    """Run one seed of the split simulation. `faults` is for the self-test only."""
    rng = random.Random(seed)
    key_count = rng.randint(12, 40)
    network = SimNetwork(rng, NetworkSettings(
        delay_ms_min=rng.randint(1, 3), delay_ms_mean_extra=rng.choice([1.0, 3.0, 10.0]),
        loss_rate=rng.choice([0.0, 0.0, 0.01, 0.05]), duplicate_rate=rng.choice([0.0, 0.0, 0.02])))
    cluster = SplitCluster(rng, NODES, key_count, ReplicaOptions(), network,
                           compact_every_entries=rng.choice([16, 64, 10**9]), faults=faults, trace=trace)
    slow = rng.choice([None, None] + NODES)
    for node in cluster.nodes.values():
        base, slow_ms = rng.randint(0, 2), (rng.randint(5, 60) if node.node_id == slow else 0)
        node.disk_latency_ms = lambda base=base, slow_ms=slow_ms: base + (rng.randint(0, slow_ms) if slow_ms else 0)
    maps = PartitionMaps(key_count, tuple(NODES))
    memds = MemDS(maps, rng, stale_rate=rng.choice([0.0, 0.2, 0.5]), lag_epochs_max=2)
    routers = [Router(i, memds) for i in range(2)]
    keys = [f"k{i}" for i in range(key_count)]
    workload = SplitWorkload(cluster, rng, keys, routers, WorkloadSettings(operations=operations))
    window_ms = 200 + operations * 15
    split_times = sorted(rng.randrange(100, window_ms) for _ in range(rng.randint(2, 4)))
    control = SplitControlPlane(cluster, maps, rng, split_times, faults_mid_split=rng.random() < 0.8)
    plan = _fault_schedule(rng, cluster, maps, window_ms)
    workload.start()
    failures: list[str] = []
    if not cluster.run_until(lambda: workload.finished, RUN_CAP_MS):
        failures.append(f"workload did not finish within {RUN_CAP_MS} ms")
        workload.stopped = True
    heal_ms = cluster.now_ms
    _heal(cluster)
    if not cluster.run_until(lambda: control.finished and cluster.caught_up(), SETTLE_MS + split_times[-1]):
        failures.append(f"splits did not finish after healing: {control.done} of {control.planned} done, "
                        f"intent {control.progress and control.progress.marker}, nodes caught up {cluster.caught_up()}")
    else:
        _check_liveness(cluster, workload, maps, heal_ms, failures)
    _check_children(cluster, control, failures)
    _check_acked(cluster, workload, failures)
    _check_ownership(cluster, maps, key_count, failures)
    failures.extend(cluster.violations)
    result = check_history(workload.history)
    if not result.ok:
        failures.append(f"not linearizable (key {result.key}): {result.explanation}")
    stats = {"sim_ms": cluster.now_ms, "keys": key_count, "ops": len(workload.history),
             "acked_writes": len(workload.acked_writes), "splits": control.done,
             "epochs": maps.latest_epoch, "moved_answers": workload.moved_answers,
             "refreshes": sum(r.refreshes for r in routers),
             "split_entries_reproposed": sum(len(v) - 1 for v in cluster.split_proposals.values()),
             "empty_child_replicas": sum(1 for starts in cluster.child_starts.values() for s in starts if s.checksum is None),
             "faults": plan + control.plan}
    return SeedResult(seed, not failures, failures, cluster.trace_hash, stats, cluster.trace_lines)


def _heal(cluster: SplitCluster) -> None:
    cluster.faults_enabled = False
    cluster.network.heal()
    cluster.network.settings.loss_rate = 0.0
    cluster.network.settings.duplicate_rate = 0.0
    for node_id in NODES:
        _restart(cluster, node_id)


def _check_liveness(cluster: SplitCluster, workload: SplitWorkload, maps: PartitionMaps, heal_ms: int,
                    failures: list[str]) -> None:
    """A probe write to each final partition, then a strong read of every key, through stale routers."""
    workload.settings.operation_deadline_ms = LIVENESS_BOUND_MS
    outcomes: dict[str, str] = {}
    probes: dict[int, str] = {}  # group -> value of its probe write that succeeded
    deadline_ms = cluster.now_ms + LIVENESS_BOUND_MS

    def probe(client: SplitClient, group: int, key: str) -> None:
        def done(status: str, payload: Any) -> None:
            if status == "ok":
                probes[group] = f"c{client.client_id}s{client.seq}"
            if status == "ok" or cluster.now_ms >= deadline_ms:
                outcomes[f"probe {key}"] = status
            else:  # a 500 (outcome unknown): the SDK tries again, as a new request
                probe(client, group, key)
        workload.begin(client, "put", key, None, done)
    final = maps.latest()
    for i, partition in enumerate(final):
        probe(SplitClient(1000 + i, workload.routers[i % len(workload.routers)]), partition.group, f"k{partition.start}")
    cluster.run_until(lambda: len(outcomes) == len(final), LIVENESS_BOUND_MS + 1000)
    for i, key in enumerate(workload.keys):
        client = SplitClient(2000 + i, workload.routers[i % len(workload.routers)])
        workload.begin(client, "strong_get", key, None, lambda s, p, k=f"read {key}": outcomes.__setitem__(k, s))
    cluster.run_until(lambda: len(outcomes) == len(final) + len(workload.keys), LIVENESS_BOUND_MS + 1000)
    stuck = sorted(k for k, s in outcomes.items() if s != "ok")
    missing = len(final) + len(workload.keys) - len(outcomes)
    if stuck or missing:
        failures.append(f"liveness after healing at {heal_ms}: {stuck[:6]} failed, {missing} unanswered")
        return
    for group, value in sorted(probes.items()):
        applied = cluster.value_applied.get(value)
        if applied is None or applied[0] != group:
            failures.append(f"probe {value} for group {group} applied as {applied}")
            continue

        def converged(group: int = group, index: int = applied[1]) -> bool:
            return all(n.groups[group].replica is not None and n.groups[group].replica.applied_index >= index
                       for n in cluster.nodes.values())
        if not cluster.run_until(converged, CONVERGE_BOUND_MS):
            failures.append(f"group {group}: not every replica applied the probe at {applied[1]}")


def _check_children(cluster: SplitCluster, control: SplitControlPlane, failures: list[str]) -> None:
    """Every replica of a child that was cut from its parent starts at A with the same state."""
    for child, starts in sorted(cluster.child_starts.items()):
        split_index = cluster.split_index.get(control.parent_of[child])
        built = {(s.index, s.checksum) for s in starts if s.checksum is not None}
        if len(built) > 1 or any(index != split_index for index, _ in built):
            failures.append(f"child group {child}: replicas started from different states "
                            f"{sorted((s.node, s.index, s.checksum) for s in starts)}, parent split at {split_index}")
        if not built:
            failures.append(f"child group {child}: no replica was cut from the parent (all started empty)")


def _check_acked(cluster: SplitCluster, workload: SplitWorkload, failures: list[str]) -> None:
    """An acknowledged write must be inside the state the children were cut from."""
    for value in workload.acked_writes:
        applied = cluster.value_applied.get(value)
        if applied is None:
            failures.append(f"acknowledged write {value} was never applied")
            return
        group, index = applied
        split_index = cluster.split_index.get(group)
        if split_index is not None and index > split_index:
            failures.append(f"acknowledged write {value} lost: applied in group {group} at {index}, "
                            f"after its split at {split_index}")
            return


def _check_ownership(cluster: SplitCluster, maps: PartitionMaps, key_count: int, failures: list[str]) -> None:
    final = maps.latest()
    if final[0].start != 0 or final[-1].end != key_count or any(a.end != b.start for a, b in zip(final, final[1:])):
        failures.append(f"final map does not cover the key space once: {final}")
    for node in cluster.nodes.values():
        hosted = sorted(g for g, gr in node.groups.items())
        if hosted != sorted(p.group for p in final):
            failures.append(f"node {node.node_id} hosts groups {hosted}, the map has {[p.group for p in final]}")
            continue
        for gr in node.groups.values():
            if gr.state is None:
                continue
            stray = sorted(k for k in gr.state.kv.data if not gr.start <= int(k[1:]) < gr.end)
            if stray:
                failures.append(f"node {node.node_id} group {gr.group} [{gr.start},{gr.end}) holds keys {stray[:5]}")
