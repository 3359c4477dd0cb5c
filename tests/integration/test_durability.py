"""Power-off style durability: SIGKILL the server under write load, restart,
and check that every acknowledged write is there; a corrupted WAL record is
detected instead of being applied."""
from __future__ import annotations

import glob
import os
import threading
import time
from typing import Any

import pytest

from tests.integration.server import ServerProcess

WRITER_THREADS = 8
WRITES_PER_THREAD_MAX = 5000
LOAD_SECONDS = 2.0


def _create(client: Any, name: str) -> None:
    client.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        BillingMode="PAY_PER_REQUEST")


def _writer(server: ServerProcess, thread: int, acked: list, stop: threading.Event) -> None:
    client = server.client()
    for i in range(WRITES_PER_THREAD_MAX):
        if stop.is_set():
            return
        key = f"t{thread}-{i}"
        try:
            client.put_item(TableName="durable", Item={"pk": {"S": key}, "n": {"N": str(i)},
                                                       "pad": {"S": "p" * 100}})
        except Exception:  # the server died under us: this write was never acknowledged
            return
        acked.append((key, i))


@pytest.mark.parametrize("replicas,sync_mode", [("1", "batch"), ("1", "always"),
                                               ("3", "batch"), ("3", "none")])
def test_acknowledged_writes_survive_sigkill(tmp_path: Any, replicas: str, sync_mode: str) -> None:
    flags = ("--replicas", replicas, "--sync", sync_mode)
    server = ServerProcess(str(tmp_path), *flags).start()
    try:
        _create(server.client(), "durable")
        acked: list[tuple[str, int]] = []
        stop = threading.Event()
        threads = [threading.Thread(target=_writer, args=(server, t, acked, stop))
                   for t in range(WRITER_THREADS)]
        for thread in threads:
            thread.start()
        time.sleep(LOAD_SECONDS)
        server.kill()  # mid-stream: writers are still sending
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert len(acked) > 100, "the load did not get going"
    finally:
        server.kill()
    restarted = ServerProcess(str(tmp_path), *flags).start()
    try:
        client = restarted.client()
        present: dict[str, str] = {}
        for page in client.get_paginator("scan").paginate(TableName="durable", ConsistentRead=True):
            for item in page["Items"]:
                present[item["pk"]["S"]] = item["n"]["N"]
        missing = [key for key, _ in acked if key not in present]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
        assert all(present[key] == str(i) for key, i in acked)
        # The restarted server keeps accepting writes after recovery.
        client.put_item(TableName="durable", Item={"pk": {"S": "after"}, "n": {"N": "1"}})
        assert client.get_item(TableName="durable", Key={"pk": {"S": "after"}},
                               ConsistentRead=True)["Item"]
    finally:
        restarted.stop()


def test_flipped_bit_in_wal_is_detected(tmp_path: Any) -> None:
    # One copy (a group of one): with three, the damaged replica's peers hold the data and
    # repair it (see test_replicated_heal.py); alone it must refuse to start.
    server = ServerProcess(str(tmp_path), "--replicas", "1").start()
    try:
        client = server.client()
        _create(client, "durable")
        for i in range(50):
            client.put_item(TableName="durable", Item={"pk": {"S": f"k{i}"}, "v": {"S": "x" * 50}})
    finally:
        server.kill()  # no clean shutdown: the WAL still holds every record
    replicas = glob.glob(os.path.join(str(tmp_path), "node-1", "tables", "*", "*", "replica"))
    segments = sorted(glob.glob(os.path.join(replicas[0], "log", "*.wal"))) if replicas else []
    assert segments, "no WAL segment found"
    segment = segments[-1]
    with open(segment, "r+b") as f:
        data = bytearray(f.read())
        position = len(data) // 2   # inside a complete record, with records after it
        data[position] ^= 0x04
        f.seek(0)
        f.write(data)
    # Also make LMDB forget what it applied, so the WAL must be replayed in full.
    for items_dir in glob.glob(os.path.join(replicas[0], "items")):
        for name in os.listdir(items_dir):
            os.remove(os.path.join(items_dir, name))
    broken = ServerProcess(str(tmp_path), "--replicas", "1")
    with pytest.raises(RuntimeError):
        broken.start()
    assert broken.process is not None
    broken.process.wait(timeout=30)
    assert broken.process.returncode != 0
