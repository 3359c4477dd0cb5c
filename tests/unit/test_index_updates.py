"""UpdateTable's GlobalSecondaryIndexUpdates rules on a table definition
(engine/operations/index_updates.py): the ones a live server makes racy to test, as an
index's creation may end at any moment."""
from __future__ import annotations

import copy

import pytest

from triplica.engine.catalogue import TableInfo
from triplica.engine.index_definitions import ACTIVE, CREATING, DELETING, GLOBAL, IndexInfo
from triplica.engine.operations.index_updates import apply_index_updates
from triplica.errors import LimitExceededException, ResourceInUseException

TABLE = TableInfo(name="t", table_id="id", region="us-east-1", hash_key="pk", hash_type="S",
                  range_key=None, range_type=None,
                  attribute_definitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                         {"AttributeName": "g", "AttributeType": "S"}],
                  billing_mode="PAY_PER_REQUEST", read_units=0, write_units=0,
                  creation_time=0.0)
NEW = {"IndexName": "by_h", "KeySchema": [{"AttributeName": "h", "KeyType": "HASH"}],
       "Projection": {"ProjectionType": "ALL"}}


def _table(status: str) -> TableInfo:
    info = copy.deepcopy(TABLE)
    info.global_indexes = [IndexInfo("by_g", GLOBAL, [("g", "S")], [], "ALL", status=status)]
    return info


def _create(info: TableInfo) -> list[IndexInfo]:
    return apply_index_updates(info, {"AttributeDefinitions": [
        {"AttributeName": "h", "AttributeType": "S"}],
        "GlobalSecondaryIndexUpdates": [{"Create": NEW}]}, "PAY_PER_REQUEST")


@pytest.mark.parametrize("status", [CREATING, DELETING])
def test_one_index_created_or_deleted_at_a_time(status: str) -> None:
    info = _table(status)
    with pytest.raises(LimitExceededException, match="Only 1 online index"):
        _create(info)
    with pytest.raises((LimitExceededException, ResourceInUseException)):
        apply_index_updates(info, {"GlobalSecondaryIndexUpdates": [
            {"Delete": {"IndexName": "by_g"}}]}, "PAY_PER_REQUEST")


def test_a_created_index_is_creating_and_backfilling_with_its_attributes_defined() -> None:
    info = _table(ACTIVE)
    [created] = _create(info)
    assert (created.status, created.backfilling) == (CREATING, True)
    assert info.global_indexes[-1] is created
    assert {"AttributeName": "h", "AttributeType": "S"} in info.attribute_definitions
