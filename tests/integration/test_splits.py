"""A table grows through several size splits under concurrent writes (boto3, real server).

`triplica serve --split-size-bytes` is set small so a few hundred kilobytes
of items split the table's single partition again and again while four
writers keep writing with one attempt per request (an error would surface,
none may). Then every acknowledged item must be there exactly once: by
Scan (small pages, strong and eventual), by parallel Scan segments and by
GetItem; and again after a kill -9 and restart.
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import boto3
from botocore.config import Config

from tests.integration.server import ServerProcess

SPLIT_BYTES = 120_000
WRITERS = 4
ITEMS_PER_WRITER = 250
PAD = "x" * 900
SPLITS_WAIT_S = 30.0


def one_attempt_client(process: ServerProcess) -> Any:
    """No SDK retry at all: an error during a split would reach the test."""
    return boto3.client("dynamodb", endpoint_url=process.endpoint, region_name="us-east-1",
                        aws_access_key_id="AKIDTEST", aws_secret_access_key="secret",
                        config=Config(retries={"total_max_attempts": 1}, read_timeout=30))


def partitions_of(data_dir: str, table: str) -> int:
    with open(os.path.join(data_dir, "node-1", "catalog.json")) as file:
        tables = json.load(file)["tables"]
    return len(next(t for t in tables if t["name"] == table)["partitions"])


def scan_keys(ddb: Any, **extra: Any) -> list[str]:
    keys, start = [], None
    for _ in range(10_000):
        page = ddb.scan(TableName="grow", **extra, **({"ExclusiveStartKey": start} if start else {}))
        keys += [item["pk"]["S"] for item in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if start is None:
            return sorted(keys)
    raise AssertionError("scan did not end")


def check_all(ddb: Any, acked: set[str]) -> None:
    expected = sorted(acked)
    assert scan_keys(ddb, Limit=13) == expected
    assert scan_keys(ddb, ConsistentRead=True, Limit=50) == expected
    segments = [scan_keys(ddb, Segment=s, TotalSegments=4) for s in range(4)]
    assert sorted(k for segment in segments for k in segment) == expected
    for key in expected:
        item = ddb.get_item(TableName="grow", Key={"pk": {"S": key}}, ConsistentRead=True)["Item"]
        assert item["pad"]["S"] == PAD


def test_a_table_grows_through_splits_under_writes(tmp_path) -> None:
    process = ServerProcess(str(tmp_path), "--split-size-bytes", str(SPLIT_BYTES)).start()
    try:
        ddb = one_attempt_client(process)
        ddb.create_table(TableName="grow", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        assert partitions_of(str(tmp_path), "grow") == 1
        acked: set[str] = set()
        errors: list[str] = []
        lock = threading.Lock()

        def writer(number: int) -> None:
            client = one_attempt_client(process)
            for i in range(ITEMS_PER_WRITER):
                key = f"w{number}-{i}"
                try:
                    client.put_item(TableName="grow", Item={"pk": {"S": key}, "pad": {"S": PAD}})
                except Exception as error:  # any error is a failure of the split
                    errors.append(repr(error))
                    continue
                with lock:
                    acked.add(key)
                time.sleep(0.002)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors[:3]
        deadline = time.monotonic() + SPLITS_WAIT_S
        while partitions_of(str(tmp_path), "grow") < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        grown = partitions_of(str(tmp_path), "grow")
        assert grown >= 4, grown
        check_all(ddb, acked)
        description = ddb.describe_table(TableName="grow")["Table"]
        assert description["ItemCount"] == len(acked)
        process.kill()
        process = ServerProcess(str(tmp_path), "--split-size-bytes", str(SPLIT_BYTES)).start()
        check_all(process.client(), acked)
        assert partitions_of(str(tmp_path), "grow") >= grown
    finally:
        process.stop()


def test_kill_during_splits_loses_no_acknowledged_write(tmp_path) -> None:
    process = ServerProcess(str(tmp_path), "--split-size-bytes", str(SPLIT_BYTES // 2)).start()
    acked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()
    try:
        ddb = one_attempt_client(process)
        ddb.create_table(TableName="grow", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])

        def writer(number: int) -> None:
            client = one_attempt_client(process)
            for i in range(5_000):
                if stop.is_set():
                    return
                key = f"w{number}-{i}"
                try:
                    client.put_item(TableName="grow", Item={"pk": {"S": key}, "pad": {"S": PAD}})
                except Exception:
                    continue  # after the kill: outcome unknown, not counted
                with lock:
                    acked.add(key)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + SPLITS_WAIT_S
        while partitions_of(str(tmp_path), "grow") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert partitions_of(str(tmp_path), "grow") >= 3
        process.kill()  # mid-stream, with the next split likely under way
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        with lock:
            survivors = set(acked)
        process = ServerProcess(str(tmp_path), "--split-size-bytes", str(SPLIT_BYTES // 2)).start()
        found = set(scan_keys(process.client(), ConsistentRead=True))
        assert survivors <= found, sorted(survivors - found)[:5]
        assert len(scan_keys(process.client())) == len(found)  # nothing twice
    finally:
        stop.set()
        process.stop()


def test_reads_and_batches_during_splits_never_fail(tmp_path) -> None:
    """Requests planned on the router's map from before a split: a strongly
    consistent Scan slice once reached a node holding both children, each led from
    another node, and the two nodes named each other's leader until the router gave
    up with a 500; a batch whose every sub-batch found its partition split answered
    500 although nothing had run. Scans of both kinds, BatchGetItem and
    BatchWriteItem run one attempt each while a table splits a dozen times; a
    batch may hand keys back unprocessed, never fail."""
    process = ServerProcess(str(tmp_path), "--split-size-bytes", "300", "--sync", "none").start()
    try:
        ddb = one_attempt_client(process)
        ddb.create_table(TableName="grow", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        failures: list[str] = []
        calls = [0]
        done = threading.Event()
        keys = [{"pk": {"S": f"k{i}"}} for i in range(40)]

        def scan(client: Any, consistent: bool, _: int) -> None:
            client.scan(TableName="grow", ConsistentRead=consistent, Select="COUNT")

        def batch_get(client: Any, consistent: bool, _: int) -> None:
            client.batch_get_item(RequestItems={"grow": {"Keys": keys,
                                                         "ConsistentRead": consistent}})

        def batch_write(client: Any, _: bool, round_number: int) -> None:
            client.batch_write_item(RequestItems={"grow": [
                {"PutRequest": {"Item": {"pk": {"S": f"b{round_number}-{i}"}}}}
                for i in range(25)]})

        def repeat(call: Any, consistent: bool) -> None:
            client = one_attempt_client(process)
            round_number = 0
            while not done.is_set():
                try:
                    call(client, consistent, round_number)
                except Exception as error:  # any error is a failure of the split
                    failures.append(f"{call.__name__}: {error!r}")
                calls[0] += 1
                round_number += 1

        threads = [threading.Thread(target=repeat, args=work) for work in (
            (scan, True), (scan, False), (batch_get, True), (batch_get, False),
            (batch_write, False))]
        for thread in threads:
            thread.start()
        try:
            for key in keys:
                ddb.put_item(TableName="grow", Item={**key, "pad": {"S": "p" * 60}})
            deadline = time.monotonic() + SPLITS_WAIT_S
            while partitions_of(str(tmp_path), "grow") < 12 and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            done.set()
            for thread in threads:
                thread.join(timeout=60)
        assert partitions_of(str(tmp_path), "grow") >= 12
        assert not failures, (len(failures), calls[0], failures[:3])
        found = ddb.batch_get_item(RequestItems={"grow": {"Keys": keys,
                                                          "ConsistentRead": True}})
        assert len(found["Responses"]["grow"]) + len(
            found.get("UnprocessedKeys", {}).get("grow", {}).get("Keys", [])) == 40
    finally:
        process.stop()
