"""The metadata system's pure parts and the catalogue follower, without a cluster.

- catalogue_log: records round-trip, unknown records are refused, a table's
  routing map follows its partitions;
- planning: DynamoDB's table handlers run against the PlanningDatabase
  record exactly the change they make (and nothing on a refused request);
- catalogue_follower: a node's Database follows a log in epoch order, keeps
  its epoch across a restart, skips re-delivered records, refuses a gap.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from triplica.engine.operations import tables  # noqa: F401  (registers the handlers)
from triplica.engine.operations.service import OPERATIONS, Service
from triplica.engine.catalogue import HASH_SPACE_END, TableInfo
from triplica.engine.database import Database
from triplica.errors import ResourceInUseException, ValidationException
from triplica.metadata import catalogue_log
from triplica.metadata.catalogue_follower import CatalogueFollower
from triplica.metadata.planning import PlanningDatabase


def _create_request(name: str, wcu: int = 5) -> dict[str, Any]:
    return {"TableName": name, "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": wcu}}


def _placement(group: str) -> list[int]:
    return [1, 2, 3]


def _plan(db: Database, operation: str, request: dict[str, Any]) -> tuple[Any, list[dict]]:
    planning = PlanningDatabase(db, _placement)
    result = OPERATIONS[operation](Service(planning), request)  # type: ignore[arg-type]
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return result, planning.changes()


def test_records_round_trip_and_unknown_records_are_refused() -> None:
    change = catalogue_log.delete_table("orders")
    assert catalogue_log.decode_change(catalogue_log.encode_change(change)) == change
    assert catalogue_log.epoch_of_key(catalogue_log.log_key(12345)) == 12345
    assert catalogue_log.log_key(2) > catalogue_log.log_key(1)  # scans return epoch order
    with pytest.raises(AssertionError):
        catalogue_log.encode_change({"op": "drop_everything"})
    with pytest.raises(AssertionError):
        catalogue_log.log_key(0)


def test_create_is_planned_with_partitions_by_capacity(tmp_path: Any) -> None:
    db = Database(str(tmp_path))
    answer, changes = _plan(db, "CreateTable", _create_request("orders", wcu=2500))
    assert answer["TableDescription"]["TableStatus"] == "CREATING"
    assert [c["op"] for c in changes] == ["put_table"]
    info = TableInfo.from_json(dict(changes[0]["info"]))
    assert info.status == "CREATING" and len(info.partitions) == 3  # ceil(2500 / 1000)
    assert info.partitions[0].hash_start == 0 and info.partitions[-1].hash_end == HASH_SPACE_END
    assert len({p.group for p in info.partitions}) == 3
    assert all(p.members == [1, 2, 3] for p in info.partitions)
    routing = catalogue_log.map_change_of(7, changes[0])
    assert routing["epoch"] == 7 and routing["table"] == "orders"
    assert [p["start"] for p in routing["map"]["partitions"]] == \
        [p.hash_start for p in info.partitions]
    assert db.tables == {}  # planning changed nothing
    db_close(db)


def db_close(db: Database) -> None:
    asyncio.run(db.close())


def test_refused_requests_plan_nothing(tmp_path: Any) -> None:
    db = Database(str(tmp_path))
    follower = CatalogueFollower(db, _log_fetch([]))
    _, changes = _plan(db, "CreateTable", _create_request("orders"))
    asyncio.run(_apply_all(follower, changes, first_epoch=1))
    planning = PlanningDatabase(db, _placement)
    with pytest.raises(ResourceInUseException):
        OPERATIONS["CreateTable"](Service(planning), _create_request("orders"))
    with pytest.raises(ValidationException):
        OPERATIONS["UpdateTable"](Service(planning), {
            "TableName": "orders",
            "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 1}})
    assert planning.changes() == []
    db_close(db)


def _log_fetch(log: list[tuple[int, dict]]) -> Any:
    async def fetch(after: int) -> list[tuple[int, dict]]:
        return [(epoch, change) for epoch, change in log if epoch > after][:2]
    return fetch


async def _apply_all(follower: CatalogueFollower, changes: list[dict], first_epoch: int) -> None:
    log = [(first_epoch + i, c) for i, c in enumerate(changes)]
    follower.fetch = _log_fetch(log)
    await follower.catch_up()


def test_follower_applies_in_order_and_survives_a_restart(tmp_path: Any) -> None:
    db = Database(str(tmp_path))
    log: list[tuple[int, dict]] = []

    def commit(operation: str, request: dict[str, Any]) -> None:
        _, changes = _plan(db, operation, request)
        for change in changes:
            log.append((len(log) + 1, change))
        asyncio.run(CatalogueFollower(db, _log_fetch(log)).catch_up())

    commit("CreateTable", _create_request("orders", wcu=1500))
    commit("CreateTable", _create_request("customers"))
    commit("UpdateTable", {"TableName": "orders",
                           "ProvisionedThroughput": {"ReadCapacityUnits": 9,
                                                     "WriteCapacityUnits": 1500}})
    commit("DeleteTable", {"TableName": "customers"})
    assert db.catalogue.epoch == 4
    assert sorted(db.tables) == ["orders"]
    assert db.tables["orders"].info.read_units == 9
    assert len(db.tables["orders"].partitions) == 2
    db_close(db)

    reopened = Database(str(tmp_path))  # the epoch is in the same durable write as the tables
    assert reopened.catalogue.epoch == 4 and sorted(reopened.tables) == ["orders"]
    follower = CatalogueFollower(reopened, _log_fetch(log + log))  # re-delivered: skipped
    assert asyncio.run(follower.catch_up()) == 4 and follower.applied_changes == 0
    gap = [(6, catalogue_log.delete_table("orders"))]
    with pytest.raises(AssertionError, match="gap"):
        asyncio.run(CatalogueFollower(reopened, _log_fetch(gap)).catch_up())
    assert sorted(reopened.tables) == ["orders"]
    db_close(reopened)
