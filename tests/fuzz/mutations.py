"""Valid requests and random damage to them.

`CORPUS` holds requests that succeed (or fail only on their condition)
against the fuzz tables; `mutated()` picks one and changes one to three
spots in it: a member deleted, renamed or duplicated, a value replaced by
JSON of another type, null, an empty container or a huge one, a string cut
or spliced. Damage next to valid structure reaches the checks that only run
after the request has passed the earlier ones.
"""
from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.shapes import attribute_values, damaged, conditions

H, R, I = "fz-hash", "fz-range", "fz-index"
KEY_H = {"pk": {"S": "k1"}}
KEY_R = {"pk": {"S": "k1"}, "sk": {"N": "1"}}
ITEM = {"pk": {"S": "k1"}, "sk": {"N": "1"}, "a": {"N": "5"}, "s": {"SS": ["x", "y"]},
        "l": {"L": [{"S": "p"}, {"N": "2"}]}, "m": {"M": {"n": {"BOOL": True}}},
        "b": {"B": "AAEC"}}

CORPUS: list[tuple[str, dict]] = [
    ("PutItem", {"TableName": H, "Item": {"pk": {"S": "k0"}, "a": {"N": "1"}}}),
    ("PutItem", {"TableName": R, "Item": ITEM, "ReturnValues": "ALL_OLD",
                 "ConditionExpression": "attribute_not_exists(pk) OR a < :v",
                 "ExpressionAttributeValues": {":v": {"N": "10"}}}),
    ("PutItem", {"TableName": H, "Item": {"pk": {"S": "k2"}},
                 "Expected": {"a": {"Exists": False}}}),
    ("GetItem", {"TableName": R, "Key": KEY_R, "ProjectionExpression": "a, l[1], #m.n",
                 "ExpressionAttributeNames": {"#m": "m"}, "ConsistentRead": True}),
    ("GetItem", {"TableName": H, "Key": KEY_H, "AttributesToGet": ["a", "pk"]}),
    ("UpdateItem", {"TableName": R, "Key": KEY_R,
                    "UpdateExpression": "SET a = a + :one, l[5] = :s REMOVE m.n ADD s :ss",
                    "ConditionExpression": "size(l) < :ten AND begins_with(pk, :k)",
                    "ExpressionAttributeValues": {":one": {"N": "1"}, ":s": {"S": "z"},
                                                  ":ss": {"SS": ["q"]}, ":ten": {"N": "10"},
                                                  ":k": {"S": "k"}},
                    "ReturnValues": "UPDATED_NEW"}),
    ("UpdateItem", {"TableName": H, "Key": KEY_H,
                    "AttributeUpdates": {"a": {"Action": "ADD", "Value": {"N": "2"}},
                                         "c": {"Action": "DELETE"}},
                    "ReturnValues": "ALL_NEW"}),
    ("DeleteItem", {"TableName": H, "Key": {"pk": {"S": "k9"}},
                    "ConditionExpression": "attribute_exists(pk)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}),
    ("Query", {"TableName": R, "KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
               "FilterExpression": "a IN (:x, :y) OR contains(s, :s)",
               "ProjectionExpression": "pk, sk, a", "Limit": 5, "ScanIndexForward": False,
               "ExpressionAttributeValues": {":p": {"S": "k1"}, ":a": {"N": "0"},
                                             ":b": {"N": "9"}, ":x": {"N": "5"},
                                             ":y": {"N": "6"}, ":s": {"S": "x"}},
               "ReturnConsumedCapacity": "TOTAL"}),
    ("Query", {"TableName": R, "KeyConditions": {
        "pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "k1"}]},
        "sk": {"ComparisonOperator": "GT", "AttributeValueList": [{"N": "0"}]}},
        "QueryFilter": {"a": {"ComparisonOperator": "NOT_NULL"}}, "Select": "COUNT"}),
    ("Scan", {"TableName": H, "FilterExpression": "attribute_type(a, :t)",
              "ExpressionAttributeValues": {":t": {"S": "N"}}, "Segment": 0,
              "TotalSegments": 2, "Limit": 3}),
    ("Scan", {"TableName": R, "ScanFilter": {"a": {"ComparisonOperator": "GE",
                                                   "AttributeValueList": [{"N": "1"}]}},
              "ExclusiveStartKey": KEY_R}),
    ("BatchGetItem", {"RequestItems": {H: {"Keys": [KEY_H, {"pk": {"S": "k2"}}]},
                                       R: {"Keys": [KEY_R], "ProjectionExpression": "a"}}}),
    ("BatchWriteItem", {"RequestItems": {
        H: [{"PutRequest": {"Item": {"pk": {"S": "k3"}, "a": {"N": "3"}}}},
            {"DeleteRequest": {"Key": {"pk": {"S": "k2"}}}}],
        R: [{"PutRequest": {"Item": ITEM}}]}}),
    ("CreateTable", {"TableName": "fz-new", "BillingMode": "PAY_PER_REQUEST",
                     "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                   {"AttributeName": "sk", "KeyType": "RANGE"}],
                     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                              {"AttributeName": "sk", "AttributeType": "B"}],
                     "Tags": [{"Key": "k", "Value": "v"}]}),
    ("UpdateTable", {"TableName": H, "ProvisionedThroughput": {"ReadCapacityUnits": 7,
                                                               "WriteCapacityUnits": 7}}),
    # GlobalSecondaryIndexUpdates (refused as given: an undefined key attribute, an
    # unknown index; their mutations reach the update rules).
    ("UpdateTable", {"TableName": I, "GlobalSecondaryIndexUpdates": [{"Create": {
        "IndexName": "by_zz", "KeySchema": [{"AttributeName": "zz", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["b"]}}}]}),
    ("UpdateTable", {"TableName": I, "GlobalSecondaryIndexUpdates": [
        {"Delete": {"IndexName": "nope"}},
        {"Update": {"IndexName": "by_s", "ProvisionedThroughput": {
            "ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}}]}),
    ("DescribeTable", {"TableName": R}),
    ("ListTables", {"Limit": 1, "ExclusiveStartTableName": H}),
    ("TagResource", {"ResourceArn": "arn:aws:dynamodb:us-east-1:000000000000:table/" + H,
                     "Tags": [{"Key": "team", "Value": "fuzz"}]}),
    ("UntagResource", {"ResourceArn": "arn:aws:dynamodb:us-east-1:000000000000:table/" + H,
                       "TagKeys": ["team"]}),
    ("ListTagsOfResource", {"ResourceArn": "arn:aws:dynamodb:us-east-1:000000000000:table/" + R}),
    ("DeleteTable", {"TableName": "fz-new"}),
    # Secondary indexes.
    ("PutItem", {"TableName": I, "Item": {**ITEM, "a": {"N": "7"}, "s": {"S": "g"}},
                 "ReturnConsumedCapacity": "INDEXES", "ReturnItemCollectionMetrics": "SIZE"}),
    ("UpdateItem", {"TableName": I, "Key": KEY_R, "UpdateExpression": "SET a = :a REMOVE s",
                    "ExpressionAttributeValues": {":a": {"N": "3"}},
                    "ReturnItemCollectionMetrics": "SIZE", "ReturnConsumedCapacity": "INDEXES"}),
    ("BatchWriteItem", {"ReturnItemCollectionMetrics": "SIZE", "RequestItems": {I: [
        {"PutRequest": {"Item": {"pk": {"S": "k2"}, "sk": {"N": "2"}, "a": {"N": "1"},
                                 "b": {"S": "x"}}}},
        {"DeleteRequest": {"Key": {"pk": {"S": "k2"}, "sk": {"N": "3"}}}}]}}),
    ("Query", {"TableName": I, "IndexName": "by_a",
               "KeyConditionExpression": "pk = :p AND a BETWEEN :x AND :y",
               "FilterExpression": "attribute_exists(m)", "ProjectionExpression": "pk, b, l",
               "ExpressionAttributeValues": {":p": {"S": "k1"}, ":x": {"N": "0"},
                                             ":y": {"N": "9"}},
               "ExclusiveStartKey": {"pk": {"S": "k1"}, "sk": {"N": "1"}, "a": {"N": "0"}},
               "ScanIndexForward": False, "Limit": 2, "ConsistentRead": True,
               "ReturnConsumedCapacity": "INDEXES"}),
    ("Query", {"TableName": I, "IndexName": "by_a", "Select": "ALL_ATTRIBUTES",
               "KeyConditions": {"pk": {"ComparisonOperator": "EQ",
                                        "AttributeValueList": [{"S": "k1"}]}}}),
    ("Query", {"TableName": I, "IndexName": "by_s", "KeyConditionExpression": "s = :s",
               "ExpressionAttributeValues": {":s": {"S": "g"}}}),
    ("Scan", {"TableName": I, "IndexName": "by_a", "Segment": 1, "TotalSegments": 3,
              "Select": "COUNT", "ConsistentRead": True}),
    ("CreateTable", {"TableName": "fz-new", "BillingMode": "PAY_PER_REQUEST",
                     "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                   {"AttributeName": "sk", "KeyType": "RANGE"}],
                     "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                              {"AttributeName": "sk", "AttributeType": "B"},
                                              {"AttributeName": "g", "AttributeType": "N"},
                                              {"AttributeName": "h", "AttributeType": "S"}],
                     "LocalSecondaryIndexes": [
                         {"IndexName": "lsi", "Projection": {"ProjectionType": "INCLUDE",
                                                             "NonKeyAttributes": ["x", "y"]},
                          "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                        {"AttributeName": "g", "KeyType": "RANGE"}]}],
                     "GlobalSecondaryIndexes": [
                         {"IndexName": "gsi", "Projection": {"ProjectionType": "ALL"},
                          "KeySchema": [{"AttributeName": "h", "KeyType": "HASH"},
                                        {"AttributeName": "g", "KeyType": "HASH"},
                                        {"AttributeName": "sk", "KeyType": "RANGE"}]}]}),
]

JUNK_VALUES = (None, True, False, 0, -1, 2**64, 1.5, "", "x", "X" * 70000, [], [None], {},
               {"S": "x"}, {"": None}, [{}] * 30)


def _spots(document: Any, path: tuple = ()) -> list[tuple]:
    """Every path into the document: dict keys and list indexes."""
    found = [path]
    if isinstance(document, dict):
        for key, value in document.items():
            found.extend(_spots(value, path + (key,)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.extend(_spots(value, path + (index,)))
    return found


def _get(document: Any, path: tuple) -> Any:
    for step in path:
        document = document[step]
    return document


def _apply(document: Any, path: tuple, kind: str, payload: Any) -> Any:
    """Change the document at `path`; the root can only be replaced."""
    if not path:
        return payload if kind == "replace" else document
    parent = _get(document, path[:-1])
    step = path[-1]
    if kind == "delete":
        del parent[step]
    elif kind == "replace":
        parent[step] = payload
    elif kind == "duplicate" and isinstance(parent, list):
        parent.insert(step, copy.deepcopy(parent[step]))
    elif kind == "rename" and isinstance(parent, dict):
        parent[str(payload)] = parent.pop(step)
    elif kind == "splice" and isinstance(parent[step], str):
        text = parent[step]
        parent[step] = text[: len(text) // 2] + str(payload) + text[len(text) // 2:]
    else:
        parent[step] = payload
    return document


@lru_cache(maxsize=1)
def _payloads() -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(JUNK_VALUES), attribute_values(), damaged(conditions()),
                     st.sampled_from(["S", "N", "NULL", "Item", "Key", "PutRequest", "#n",
                                      ":v", "pk", "sk"]))


@st.composite
def mutated(draw: Any) -> tuple[str, dict]:
    operation, original = draw(st.sampled_from(CORPUS))
    document = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        spots = _spots(document)
        path = draw(st.sampled_from(spots))
        kind = draw(st.sampled_from(["delete", "replace", "replace", "duplicate", "rename",
                                     "splice"]))
        document = _apply(document, path, kind, copy.deepcopy(draw(_payloads())))
        if not isinstance(document, (dict, list)):
            break
    return operation, document


def valid() -> st.SearchStrategy[tuple[str, dict]]:
    return st.sampled_from(CORPUS)
