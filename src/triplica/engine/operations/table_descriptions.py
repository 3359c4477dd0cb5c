"""What DescribeTable, CreateTable, UpdateTable and DeleteTable answer about a table.

A description's counts (ItemCount, TableSizeBytes, IndexSizeBytes) come
from this node's replicas, as DynamoDB's are estimates: a local index's
from its table's partitions (`Table.index_stats`), a global index's from
its index table's partitions (engine/index_tables.py), found by name among
the node's tables. A global index's IndexStatus and Backfilling are its
definition's (engine/index_definitions.py), which the control plane moves.
"""
from __future__ import annotations

from typing import Any, Mapping

from triplica.engine.global_index_keys import index_table_name


def describe(table: Any, tables: Mapping[str, Any], status: str | None = None) -> dict[str, Any]:
    """A TableDescription; `tables`: the node's tables by name (the index tables among
    them); `status` overrides the recorded one (an answer given before it changes)."""
    items, size = table.stats()
    description = _describe_table(table, status, items, size)
    description.update(describe_indexes(table, tables))
    return description


def describe_indexes(table: Any, tables: Mapping[str, Any]) -> dict[str, Any]:
    """LocalSecondaryIndexes / GlobalSecondaryIndexes of a description (those it has)."""
    info = table.info
    answer: dict[str, Any] = {}
    if info.local_indexes:
        answer["LocalSecondaryIndexes"] = []
        for index in info.local_indexes:
            count, size = table.index_stats(index.name)
            answer["LocalSecondaryIndexes"].append({
                "IndexName": index.name, "KeySchema": index.key_schema(),
                "Projection": index.projection(), "IndexSizeBytes": size, "ItemCount": count,
                "IndexArn": index.arn(info.arn)})
    if info.global_indexes:
        answer["GlobalSecondaryIndexes"] = []
        for index in info.global_indexes:
            index_table = tables.get(index_table_name(info.name, index.name))
            # An index table is made and deleted with its index, in the same catalogue
            # change; none here only between a planned index and its first record.
            count, size = index_table.stats() if index_table is not None else (0, 0)
            answer["GlobalSecondaryIndexes"].append({
                "IndexName": index.name, "KeySchema": index.key_schema(),
                "Projection": index.projection(), "IndexStatus": index.status,
                "Backfilling": index.backfilling,
                "ProvisionedThroughput": {"NumberOfDecreasesToday": 0,
                                          "ReadCapacityUnits": index.read_units,
                                          "WriteCapacityUnits": index.write_units},
                "IndexSizeBytes": size, "ItemCount": count, "IndexArn": index.arn(info.arn)})
    return answer


def _describe_table(table: Any, status: str | None, items: int, size: int) -> dict[str, Any]:
    info = table.info
    throughput: dict[str, Any] = {"NumberOfDecreasesToday": 0,
                                  "ReadCapacityUnits": info.read_units,
                                  "WriteCapacityUnits": info.write_units}
    if info.throughput_increased_at is not None:
        throughput["LastIncreaseDateTime"] = info.throughput_increased_at
    if info.throughput_decreased_at is not None:
        throughput["LastDecreaseDateTime"] = info.throughput_decreased_at
    billing: dict[str, Any] = {"BillingMode": info.billing_mode}
    if info.billing_mode == "PAY_PER_REQUEST":
        billing["LastUpdateToPayPerRequestDateTime"] = info.pay_per_request_since
    return {
        "AttributeDefinitions": info.attribute_definitions,
        "TableName": info.name,
        "KeySchema": info.key_schema(),
        "TableStatus": status or info.status,
        "CreationDateTime": info.creation_time,
        "ProvisionedThroughput": throughput,
        "TableSizeBytes": size,
        "ItemCount": items,
        "TableArn": info.arn,
        "TableId": info.table_id,
        "BillingModeSummary": billing,
        "TableClassSummary": {"TableClass": info.table_class},
        "DeletionProtectionEnabled": info.deletion_protection,
    }


def describe_deleting(table: Any) -> dict[str, Any]:
    """DeleteTable's answer: DynamoDB leaves out the schema, the creation time and
    the counts, and reports the table's throughput with no decreases today."""
    info = table.info
    billing: dict[str, Any] = {"BillingMode": info.billing_mode}
    if info.billing_mode == "PAY_PER_REQUEST":
        billing["LastUpdateToPayPerRequestDateTime"] = info.pay_per_request_since
    return {
        "TableName": info.name,
        "TableStatus": "DELETING",
        "TableId": info.table_id,
        "TableArn": info.arn,
        "BillingModeSummary": billing,
        "ProvisionedThroughput": {"NumberOfDecreasesToday": 0,
                                  "ReadCapacityUnits": info.read_units,
                                  "WriteCapacityUnits": info.write_units},
    }
