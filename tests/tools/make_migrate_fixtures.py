"""Make the data directories of the previous release that tests/integration/test_migrate.py migrates.

The fixtures are directories written by the release before the one engine
(commit 092fafc: one catalogue, `catalog.json`, for the whole server;
`--replicas 1` partitions as WAL + LMDB, `--replicas 3` partitions as a Paxos
group of three replicas az-a/az-b/az-c). CI has only the current checkout,
so they are made once with this script and committed as one tarball,
tests/integration/fixtures/migrate-092fafc.tar.xz. To remake it:

    git worktree add --detach /tmp/old-release 092fafc
    cd /tmp/old-release && python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'
    cd -  # back to this checkout
    /tmp/old-release/.venv/bin/python tests/tools/make_migrate_fixtures.py \\
        --old-release /tmp/old-release --out tests/integration/fixtures/migrate-092fafc.tar.xz

It runs the old release's `triplica serve` (its own venv's Python, its own
source tree) and talks to it over HTTP with the DynamoDB JSON protocol, so it
needs nothing of the current code. Four directories:

- replicas1: `--replicas 1`; four tables (hash-only and composite keys of
  types S, N and B, on-demand and provisioned, tags; the provisioned table
  with 2,500 WCU starts with three partitions), items with every attribute
  type, overwrites, updates and deletes; stopped with SIGTERM.
- replicas3: the same with `--replicas 3` and `--split-size-bytes 40000`, so
  the biggest table has split into several partitions (one Paxos group each).
- replicas1-killed, replicas3-killed: a power cut. After phase A the writes
  stop and each replica's LMDB store is copied (a consistent LMDB copy);
  phase B writes more (acknowledged: overwrites, deletes, new items); phase C
  runs writers in four threads and the server is killed with SIGKILL
  mid-write. Then every store copied after phase A is put back in place of
  the live one: what a power cut may leave, since LMDB is written without
  fsync and the WAL / Paxos log is the durability point. So every write of
  phases B and C lives only in the WAL (replicas 1) or the Paxos logs
  (replicas 3), and a write in flight at the kill may or may not have
  happened.

Each directory comes with `expected.json` (outside the data directory):
every table's definition as DescribeTable answered it, the items every
acknowledged write implies, and for each key written in flight at the kill
the images it may have (null: absent). Before it is written, the script
checks it against the old release itself: a throwaway copy of each directory
is served again and scanned, and must agree.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Any

AUTH = ("AWS4-HMAC-SHA256 Credential=AKID/20260101/{region}/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64)
START_S_MAX = 30.0
REQUEST_S_MAX = 30.0
SPLIT_SIZE_BYTES = 40_000
SPLIT_SETTLE_S = 4.0
SPLIT_WAIT_S_MAX = 90.0
KILL_WRITERS = 4
KILL_AFTER_WRITES = 60
REGION = "eu-west-1"

TABLES: list[dict[str, Any]] = [
    {"TableName": "users", "BillingMode": "PAY_PER_REQUEST",
     "KeySchema": [{"AttributeName": "user", "KeyType": "HASH"}],
     "AttributeDefinitions": [{"AttributeName": "user", "AttributeType": "S"}],
     "Tags": [{"Key": "env", "Value": "fixture"}, {"Key": "owner", "Value": "migrate"}]},
    {"TableName": "events", "BillingMode": "PROVISIONED",
     "ProvisionedThroughput": {"ReadCapacityUnits": 10, "WriteCapacityUnits": 5},
     "KeySchema": [{"AttributeName": "device", "KeyType": "HASH"},
                   {"AttributeName": "ts", "KeyType": "RANGE"}],
     "AttributeDefinitions": [{"AttributeName": "device", "AttributeType": "S"},
                              {"AttributeName": "ts", "AttributeType": "N"}],
     "Tags": [{"Key": "cost-centre", "Value": "42"}]},
    {"TableName": "blobs", "BillingMode": "PROVISIONED",
     "ProvisionedThroughput": {"ReadCapacityUnits": 100, "WriteCapacityUnits": 2500},
     "KeySchema": [{"AttributeName": "digest", "KeyType": "HASH"}],
     "AttributeDefinitions": [{"AttributeName": "digest", "AttributeType": "B"}]},
    {"TableName": "scores", "BillingMode": "PAY_PER_REQUEST",
     "KeySchema": [{"AttributeName": "game", "KeyType": "HASH"},
                   {"AttributeName": "player", "KeyType": "RANGE"}],
     "AttributeDefinitions": [{"AttributeName": "game", "AttributeType": "N"},
                              {"AttributeName": "player", "AttributeType": "B"}],
     "Tags": [{"Key": "big", "Value": "yes"}]},
]
KEYS = {t["TableName"]: [k["AttributeName"] for k in t["KeySchema"]] for t in TABLES}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ----------------------------------------------------------------- the old server

class OldServer:
    """One `triplica serve` process of the old release."""

    def __init__(self, old_release: str, data_dir: str, replicas: int) -> None:
        self.port = _free_port()
        command = [os.path.join(old_release, ".venv", "bin", "python"), "-m", "triplica.cli",
                   "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--data-dir", data_dir, "--replicas", str(replicas)]
        if replicas == 3:
            command += ["--split-size-bytes", str(SPLIT_SIZE_BYTES)]
        self.process = subprocess.Popen(command, cwd=old_release, stdout=subprocess.PIPE,
                                        text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert "listening" in line, line
        deadline = time.monotonic() + START_S_MAX
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the old server did not accept connections")

    def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/", data=json.dumps(body).encode(), method="POST",
            headers={"X-Amz-Target": "DynamoDB_20120810." + operation,
                     "Content-Type": "application/x-amz-json-1.0",
                     "Authorization": AUTH.format(region=REGION)})
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_S_MAX) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{operation}: {error.code} {error.read()!r}") from None

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- the workload

class Model:
    """What every acknowledged write implies, and the writes whose answer never came."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, dict]] = {t["TableName"]: {} for t in TABLES}
        self.uncertain: dict[str, dict[str, list]] = {t["TableName"]: {} for t in TABLES}
        self.lock = threading.Lock()

    @staticmethod
    def key_of(table: str, item: dict) -> str:
        return json.dumps({name: item[name] for name in KEYS[table]}, sort_keys=True)

    def put(self, server: OldServer, table: str, item: dict) -> None:
        self._write(table, item, item,
                    lambda: server.call("PutItem", {"TableName": table, "Item": item}))

    def delete(self, server: OldServer, table: str, key: dict) -> None:
        self._write(table, key, None,
                    lambda: server.call("DeleteItem", {"TableName": table, "Key": key}))

    def update(self, server: OldServer, table: str, key: dict, expression: str,
               values: dict) -> None:
        answer = server.call("UpdateItem", {
            "TableName": table, "Key": key, "UpdateExpression": expression,
            "ExpressionAttributeValues": values, "ReturnValues": "ALL_NEW"})
        with self.lock:
            self.items[table][self.key_of(table, key)] = answer["Attributes"]

    def _write(self, table: str, key: dict, after: dict | None, send: Any) -> None:
        name = self.key_of(table, key)
        with self.lock:
            before = self.items[table].get(name)
            self.uncertain[table][name] = [before, after]
        send()
        with self.lock:
            del self.uncertain[table][name]
            if after is None:
                self.items[table].pop(name, None)
            else:
                self.items[table][name] = after


def every_type_item(rng: random.Random, user: str) -> dict:
    """An item of `users` holding each attribute type DynamoDB has."""
    return {
        "user": {"S": user},
        "name": {"S": f"name of {user} \u00e9\u00e8 \u2603"},
        "age": {"N": str(rng.randint(1, 99))},
        "balance": {"N": "12345678901234567890.123456789012345678"},
        "tiny": {"N": "-0." + "0" * 129 + "1"},  # -1E-130, as the server writes it
        "avatar": {"B": b64(rng.randbytes(rng.randint(1, 64)))},
        "tags": {"SS": sorted({f"t{rng.randint(0, 9)}" for _ in range(3)})},
        "lucky": {"NS": sorted({str(rng.randint(-50, 50)) for _ in range(3)})},
        "keys": {"BS": sorted({b64(rng.randbytes(4)) for _ in range(2)})},
        "profile": {"M": {"city": {"S": "Lyon"}, "zip": {"N": "69001"},
                          "nested": {"M": {"deep": {"L": [{"S": "x"}, {"N": "1"}, {"NULL": True}]}}}}},
        "history": {"L": [{"N": "1"}, {"S": "two"}, {"B": b64(b"three")}, {"BOOL": False},
                          {"M": {}}, {"L": []}]},
        "active": {"BOOL": rng.random() < 0.5},
        "nothing": {"NULL": True},
        "empty": {"S": ""},
    }


def phase_a(server: OldServer, model: Model, rng: random.Random, scores: int) -> None:
    for n in range(20):
        model.put(server, "users", every_type_item(rng, f"user-{n:03d}"))
    for device in ("d1", "d2", "d3"):
        for ts in range(8):
            model.put(server, "events", {"device": {"S": device}, "ts": {"N": str(1_700_000_000 + ts)},
                                         "reading": {"N": f"{rng.randint(0, 1000)}.5"},
                                         "ok": {"BOOL": True}})
    for n in range(30):
        model.put(server, "blobs", {"digest": {"B": b64(bytes([n]) * 8)},
                                    "body": {"B": b64(rng.randbytes(100))}})
    for n in range(scores):
        model.put(server, "scores", {"game": {"N": str(n % 7)}, "player": {"B": b64(n.to_bytes(4, "big"))},
                                     "points": {"N": str(rng.randint(0, 10**6))},
                                     "note": {"S": "x" * rng.randint(50, 250)}})
    for n in range(0, 20, 5):
        model.delete(server, "users", {"user": {"S": f"user-{n:03d}"}})
    model.delete(server, "events", {"device": {"S": "d2"}, "ts": {"N": "1700000003"}})
    model.update(server, "users", {"user": {"S": "user-001"}}, "SET age = age + :one, extra = :m",
                 {":one": {"N": "1"}, ":m": {"M": {"k": {"SS": ["a", "b"]}}}})
    model.update(server, "events", {"device": {"S": "d1"}, "ts": {"N": "1700000001"}},
                 "REMOVE ok ADD hits :n", {":n": {"N": "3"}})


def phase_b(server: OldServer, model: Model, rng: random.Random) -> None:
    """Acknowledged writes made after the stores were copied (killed fixtures)."""
    for n in range(20, 30):
        model.put(server, "users", every_type_item(rng, f"user-{n:03d}"))
    model.put(server, "users", every_type_item(rng, "user-002"))  # overwrite
    model.delete(server, "users", {"user": {"S": "user-003"}})
    model.delete(server, "blobs", {"digest": {"B": b64(bytes([7]) * 8)}})
    model.update(server, "events", {"device": {"S": "d3"}, "ts": {"N": "1700000002"}},
                 "SET reading = :r", {":r": {"N": "-0.25"}})


def phase_c_writer(server: OldServer, model: Model, writer: int, stop: threading.Event,
                   done: list[int]) -> None:
    rng = random.Random(writer)
    n = 0
    while not stop.is_set():
        try:
            key = {"device": {"S": f"c{writer}"}, "ts": {"N": str(n)}}
            if n % 5 == 4:
                model.delete(server, "events", {"device": key["device"], "ts": {"N": str(n - 2)}})
            else:
                model.put(server, "events", {**key, "reading": {"N": str(rng.randint(0, 99))}})
        except Exception:  # the kill: the write in flight stays uncertain
            return
        with model.lock:
            done[0] += 1
        n += 1


# ------------------------------------------------------------------ snapshots

def store_directories(data_dir: str) -> list[str]:
    """Every LMDB store (`items` directory) of every partition replica."""
    found = []
    for root, dirs, _ in os.walk(os.path.join(data_dir, "tables")):
        if "items" in dirs:
            found.append(os.path.join(root, "items"))
    return sorted(found)


def copy_stores(data_dir: str, into: str) -> dict[str, str]:
    """A consistent copy of every store (LMDB's own copy, while the server idles)."""
    import lmdb

    copies = {}
    for number, path in enumerate(store_directories(data_dir)):
        target = os.path.join(into, str(number))
        os.makedirs(target)
        env = lmdb.open(path, subdir=True, readonly=True, lock=True, max_dbs=2)
        try:
            env.copy(target)
        finally:
            env.close()
        copies[path] = target
    return copies


def put_back(copies: dict[str, str]) -> int:
    """The power cut: each store that still exists goes back to its copy."""
    restored = 0
    for path, copy in copies.items():
        if not os.path.isdir(path):
            continue  # a partition split meanwhile: its children never had a copy
        shutil.rmtree(path)
        os.makedirs(path)
        shutil.copy(os.path.join(copy, "data.mdb"), os.path.join(path, "data.mdb"))
        restored += 1
    return restored


def wait_for_splits(data_dir: str) -> int:
    """Until the catalogue's partition count stops changing (the split monitor is done)."""
    deadline = time.monotonic() + SPLIT_WAIT_S_MAX
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        with open(os.path.join(data_dir, "catalog.json")) as file:
            catalog = json.load(file)
        count = sum(len(t["partitions"]) for t in catalog["tables"])
        busy = any(t.get("split_intent") for t in catalog["tables"])
        if count != last or busy:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= SPLIT_SETTLE_S:
            return count
        time.sleep(0.2)
    raise RuntimeError("splits did not settle")


# ------------------------------------------------------------------- fixtures

def create_tables(server: OldServer) -> None:
    for table in TABLES:
        server.call("CreateTable", table)


def describe_all(server: OldServer) -> dict[str, dict]:
    tables = {}
    for table in TABLES:
        name = table["TableName"]
        description = server.call("DescribeTable", {"TableName": name})["Table"]
        arn = description["TableArn"]
        tags = server.call("ListTagsOfResource", {"ResourceArn": arn}).get("Tags", [])
        tables[name] = {"Description": description, "Tags": tags}
    return tables


def scan_all(server: OldServer) -> dict[str, list[dict]]:
    result = {}
    for table in TABLES:
        name, items, start = table["TableName"], [], None
        while True:
            body: dict[str, Any] = {"TableName": name, "ConsistentRead": True}
            if start is not None:
                body["ExclusiveStartKey"] = start
            page = server.call("Scan", body)
            items += page["Items"]
            start = page.get("LastEvaluatedKey")
            if start is None:
                break
        result[name] = items
    return result


def make(old_release: str, work: str, name: str, replicas: int, killed: bool) -> dict:
    data_dir = os.path.join(work, name, "data")
    os.makedirs(data_dir)
    rng = random.Random(name)
    model = Model()
    server = OldServer(old_release, data_dir, replicas)
    create_tables(server)
    phase_a(server, model, rng, scores=400 if replicas == 3 else 120)
    partitions = wait_for_splits(data_dir) if replicas == 3 else None
    tables = describe_all(server)
    if not killed:
        server.stop()
    else:
        time.sleep(1.5)  # followers apply the last commits
        copies = copy_stores(data_dir, os.path.join(work, name, "stores"))
        phase_b(server, model, rng)
        stop, done = threading.Event(), [0]
        writers = [threading.Thread(target=phase_c_writer, args=(server, model, w, stop, done))
                   for w in range(KILL_WRITERS)]
        for writer in writers:
            writer.start()
        while done[0] < KILL_AFTER_WRITES:
            time.sleep(0.001)
        server.kill()
        stop.set()
        for writer in writers:
            writer.join()
        restored = put_back(copies)
        shutil.rmtree(os.path.join(work, name, "stores"))
        print(f"{name}: killed after {done[0]} acknowledged writes, "
              f"{sum(len(u) for u in model.uncertain.values())} in flight, "
              f"{restored} stores put back", flush=True)
    expected = {"replicas": replicas, "partitions": partitions, "tables": tables,
                "items": {t: sorted(items.values(), key=lambda i: Model.key_of(t, i))
                          for t, items in model.items.items()},
                "uncertain": {t: [{"key": json.loads(k), "images": v} for k, v in u.items()]
                              for t, u in model.uncertain.items() if u}}
    check_with_old_release(old_release, data_dir, replicas, expected)
    with open(os.path.join(work, name, "expected.json"), "w") as file:
        json.dump(expected, file, indent=1, sort_keys=True)
    return expected


def check_with_old_release(old_release: str, data_dir: str, replicas: int, expected: dict) -> None:
    """Serve a copy of the directory with the old release: it must hold what we expect."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = os.path.join(scratch, "data")
        shutil.copytree(data_dir, copy)
        server = OldServer(old_release, copy, replicas)
        try:
            scanned = scan_all(server)
        finally:
            server.stop()
    for table, items in scanned.items():
        found = {Model.key_of(table, i): i for i in items}
        wanted = {Model.key_of(table, i): i for i in expected["items"][table]}
        for entry in expected.get("uncertain", {}).get(table, []):
            key = json.dumps(entry["key"], sort_keys=True)
            got = found.get(key)
            assert (None if got is None else canonical(got)) in [
                None if i is None else canonical(i) for i in entry["images"]], key
            found.pop(key, None)
            wanted.pop(key, None)
        assert set(found) == set(wanted), (table, set(found) ^ set(wanted))
        for key, item in wanted.items():
            assert canonical(found[key]) == canonical(item), (table, key, found[key], item)


def canonical(item: dict) -> dict:
    """Sets compare as sets (their order is not part of the item)."""
    def value(v: dict) -> Any:
        kind, inner = next(iter(v.items()))
        if kind in ("SS", "NS", "BS"):
            return {kind: sorted(inner)}
        if kind == "M":
            return {kind: {k: value(x) for k, x in inner.items()}}
        if kind == "L":
            return {kind: [value(x) for x in inner]}
        return v
    return {k: value(v) for k, v in item.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-release", required=True, help="a checkout of 092fafc with its .venv")
    parser.add_argument("--out", required=True, help="the tarball to write (.tar.xz)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        for name, replicas, killed in (("replicas1", 1, False), ("replicas3", 3, False),
                                       ("replicas1-killed", 1, True),
                                       ("replicas3-killed", 3, True)):
            expected = make(args.old_release, work, name, replicas, killed)
            print(f"{name}: {sum(len(i) for i in expected['items'].values())} items, "
                  f"partitions {expected['partitions']}", flush=True)
        with tarfile.open(args.out, "w:xz") as tar:
            for name in sorted(os.listdir(work)):
                tar.add(os.path.join(work, name), arcname=name)
    print(f"{args.out}: {os.path.getsize(args.out)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
