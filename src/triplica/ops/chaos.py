"""Power-off chaos against a real multi-process cluster ("faults are practised").

Starts a 3-node, 3-AZ cluster with its router on 127.0.0.1, drives a steady
client load through the router (puts, conditional puts and strongly
consistent reads on a few registers, plus never-overwritten ledger writes),
and every few seconds kill -9s a random node (the leader included) and
restarts it. At the end it checks, and reports:

- every acknowledged ledger write is present (read back with ConsistentRead);
- the register history (strong reads, puts, conditional puts, and a final
  strong read of each register) is linearizable (sim/linearizability.py);
  an operation without an answer is recorded as "may or may not have
  happened", a failed read is dropped (it had no effect);
- the longest write-unavailability window: the longest stretch with no
  successful write from any client.

`python -m triplica.ops.chaos --seconds 300` (`make chaos`); the test suite
runs a short version. Every loop is bounded in time and count, and every
process started is stopped by pid.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from triplica.cluster import local
from triplica.sim.history import HistoryEvent
from triplica.sim.linearizability import check_history

TABLE = "chaos"
REGISTERS = 4
CLIENTS = 6
OPERATIONS_PER_CLIENT_MAX = 100_000
KILL_INTERVAL_S = (3.0, 6.0)
DOWN_TIME_S = (0.5, 2.0)
RECOVERY_WAIT_S_MAX = 30.0


@dataclass
class ChaosReport:
    seconds: float
    seed: int
    kills: list[tuple[float, int]] = field(default_factory=list)
    operations: int = 0
    acknowledged_writes: int = 0
    unknown_writes: int = 0
    ledger_acknowledged: int = 0
    ledger_missing: list[str] = field(default_factory=list)
    linearizability: str = ""
    linearizability_explanation: str = ""
    write_unavailability_s_max: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.ledger_missing and self.linearizability == "ok"


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


def _client(endpoint: str) -> Any:
    # One attempt per operation: an SDK retry of a write whose first attempt did run would
    # make the recorded outcome (e.g. "condition failed") describe only the second attempt.
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="chaos", aws_secret_access_key="chaos",
                        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2,
                                      read_timeout=6))


class _Worker(threading.Thread):
    def __init__(self, number: int, endpoint: str, seed: int, stop: threading.Event) -> None:
        super().__init__(name=f"chaos-client-{number}", daemon=True)
        self.number = number
        self.client = _client(endpoint)
        self.rng = random.Random(seed * 1000 + number)
        self.stop_event = stop
        self.history: list[HistoryEvent] = []
        self.ledger: list[str] = []
        self.write_times_ms: list[int] = []
        self.unknown_writes = 0
        self.seen: dict[str, Any] = {}

    def run(self) -> None:
        for sequence in range(OPERATIONS_PER_CLIENT_MAX):
            if self.stop_event.is_set():
                return
            choice = self.rng.random()
            key = f"reg-{self.rng.randrange(REGISTERS)}"
            if choice < 0.35:
                self._put(key, f"{self.number}-{sequence}")
            elif choice < 0.5:
                self._cas(key, f"{self.number}-{sequence}")
            elif choice < 0.8:
                self._get(key)
            else:
                self._ledger(f"ledger-{self.number}-{sequence}")

    def _record(self, op: str, key: str, value: Any, expected: Any, invoke: int,
                outcome: str, result: Any = None) -> None:
        """outcome: 'ok', 'failed' (definitely no effect) or 'unknown'."""
        if outcome == "unknown":
            if op != "get":  # a read without an answer had no effect: drop it
                self.unknown_writes += 1
                self.history.append(HistoryEvent(self.number, op, key, value, expected, invoke,
                                                 None, None, None))
            return
        ok = outcome == "ok"
        self.history.append(HistoryEvent(self.number, op, key, value, expected, invoke,
                                         _now_ms(), ok, result))
        if ok and op != "get":
            self.write_times_ms.append(_now_ms())

    def _put(self, key: str, value: str) -> None:
        invoke = _now_ms()
        try:
            self.client.put_item(TableName=TABLE, Item={"pk": {"S": key}, "v": {"S": value}})
        except Exception:
            self._record("put", key, value, None, invoke, "unknown")
            return
        self.seen[key] = value
        self._record("put", key, value, None, invoke, "ok")

    def _cas(self, key: str, value: str) -> None:
        expected = self.seen.get(key)
        condition: dict[str, Any] = ({"ConditionExpression": "attribute_not_exists(pk)"}
                                     if expected is None else
                                     {"ConditionExpression": "v = :e",
                                      "ExpressionAttributeValues": {":e": {"S": expected}}})
        invoke = _now_ms()
        try:
            self.client.put_item(TableName=TABLE, Item={"pk": {"S": key}, "v": {"S": value}},
                                 **condition)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                self._record("cas", key, value, expected, invoke, "failed")
                return
            self._record("cas", key, value, expected, invoke, "unknown")
            return
        except Exception:
            self._record("cas", key, value, expected, invoke, "unknown")
            return
        self.seen[key] = value
        self._record("cas", key, value, expected, invoke, "ok")

    def _get(self, key: str) -> None:
        invoke = _now_ms()
        try:
            item = self.client.get_item(TableName=TABLE, Key={"pk": {"S": key}},
                                        ConsistentRead=True).get("Item")
        except Exception:
            self._record("get", key, None, None, invoke, "unknown")
            return
        value = item["v"]["S"] if item else None
        self.seen[key] = value
        self._record("get", key, None, None, invoke, "ok", value)

    def _ledger(self, key: str) -> None:
        try:
            self.client.put_item(TableName=TABLE, Item={"pk": {"S": key}, "v": {"S": "1"}})
        except Exception:
            self.unknown_writes += 1
            return
        self.ledger.append(key)
        self.write_times_ms.append(_now_ms())


def _wait_healthy(client: Any, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            client.get_item(TableName=TABLE, Key={"pk": {"S": "reg-0"}}, ConsistentRead=True)
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"cluster did not recover within {deadline_s} s")


def _kill_and_restart(data_dir: str, rng: random.Random, report: ChaosReport,
                      started: float) -> None:
    node = rng.randrange(1, 4)
    pid = local.running_pids(data_dir).get(f"node-{node}")
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        report.kills.append((round(time.monotonic() - started, 2), node))
    time.sleep(rng.uniform(*DOWN_TIME_S))
    local.start_node(data_dir, node)


def run_chaos(seconds: float, seed: int, data_dir: str, base_port: int) -> ChaosReport:
    rng = random.Random(seed)
    report = ChaosReport(seconds=seconds, seed=seed)
    endpoint = local.cluster_up(data_dir, nodes=3, azs=3, base_port=base_port)[0]
    stop = threading.Event()
    workers: list[_Worker] = []
    try:
        admin = _client(endpoint)
        admin.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                           AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                           BillingMode="PAY_PER_REQUEST")
        _wait_healthy(admin, RECOVERY_WAIT_S_MAX)
        workers = [_Worker(n, endpoint, seed, stop) for n in range(CLIENTS)]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        while time.monotonic() - started < seconds:
            time.sleep(min(rng.uniform(*KILL_INTERVAL_S),
                           max(0.0, seconds - (time.monotonic() - started))))
            if time.monotonic() - started < seconds:
                _kill_and_restart(data_dir, rng, report, started)
        ended_ms = _now_ms()
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        _wait_healthy(admin, RECOVERY_WAIT_S_MAX)
        _final_checks(admin, workers, report, int(started * 1000), ended_ms)
    finally:
        stop.set()
        local.cluster_down(data_dir)
    return report


def _final_checks(admin: Any, workers: list[_Worker], report: ChaosReport, started_ms: int,
                  ended_ms: int) -> None:
    history = [event for worker in workers for event in worker.history]
    for register in range(REGISTERS):  # a final strong read joins each register's history
        key = f"reg-{register}"
        invoke = _now_ms()
        item = admin.get_item(TableName=TABLE, Key={"pk": {"S": key}}, ConsistentRead=True)
        value = item["Item"]["v"]["S"] if "Item" in item else None
        history.append(HistoryEvent(-1, "get", key, None, None, invoke, _now_ms(), True, value))
    verdict = check_history(history)
    report.linearizability = verdict.verdict
    report.linearizability_explanation = verdict.explanation if not verdict.ok else ""
    report.operations = len(history)
    ledger = [key for worker in workers for key in worker.ledger]
    report.ledger_acknowledged = len(ledger)
    for key in ledger:
        if "Item" not in admin.get_item(TableName=TABLE, Key={"pk": {"S": key}},
                                        ConsistentRead=True):
            report.ledger_missing.append(key)
    times = sorted([started_ms, ended_ms] + [t for w in workers for t in w.write_times_ms
                                             if started_ms <= t <= ended_ms])
    report.acknowledged_writes = len(times) - 2
    report.unknown_writes = sum(worker.unknown_writes for worker in workers)
    report.write_unavailability_s_max = max(b - a for a, b in zip(times, times[1:])) / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    parser.add_argument("--base-port", type=int, default=23_000)
    parser.add_argument("--data-dir", default=None, help="default: a new temporary directory")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="triplica-chaos-")
    report = run_chaos(args.seconds, args.seed, data_dir, args.base_port)
    print(json.dumps({**report.__dict__, "ok": report.ok}, indent=2))
    print(f"replay: python -m triplica.ops.chaos --seconds {args.seconds:g} --seed {args.seed}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
