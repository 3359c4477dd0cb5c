"""Request members of the wrong JSON type, and the generated shape table."""
from __future__ import annotations

import pytest

from tests.tools import request_shapes as generator
from triplica.engine.operations import request_shapes
from triplica.engine.operations.request_types import check_request
from triplica.errors import SerializationException, ValidationException


def test_table_matches_the_installed_model() -> None:
    shapes, inputs = generator.generate(generator.implemented_operations())
    assert (shapes, inputs) == (request_shapes.SHAPES, request_shapes.OPERATION_INPUTS), \
        "regenerate with: python -m tests.tools.request_shapes"


@pytest.mark.parametrize("operation,request_body", [
    ("PutItem", {"TableName": "t", "Item": {"pk": {"S": "k"}}, "Unknown": [1]}),
    ("PutItem", {"TableName": None, "Item": {"a": None}}),       # nulls: handlers' business
    ("Query", {"TableName": "t", "Limit": 5, "ConsistentRead": False, "KeyConditions": {}}),
    ("ListTables", {"Limit": 2**31 - 1}),
    ("NotAnOperation", {"TableName": 5}),
])
def test_accepts(operation: str, request_body: dict) -> None:
    check_request(operation, request_body)


@pytest.mark.parametrize("operation,request_body,message", [
    ("PutItem", {"TableName": 5}, "NUMBER_VALUE can not be converted to a String"),
    ("PutItem", {"Item": []}, "Start of list found where not expected"),
    ("Query", {"KeyConditions": True}, "TRUE_VALUE can not be converted to a Map"),
    ("Query", {"Limit": "5"}, "STRING_VALUE can not be converted to a Integer"),
    ("Query", {"Limit": True}, "TRUE_VALUE can not be converted to a Integer"),
    ("Query", {"Limit": 1.5}, "NUMBER_VALUE can not be converted to a Integer"),
    ("ListTables", {"Limit": 2**31}, "NUMBER_VALUE can not be converted to a Integer"),
    ("Scan", {"ConsistentRead": "true"}, "STRING_VALUE can not be converted to a Boolean"),
    ("CreateTable", {"KeySchema": [{"AttributeName": ["pk"]}]},
     "Start of list found where not expected"),
    ("BatchGetItem", {"RequestItems": {"t": {"Keys": {}}}},
     "Start of structure or map found where not expected"),
])
def test_wrong_types(operation: str, request_body: dict, message: str) -> None:
    with pytest.raises(SerializationException) as info:
        check_request(operation, request_body)
    assert info.value.message == message


@pytest.mark.parametrize("operation,request_body,path", [
    ("BatchWriteItem", {"RequestItems": {"t": None}}, "requestItems.t.member"),
    ("BatchWriteItem", {"RequestItems": {"t": [None]}}, "requestItems.t.member.1.member"),
    ("CreateTable", {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, None]},
     "keySchema.2.member"),
    ("UpdateItem", {"ExpressionAttributeNames": {"#a": None}}, "expressionAttributeNames.#a.member"),
])
def test_null_elements(operation: str, request_body: dict, path: str) -> None:
    with pytest.raises(ValidationException) as info:
        check_request(operation, request_body)
    assert info.value.message == (f"1 validation error detected: Value null at '{path}' failed "
                                  "to satisfy constraint: Member must not be null")


def test_null_attribute_values_are_left_to_the_value_checks() -> None:
    check_request("BatchGetItem", {"RequestItems": {"t": {"Keys": [{"pk": None}]}}})
    check_request("Query", {"KeyConditions": {"pk": {"AttributeValueList": [None]}}})
