"""One seed -> one simulated run with faults, then the end-of-run checks.

Everything is drawn from `random.Random(seed)`: network delay, loss and
duplication, disk latencies (one slow disk in some runs), clock offsets and
drift (within ReplicaOptions.clock_drift_rate_max), compaction frequency, and
a fault schedule of crashes (dropping un-fsynced state) with restarts,
symmetric and asymmetric partitions, and bit flips in stored log records
followed by a restart that must detect them.

After the workload, every fault heals (partitions removed, nodes restarted,
no more loss) and the run checks:
- liveness: a probe write succeeds within LIVENESS_BOUND_MS of healing,
  and every full replica then applies it;
- no acknowledged write is lost: every replica's state reflects every acked
  write (each client's last applied seq is at least the acked seq);
- the continuous checks of SimCluster (one chosen value per index, equal
  state checksums at equal indexes, at most one valid lease at a time);
- strong reads are never stale: a strong get returns the value of a write
  at least as recent (in log order) as every write acknowledged before the
  get was invoked, and never the value of a write invoked after it returned;
- the linearizability checker (triplica.sim.linearizability), when present.

Membership churn (about one seed in three, `_churn`): a control plane
(triplica.replication.replacement, a pure decision) polls the group every
CONTROL_PERIOD_MS and replaces unhealthy members (and, at scheduled
"maintenance" times, any member, the leader included) through a log
replica, then rebuilds a fresh full replica and removes the log replica,
one change at a time via `Replica.propose_membership` on the leader. Churn
seeds also get a "fail" fault: a node that stays down until healing (or
until it is retired). Crashes, partitions and bit flips keep hitting
whichever nodes exist when they fire, new ones included. After healing the
control plane must finish (CHURN_SETTLE_MS), and the run checks that the
committed configuration is three full members, the same on every node.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from triplica.replication.options import ReplicaOptions
from triplica.replication.membership import Membership
from triplica.sim.cluster import SimCluster
from triplica.replication.replacement import Action, ReplacementPlanner, Observation
from triplica.sim.network import NetworkSettings, SimNetwork
from triplica.sim.workload import SimClient, Workload, WorkloadSettings

try:  # written concurrently by another engineer; the run works without it
    from triplica.sim.linearizability import check_history
except ImportError:  # pragma: no cover - until the checker lands
    check_history = None

NODES = [1, 2, 3]
LIVENESS_BOUND_MS = 6000
CONVERGE_BOUND_MS = 4000
RUN_CAP_MS = 120_000
CHURN_ONE_IN = 3
CONTROL_PERIOD_MS = 100
CHURN_SETTLE_MS = 15_000


@dataclass
class SeedResult:
    seed: int
    ok: bool
    failures: list[str]
    trace_hash: int
    stats: dict[str, Any] = field(default_factory=dict)
    trace: list[str] = field(default_factory=list)


def _fault_schedule(rng: random.Random, cluster: SimCluster, window_ms: int, bit_flips_max: int = 1) -> list[str]:
    """Schedule faults; half of them hit whoever leads when they fire."""
    plan: list[str] = []
    bit_flips = 0
    for _ in range(rng.randint(0, 6)):
        start = rng.randrange(200, window_ms)
        node = rng.choice(NODES)
        at_leader = rng.random() < 0.5
        kind = rng.choice(["crash", "crash", "partition", "partition", "inbound", "outbound", "bitflip"])
        if kind == "bitflip":
            bit_flips += 1
            if bit_flips > bit_flips_max:  # two damaged replicas of three is beyond the fault model (f = 1)
                kind = "crash"
        length = rng.randrange(100, 2000)
        plan.append(f"{kind} {'leader' if at_leader else f'n{node}'} at {start} for {length}")

        def fire(kind: str = kind, node: int = node, at_leader: bool = at_leader, length: int = length) -> None:
            target = _resolve(cluster, (cluster.leader() or node) if at_leader else node)
            cluster._trace("fault", kind, target, length)
            if kind == "crash":
                cluster.crash(target)
                cluster.at(length, lambda: _restart(cluster, target))
            elif kind == "bitflip":
                cluster.nodes[target].disk.flip_bit(rng)
                cluster.crash(target)
                cluster.at(length, lambda: _restart(cluster, target))
            else:
                links = set()
                for other in sorted(cluster.nodes):
                    if other != target:
                        if kind in ("partition", "outbound"):
                            links.add((target, other))
                        if kind in ("partition", "inbound"):
                            links.add((other, target))
                cluster.network.blocked.update(links)
                cluster.at(length, lambda: cluster.network.blocked.difference_update(links))
        cluster.at(start, fire)
    return plan


def _resolve(cluster: SimCluster, node_id: int) -> int:
    """A fault aimed at a retired node hits a current one instead."""
    if node_id in cluster.nodes:
        return node_id
    current = sorted(cluster.nodes)
    return current[node_id % len(current)]


def _restart(cluster: SimCluster, node_id: int) -> None:
    node = cluster.nodes.get(node_id)
    if node is not None and not node.up and node_id not in cluster.held_down:
        cluster.start(node_id)


class _Churn:
    """Wires a ReplacementPlanner to the cluster: observe, decide, act."""

    def __init__(self, cluster: SimCluster, rng: random.Random, window_ms: int) -> None:
        self.cluster = cluster
        self.rng = rng
        self.control = ReplacementPlanner(
            random.Random(rng.getrandbits(64)), first_new_id=max(NODES) + 1,
            unhealthy_after_ms=rng.choice([400, 800, 1500]), replacements_max=rng.choice([1, 1, 2, 3]),
            maintenance_at_ms=sorted(rng.randrange(200, window_ms) for _ in range(rng.randint(0, 2))))
        self.unhealthy_since: dict[int, int] = {}
        self.plan: list[str] = []
        if rng.random() < 0.7:
            start = rng.randrange(200, window_ms)
            at_leader = rng.random() < 0.3
            node = rng.choice(NODES)
            self.plan.append(f"fail {'leader' if at_leader else f'n{node}'} at {start}")
            cluster.at(start, lambda: self._fail(_resolve(cluster, (cluster.leader() or node) if at_leader else node)))
        cluster.at(CONTROL_PERIOD_MS, self._poll)

    def _fail(self, node: int) -> None:
        if not self.control.accepting_new:
            return  # fired after healing
        self.cluster._trace("fault", "fail", node)
        self.cluster.held_down.add(node)
        self.cluster.crash(node)

    def heal(self) -> None:
        self.cluster.held_down.clear()
        self.control.accepting_new = False

    def _leader(self) -> "int | None":
        """The leader that knows the most (a deposed one may still think it leads)."""
        leaders = [n for n in self.cluster.nodes.values() if n.up and n.replica is not None and n.replica.is_leader]
        if not leaders:
            return None
        return max(leaders, key=lambda n: (n.replica.commit_index, n.node_id)).node_id  # type: ignore[union-attr]

    def committed(self) -> "Membership | None":
        leader = self._leader()
        return None if leader is None else self.cluster.nodes[leader].replica.committed_config  # type: ignore[union-attr]

    def _poll(self) -> None:
        cluster = self.cluster
        cluster.at(CONTROL_PERIOD_MS, self._poll)
        now = cluster.now_ms
        leader = self._leader()
        # The health monitor: a node is unhealthy while down or cut off from the leader.
        for node_id, node in cluster.nodes.items():
            cut = leader is not None and ((leader, node_id) in cluster.network.blocked or (node_id, leader) in cluster.network.blocked)
            if not node.up or cut:
                self.unhealthy_since.setdefault(node_id, now)
            else:
                self.unhealthy_since.pop(node_id, None)
        if leader is None:
            return
        replica = cluster.nodes[leader].replica
        assert replica is not None
        if replica.committed_config is None:
            return
        caught_up = frozenset(n for n, p in replica.progress.items() if p.match_index >= replica.commit_index)
        observation = Observation(now, leader, replica.commit_index, replica.committed_config, caught_up,
                                  {n: now - t for n, t in self.unhealthy_since.items()},
                                  {n: node.replica.committed_config for n, node in cluster.nodes.items() if node.replica},
                                  replica.pending_config)
        for action in self.control.decide(observation):
            self._act(leader, action)

    def _act(self, leader: int, action: Action) -> None:
        cluster = self.cluster
        if action.kind == "spawn":
            cluster._trace("churn", "spawn", action.node, "log" if action.log_replica else "full")
            if action.log_replica:
                cluster.log_replica_ids.add(action.node)
            cluster.add_node(action.node, bootstrap=None)
            cluster.start(action.node)
        elif action.kind == "propose":
            assert action.membership is not None
            node = cluster.nodes[leader]
            assert node.replica is not None
            node.replica.tick(node.local_ms(cluster.now_ms))
            index = node.replica.propose_membership(action.membership)
            cluster._trace("churn", "propose", leader, sorted(action.membership.members),
                           sorted(action.membership.log_replicas), index)
            cluster._drive(node)
        elif action.kind == "retire":
            cluster._trace("churn", "retire", action.node, action.delay_ms)
            cluster.at(action.delay_ms, lambda: cluster.retire(action.node))
        else:
            raise AssertionError(action.kind)


def run_seed(seed: int, operations: int = 200, trace: bool = False,
             replica_options: "ReplicaOptions | None" = None) -> SeedResult:
    """Run one seed. `replica_options` is for the broken-core test only."""
    rng = random.Random(seed)
    options = replica_options or ReplicaOptions()
    network = SimNetwork(rng, NetworkSettings(
        delay_ms_min=rng.randint(1, 3),
        delay_ms_mean_extra=rng.choice([1.0, 3.0, 10.0]),
        loss_rate=rng.choice([0.0, 0.0, 0.01, 0.05]),
        duplicate_rate=rng.choice([0.0, 0.0, 0.02])))
    cluster = SimCluster(rng, NODES, options, network,
                         compact_every_entries=rng.choice([16, 64, 10**9]), trace=trace)
    slow = rng.choice([None, None] + NODES)
    for node in cluster.nodes.values():
        base = rng.randint(0, 2)
        slow_ms = rng.randint(5, 60) if node.node_id == slow else 0
        node.disk_latency_ms = lambda base=base, slow_ms=slow_ms: base + (rng.randint(0, slow_ms) if slow_ms else 0)
    workload = Workload(cluster, rng, WorkloadSettings(operations=operations))
    window_ms = 200 + operations * 15
    churn_rng = random.Random(seed * 1_000_003 + 17)  # its own stream: seeds without churn run as before
    churn = _Churn(cluster, churn_rng, window_ms) if churn_rng.randrange(CHURN_ONE_IN) == 0 else None
    # A node failed for good plus a damaged one would be two faults of three (beyond f = 1).
    plan = _fault_schedule(rng, cluster, window_ms=window_ms, bit_flips_max=0 if churn and churn.plan else 1)
    if churn is not None:
        plan += churn.plan
    workload.start()
    cluster.run_until(lambda: workload.finished, RUN_CAP_MS)
    failures: list[str] = []
    if not workload.finished:
        failures.append(f"workload did not finish within {RUN_CAP_MS} ms")
        workload.stopped = True
    # Heal everything, then demand liveness.
    heal_ms = cluster.now_ms
    cluster.network.heal()
    cluster.network.settings.loss_rate = 0.0
    cluster.network.settings.duplicate_rate = 0.0
    if churn is not None:
        churn.heal()
    for node_id in sorted(cluster.nodes):
        _restart(cluster, node_id)
    cluster.run_for(1)  # let any in-flight fault actions (restarts) pass harmlessly
    if churn is not None:
        _settle_churn(cluster, churn, failures)
    probe = _probe(cluster, workload, heal_ms, failures)
    if probe is not None:
        _check_converged(cluster, probe, failures)
    _check_acked(cluster, workload, failures)
    _check_stale_reads(cluster, workload, failures)
    failures.extend(cluster.violations)
    if check_history is not None:
        result = check_history(workload.history)
        if not result.ok:
            failures.append(f"not linearizable (key {result.key}): {result.explanation}")
    if churn is not None:
        stats_churn = {"proposals": churn.control.proposals, "replacements": churn.control.replacements,
                       "retired": sorted(cluster.retired), "members": sorted(cluster.nodes)}
    stats = {"sim_ms": cluster.now_ms, "ops": len(workload.history) + len(workload.eventual_history),
             "acked_writes": len(workload.acked_writes), "faults": plan,
             "linearizability_checked": check_history is not None}
    if churn is not None:
        stats["churn"] = stats_churn
    return SeedResult(seed, not failures, failures, cluster.trace_hash, stats, cluster.trace_lines)


def _settle_churn(cluster: SimCluster, churn: _Churn, failures: list[str]) -> None:
    """After healing the control plane finishes its replacement; then check the end state."""
    if not cluster.run_until(lambda: churn.control.settled(churn.committed()) and not (cluster.retired ^ churn.control.retired),
                             CHURN_SETTLE_MS):
        config = churn.committed()
        failures.append(f"membership did not settle within {CHURN_SETTLE_MS} ms of healing: leader config "
                        f"{config and (sorted(config.members), sorted(config.log_replicas))}, nodes {sorted(cluster.nodes)}")
        return
    config = churn.committed()
    assert config is not None
    if len(config.members) != 3 or config.log_replicas or set(config.members) != set(cluster.nodes):
        failures.append(f"end state: committed configuration {sorted(config.members)} log {sorted(config.log_replicas)}, "
                        f"running nodes {sorted(cluster.nodes)}")


def _probe(cluster: SimCluster, workload: Workload, heal_ms: int, failures: list[str]) -> "int | None":
    """After healing, one write must succeed within LIVENESS_BOUND_MS."""
    done: list[Any] = []
    probe = SimClient(client_id=1000, workload=workload, target=min(cluster.nodes))
    workload.clients.append(probe)
    workload.settings.operation_deadline_ms = LIVENESS_BOUND_MS

    def on_complete(client: SimClient, status: str, payload: Any) -> None:
        done.append(status)
    workload.on_complete = on_complete
    workload.begin(probe, ("put", "probe", None, None))
    cluster.run_until(lambda: bool(done), LIVENESS_BOUND_MS + 1000)
    if done != ["ok"]:
        failures.append(f"liveness: no write succeeded within {LIVENESS_BOUND_MS} ms of healing at {heal_ms}")
        return None
    return cluster.value_index.get(f"c1000s{probe.seq}")


def _check_converged(cluster: SimCluster, probe_index: int, failures: list[str]) -> None:
    def converged() -> bool:
        return all(n.replica is not None and n.replica.applied_index >= probe_index for n in cluster.nodes.values())
    if not cluster.run_until(converged, CONVERGE_BOUND_MS):
        lagging = {n.node_id: n.replica.applied_index for n in cluster.nodes.values() if n.replica}
        failures.append(f"replicas did not apply the probe index {probe_index}: {lagging}")


def _check_acked(cluster: SimCluster, workload: Workload, failures: list[str]) -> None:
    for node in cluster.nodes.values():
        if node.kv is None or node.replica is None or node.node_id in cluster.log_replica_ids:
            continue
        for client, seq, key, complete_ms in workload.acked_writes:
            applied_seq = node.kv.last.get(client, (0, None))[0]
            if applied_seq < seq:
                failures.append(f"acknowledged write c{client}s{seq} on {key} (acked at {complete_ms}) missing on node {node.node_id}")
                return


def _check_stale_reads(cluster: SimCluster, workload: Workload, failures: list[str]) -> None:
    writes: dict[str, list[tuple[int, int, int]]] = {}  # key -> (complete_ms, index, invoke_ms)
    invoked: dict[str, int] = {}
    for event in workload.history:
        if event.op in ("put", "cas"):
            invoked[event.value] = event.invoke_ms
            if event.ok and event.complete_ms is not None:
                writes.setdefault(event.key, []).append((event.complete_ms, cluster.value_index.get(event.value, -1), event.invoke_ms))
    for event in workload.history:
        if event.op != "get":
            continue
        if event.result is None:
            index = 0
        elif event.result in cluster.value_index:
            index = cluster.value_index[event.result]
        else:
            failures.append(f"strong get {event.key} at {event.invoke_ms} returned {event.result!r}, never chosen")
            continue
        required = max((i for done, i, _ in writes.get(event.key, []) if done < event.invoke_ms), default=0)
        if index < required:
            failures.append(f"stale strong read: client {event.client} get {event.key} at {event.invoke_ms}-{event.complete_ms} "
                            f"returned index {index}, a write at index {required} was acked before")
        if event.result is not None and invoked.get(event.result, 0) > (event.complete_ms or 0):
            failures.append(f"strong get {event.key} returned {event.result!r} before that write was invoked")
