"""`triplica serve --replicas 3`: three replicas per partition in one process.

CRUD, Query and Scan through boto3 (strongly and eventually consistent reads).
Power-off under write load is in test_durability.py, parametrized over 1 and 3
replicas.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.integration.conftest import make_table
from tests.integration.server import ServerProcess

@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(str(tmp_path_factory.mktemp("replicated")), "--replicas", "3").start()
    yield process
    process.stop()


def test_crud_and_queries_with_three_replicas(replicated: ServerProcess) -> None:
    ddb = replicated.client()
    table = make_table(ddb)
    for i in range(20):
        ddb.put_item(TableName=table, Item={"pk": {"S": "p"}, "sk": {"S": f"s{i:02d}"}, "n": {"N": str(i)}})
    key = {"pk": {"S": "p"}, "sk": {"S": "s03"}}
    assert ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["n"] == {"N": "3"}
    assert ddb.get_item(TableName=table, Key=key)["Item"]["n"] == {"N": "3"}
    updated = ddb.update_item(TableName=table, Key=key, UpdateExpression="SET n = n + :one",
                              ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="ALL_NEW")
    assert updated["Attributes"]["n"] == {"N": "4"}
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.put_item(TableName=table, Item={"pk": {"S": "p"}, "sk": {"S": "s03"}},
                     ConditionExpression="attribute_not_exists(pk)")
    ddb.delete_item(TableName=table, Key={"pk": {"S": "p"}, "sk": {"S": "s00"}})
    for consistent in (True, False):
        page = ddb.query(TableName=table, KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
                         ExpressionAttributeValues={":p": {"S": "p"}, ":a": {"S": "s00"}, ":b": {"S": "s05"}},
                         ConsistentRead=consistent)
        assert [item["sk"]["S"] for item in page["Items"]] == ["s01", "s02", "s03", "s04", "s05"]
        scanned = ddb.scan(TableName=table, ConsistentRead=consistent)
        assert scanned["Count"] == 19
    batch = ddb.batch_get_item(RequestItems={table: {"Keys": [key, {"pk": {"S": "p"}, "sk": {"S": "s09"}}],
                                                     "ConsistentRead": True}})
    assert len(batch["Responses"][table]) == 2
    assert ddb.describe_table(TableName=table)["Table"]["TableName"] == table
    ddb.delete_table(TableName=table)
