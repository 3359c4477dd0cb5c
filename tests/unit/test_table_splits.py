"""Catalogue side of splits (engine/table_splits.py) through a real Database with three replicas.

A completed split survives a restart (the children are the table); a split
whose switch never reached the catalogue is undone at the next start (its
children's directories deleted, the parent intact), and a parent whose
deletion a crash cut short is removed.
"""
from __future__ import annotations

import os
import random
import time

from triplica.engine.catalogue import TableInfo
from triplica.engine.database import Database
from triplica.engine.table_splits import split_partition, tables_directory

from tests.unit.test_replication_driver import image, run

BOUNDARY = 1 << 63


def table_info(name: str) -> TableInfo:
    return TableInfo(name=name, table_id=f"id-{name}", region="us-east-1", hash_key="pk",
                     hash_type="S", range_key=None, range_type=None,
                     attribute_definitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     billing_mode="PAY_PER_REQUEST", read_units=0, write_units=0,
                     creation_time=time.time())


async def fill(db: Database, name: str, count: int) -> dict[bytes, bytes]:
    rng = random.Random(3)
    written = {}
    for i in range(count):
        key = rng.getrandbits(64).to_bytes(8, "big") + b"k%d" % i
        table = db.tables[name]
        await table.partition_for_hash(int.from_bytes(key[:8], "big")).propose([(key, image(f"v{i}"))])
        written[key] = image(f"v{i}")
    return written


def contents(db: Database, name: str) -> dict[bytes, bytes]:
    found: dict[bytes, bytes] = {}
    for partition in db.tables[name].partitions:
        for key, value in partition.scan(b"", None, consistent=True):
            assert key not in found, "an item in two partitions"
            found[key] = value
    return found


def test_a_completed_split_is_the_table_after_a_restart(tmp_path):
    async def scenario() -> None:
        db = Database(str(tmp_path), replicas=3)
        try:
            db.create_table(table_info("t1"))
            written = await fill(db, "t1", 120)
            parent = db.catalogue.tables["t1"].partitions[0].partition_id
            left, right = await split_partition(db, "t1", parent, BOUNDARY)
            assert [p.partition_id for p in db.catalogue.tables["t1"].partitions] == \
                [left.partition_id, right.partition_id]
            assert contents(db, "t1") == written
            assert not os.path.exists(os.path.join(tables_directory(str(tmp_path), "id-t1"), parent))
        finally:
            await db.close()
        db = Database(str(tmp_path), replicas=3)
        try:
            await db.wait_for_leaders()
            assert len(db.tables["t1"].partitions) == 2 and contents(db, "t1") == written
        finally:
            await db.close()
    run(scenario)


def test_a_split_cut_short_before_its_switch_is_undone(tmp_path):
    async def scenario() -> None:
        db = Database(str(tmp_path), replicas=3)
        try:
            db.create_table(table_info("t2"))
            written = await fill(db, "t2", 60)
            info = db.catalogue.tables["t2"]
            parent = info.partitions[0]
            # What a crash between the intent and the switch leaves behind.
            from triplica.engine.catalogue import PartitionInfo
            info.split_intent = [PartitionInfo("child-left", 0, BOUNDARY),
                                 PartitionInfo("child-right", BOUNDARY, parent.hash_end)]
            db.catalogue.save()
            directory = tables_directory(str(tmp_path), "id-t2")
            for child in info.split_intent:
                os.makedirs(os.path.join(directory, child.partition_id, "az-a"))
            os.makedirs(os.path.join(directory, "an-old-parent"))
        finally:
            await db.close()
        db = Database(str(tmp_path), replicas=3)
        try:
            await db.wait_for_leaders()
            info = db.catalogue.tables["t2"]
            assert not info.split_intent and [p.partition_id for p in info.partitions] == [parent.partition_id]
            assert sorted(os.listdir(tables_directory(str(tmp_path), "id-t2"))) == [parent.partition_id]
            assert contents(db, "t2") == written
        finally:
            await db.close()
        assert "split_intent" in open(os.path.join(tmp_path, "catalog.json")).read()
    run(scenario)


def test_a_partition_that_keeps_running_hot_splits_between_its_hot_keys(tmp_path):
    """Two hot items whose hashes sit close together (far from the midpoint)
    must end up in different partitions; limits scaled down (20 WCU) so a
    test can run a partition hot for three windows."""
    from triplica.engine.table_splits import SplitMonitor

    async def scenario() -> None:
        db = Database(str(tmp_path), replicas=3)
        try:
            db.create_table(table_info("hot"))
            monitor = SplitMonitor(db, size_bytes_max=10**12, read_units_max=10**6,
                                   write_units_max=20, window_s=0.3)
            first = (0xA000_0000_0000_0000).to_bytes(8, "big") + b"first"
            second = (0xA000_0000_0001_0000).to_bytes(8, "big") + b"second"
            written: dict[bytes, bytes] = {}
            deadline = time.monotonic() + 20
            i = 0
            await monitor.check()  # attaches the meters
            while not monitor.splits and time.monotonic() < deadline:
                for key in (first, second):
                    i += 1
                    table = db.tables["hot"]
                    await table.partition_for_hash(int.from_bytes(key[:8], "big")).propose(
                        [(key, image(f"v{i}"))])
                    written[key] = image(f"v{i}")
                if i % 20 == 0:
                    await monitor.check()
            assert monitor.splits and monitor.splits[0][0] == "consumption", monitor.splits
            boundary = monitor.splits[0][1]
            assert int.from_bytes(first[:8], "big") < boundary <= int.from_bytes(second[:8], "big")
            table = db.tables["hot"]
            assert table.partition_for_hash(int.from_bytes(first[:8], "big")) is not \
                table.partition_for_hash(int.from_bytes(second[:8], "big"))
            assert contents(db, "hot") == written
        finally:
            await db.close()
    run(scenario)
