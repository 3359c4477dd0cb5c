"""Values in error messages as DynamoDB's Java service prints them."""
from __future__ import annotations

import re

from triplica.model.java_text import Opaque, Structure, render, structures


def test_plain_values() -> None:
    assert render(None) == "null"
    assert render(True) == "true" and render(False) == "false"
    assert render(5) == "5" and render("x y") == "x y"
    assert render([1, "a", None]) == "[1, a, null]"
    assert render({"T": [{"k": "v"}], "U": {}}) == "{T=[{k=v}], U={}}"


def test_model_structures() -> None:
    schema = structures("KeySchemaElement", [{"AttributeName": "pk", "KeyType": "HASH"}, None])
    assert render(schema) == "[KeySchemaElement(attributeName=pk, keyType=HASH), null]"
    assert render(Structure("Tag", {"Key": "k", "Value": "v"})) == "Tag(key=k, value=v)"


def test_opaque_objects_print_class_and_a_stable_hash() -> None:
    first = render(Opaque("WriteRequest", {"PutRequest": {"Item": {}}}))
    assert re.fullmatch(r"com\.amazonaws\.dynamodb\.v20120810\.WriteRequest@[0-9a-f]+", first)
    assert first == render(Opaque("WriteRequest", {"PutRequest": {"Item": {}}}))
    assert first != render(Opaque("WriteRequest", {"DeleteRequest": {"Key": {}}}))
