"""`triplica migrate` on data directories written by the previous release (092fafc).

The directories come from tests/integration/fixtures/migrate-092fafc.tar.xz,
made by tests/tools/make_migrate_fixtures.py with that release's own server:
`replicas1` and `replicas3` stopped cleanly (replicas3 with a table split into
several partitions), `replicas1-killed` and `replicas3-killed` killed with
SIGKILL mid-write, their LMDB stores rolled back to a copy taken earlier (a
power cut), so their last acknowledged writes are only in the WAL or the
Paxos logs. Each comes with `expected.json`: DescribeTable's answer of the
old server, every item acknowledged writes imply, and the possible images of
the writes in flight at the kill.

For each: serve refuses the directory naming the command, migrate converts
it, and a real `triplica serve` process answers boto3 with every table and
every item as before; new writes survive a restart. A second migrate refuses
and changes nothing; an interrupted migrate is finished by a rerun.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tarfile
from typing import Any

import pytest

from tests.integration.server import ServerProcess, free_port

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "migrate-092fafc.tar.xz")
NAMES = ("replicas1", "replicas3", "replicas1-killed", "replicas3-killed")
COMMAND_S_MAX = 120.0


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("fixtures"))
    with tarfile.open(FIXTURES, "r:xz") as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse odd members
            tar.extractall(root, filter="data")
        else:
            tar.extractall(root)
    return root


def fixture_copy(extracted: str, name: str, tmp_path: Any) -> tuple[str, dict]:
    data_dir = str(tmp_path / name)
    shutil.copytree(os.path.join(extracted, name, "data"), data_dir, symlinks=True)
    with open(os.path.join(extracted, name, "expected.json")) as file:
        return data_dir, json.load(file)


def triplica(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "triplica.cli", *args], capture_output=True,
                          text=True, timeout=COMMAND_S_MAX)


def tree(path: str) -> dict[str, tuple[int, int]]:
    """Every file under `path` with its size and modification time."""
    found = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            status = os.stat(full)
            found[os.path.relpath(full, path)] = (status.st_size, status.st_mtime_ns)
    return found


# ------------------------------------------------------------------ comparisons

def wire(value: dict) -> dict:
    """boto3's attribute value as DynamoDB's JSON has it (binary as base64)."""
    kind, inner = next(iter(value.items()))
    if kind == "B":
        return {kind: base64.b64encode(inner).decode()}
    if kind == "BS":
        return {kind: [base64.b64encode(b).decode() for b in inner]}
    if kind == "M":
        return {kind: {k: wire(v) for k, v in inner.items()}}
    if kind == "L":
        return {kind: [wire(v) for v in inner]}
    return value


def canonical(item: dict | None, from_boto: bool = False) -> Any:
    if item is None:
        return None

    def value(v: dict) -> Any:
        kind, inner = next(iter(v.items()))
        if kind in ("SS", "NS", "BS"):
            return {kind: sorted(inner)}
        if kind == "M":
            return {kind: {k: value(x) for k, x in inner.items()}}
        if kind == "L":
            return {kind: [value(x) for x in inner]}
        return v
    return {k: value(wire(v) if from_boto else v) for k, v in item.items()}


def key_names(description: dict) -> list[str]:
    return [k["AttributeName"] for k in description["KeySchema"]]


def key_of(item: dict, names: list[str]) -> str:
    return json.dumps({n: item[n] for n in names}, sort_keys=True)


def scan(ddb: Any, table: str) -> list[dict]:
    items, start = [], None
    while True:
        kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        if start is not None:
            kwargs["ExclusiveStartKey"] = start
        page = ddb.scan(**kwargs)
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if start is None:
            return items


def check_tables(ddb: Any, expected: dict) -> None:
    assert sorted(ddb.list_tables()["TableNames"]) == sorted(expected["tables"])
    for name, wanted in expected["tables"].items():
        old = wanted["Description"]
        new = ddb.describe_table(TableName=name)["Table"]
        assert new["TableStatus"] == "ACTIVE"
        assert new["KeySchema"] == old["KeySchema"]
        assert new["AttributeDefinitions"] == old["AttributeDefinitions"]
        assert new["BillingModeSummary"]["BillingMode"] == old["BillingModeSummary"]["BillingMode"]
        for units in ("ReadCapacityUnits", "WriteCapacityUnits"):
            assert new["ProvisionedThroughput"][units] == old["ProvisionedThroughput"][units]
        assert new["TableArn"] == old["TableArn"]
        assert new["TableId"] == old["TableId"]
        assert new["CreationDateTime"].timestamp() == pytest.approx(old["CreationDateTime"],
                                                                   abs=1e-3)
        assert new["TableClassSummary"] == old["TableClassSummary"]
        assert new["DeletionProtectionEnabled"] == old["DeletionProtectionEnabled"]
        tags = ddb.list_tags_of_resource(ResourceArn=new["TableArn"]).get("Tags", [])
        assert sorted(tags, key=str) == sorted(wanted["Tags"], key=str)


def check_items(ddb: Any, expected: dict) -> None:
    for name, wanted in expected["tables"].items():
        names = key_names(wanted["Description"])
        found = {key_of(canonical(i, True), names): canonical(i, True) for i in scan(ddb, name)}
        for entry in expected["uncertain"].get(name, []):
            key = json.dumps(entry["key"], sort_keys=True)
            assert found.pop(key, None) in [canonical(i) for i in entry["images"]], key
        definite = {key_of(i, names): canonical(i) for i in expected["items"][name]
                    if key_of(i, names) not in {json.dumps(e["key"], sort_keys=True)
                                                for e in expected["uncertain"].get(name, [])}}
        assert sorted(found) == sorted(definite), name
        for key, item in definite.items():
            assert found[key] == item, (name, key)
        for item in expected["items"][name][:5]:  # and by key, strongly consistent
            answer = ddb.get_item(TableName=name, Key={n: _boto(item[n]) for n in names},
                                  ConsistentRead=True)
            if key_of(item, names) in definite:
                assert canonical(answer["Item"], True) == canonical(item)


def _boto(value: dict) -> dict:
    kind, inner = next(iter(value.items()))
    return {kind: base64.b64decode(inner)} if kind == "B" else value


# ---------------------------------------------------------------------- tests

@pytest.mark.parametrize("name", NAMES)
def test_migrate_a_directory_of_the_previous_release(extracted: str, tmp_path: Any,
                                                     name: str) -> None:
    data_dir, expected = fixture_copy(extracted, name, tmp_path)
    replicas = ["--replicas", "1"] if expected["replicas"] == 1 else []
    before = tree(data_dir)

    refused = triplica("serve", "--port", str(free_port()), "--data-dir", data_dir, *replicas)
    assert refused.returncode == 1
    assert f"triplica migrate --data-dir {data_dir}" in refused.stderr
    assert tree(data_dir) == before

    done = triplica("migrate", "--data-dir", data_dir)
    assert done.returncode == 0, done.stderr
    for table, items in expected["items"].items():
        assert f"migrated table {table}: " in done.stdout
    if not expected["uncertain"]:
        for table, items in expected["items"].items():
            assert f"migrated table {table}: {len(items)} items" in done.stdout
    kept = [n for n in os.listdir(data_dir) if n.startswith("pre-migration-")]
    assert len(kept) == 1 and not [n for n in os.listdir(data_dir) if n.startswith(".migrating")]
    assert tree(os.path.join(data_dir, kept[0])) == before  # the old files, untouched
    assert "catalog.json" not in os.listdir(data_dir)

    server = ServerProcess(data_dir, *replicas).start()
    try:
        ddb = server.client()
        check_tables(ddb, expected)
        check_items(ddb, expected)
        if name.endswith("killed"):  # written after the stores' copy: only in the logs
            assert ddb.get_item(TableName="users", Key={"user": {"S": "user-025"}},
                                ConsistentRead=True)["Item"]["user"] == {"S": "user-025"}
            assert "Item" not in ddb.get_item(TableName="users", Key={"user": {"S": "user-003"}},
                                              ConsistentRead=True)
        ddb.put_item(TableName="users", Item={"user": {"S": "after-migration"},
                                              "n": {"N": "1"}})
        ddb.delete_item(TableName="events", Key={"device": {"S": "d1"}, "ts": {"N": "1700000000"}})
        ddb.update_item(TableName="scores", Key={"game": {"N": "1"},
                                                 "player": {"B": (1).to_bytes(4, "big")}},
                        UpdateExpression="SET points = :p", ExpressionAttributeValues={
                            ":p": {"N": "-7"}})
    finally:
        server.stop()
    server = ServerProcess(data_dir, *replicas).start()
    try:
        ddb = server.client()
        assert ddb.get_item(TableName="users", Key={"user": {"S": "after-migration"}},
                            ConsistentRead=True)["Item"]["n"] == {"N": "1"}
        assert "Item" not in ddb.get_item(TableName="events", ConsistentRead=True, Key={
            "device": {"S": "d1"}, "ts": {"N": "1700000000"}})
        assert ddb.get_item(TableName="scores", ConsistentRead=True, Key={
            "game": {"N": "1"}, "player": {"B": (1).to_bytes(4, "big")}})["Item"]["points"] == {
            "N": "-7"}
        assert len(scan(ddb, "blobs")) == len(expected["items"]["blobs"])
    finally:
        server.stop()


def test_migrate_refuses_a_migrated_directory_and_changes_nothing(extracted: str,
                                                                   tmp_path: Any) -> None:
    data_dir, _ = fixture_copy(extracted, "replicas1", tmp_path)
    assert triplica("migrate", "--data-dir", data_dir).returncode == 0
    before = tree(data_dir)
    again = triplica("migrate", "--data-dir", data_dir)
    assert again.returncode == 1
    assert "already in the current layout" in again.stderr
    assert tree(data_dir) == before


def test_migrate_refuses_empty_missing_and_unknown_directories(tmp_path: Any) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    answer = triplica("migrate", "--data-dir", str(empty))
    assert answer.returncode == 1 and "is empty" in answer.stderr
    assert os.listdir(empty) == []
    answer = triplica("migrate", "--data-dir", str(tmp_path / "missing"))
    assert answer.returncode == 1 and "does not exist" in answer.stderr
    assert not (tmp_path / "missing").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a database")
    answer = triplica("migrate", "--data-dir", str(other))
    assert answer.returncode == 1 and "not a triplica data directory" in answer.stderr
    assert os.listdir(other) == ["notes.txt"]


def test_a_rerun_starts_over_after_a_crash_while_building(extracted: str, tmp_path: Any) -> None:
    data_dir, expected = fixture_copy(extracted, "replicas1", tmp_path)
    stale = os.path.join(data_dir, ".migrating-20200101T000000Z")
    os.makedirs(os.path.join(stale, "new", "node-1"))  # cut short: no manifest
    answer = triplica("migrate", "--data-dir", data_dir)
    assert answer.returncode == 0, answer.stderr
    assert "an earlier run stopped before its new layout was complete" in answer.stdout
    assert not os.path.exists(stale)
    server = ServerProcess(data_dir, "--replicas", "1").start()
    try:
        check_items(server.client(), expected)
    finally:
        server.stop()


def test_a_rerun_finishes_a_switch_cut_short(extracted: str, tmp_path: Any) -> None:
    """A crash after the decision (the manifest), in the middle of the moves."""
    from triplica.hosting import migrate

    data_dir, expected = fixture_copy(extracted, "replicas3", tmp_path)
    manifest = migrate._build(data_dir, None, lambda line: None)
    kept = os.path.join(data_dir, migrate.KEPT_PREFIX + manifest["stamp"])
    os.makedirs(kept)
    os.rename(os.path.join(data_dir, "tables"), os.path.join(kept, "tables"))
    work = os.path.join(data_dir, migrate.WORK_PREFIX + manifest["stamp"])
    os.rename(os.path.join(work, "new", "node-1"), os.path.join(data_dir, "node-1"))
    refused = triplica("serve", "--port", str(free_port()), "--data-dir", data_dir)
    assert refused.returncode == 1 and "triplica migrate --data-dir" in refused.stderr
    answer = triplica("migrate", "--data-dir", data_dir)
    assert answer.returncode == 0, answer.stderr
    assert "finishing the migration" in answer.stdout
    assert sorted(n for n in os.listdir(data_dir) if not n.startswith("pre-")) == [
        "deployment.json", "node-1", "node-2", "node-3"]
    server = ServerProcess(data_dir).start()
    try:
        ddb = server.client()
        check_tables(ddb, expected)
        check_items(ddb, expected)
    finally:
        server.stop()
