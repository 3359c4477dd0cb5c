"""Requests whose expressions are generated: valid skeletons from the corpus,
every expression parameter replaced by one from the expression grammar
(shapes.py, sometimes damaged or pathological), and ExpressionAttributeNames
and ExpressionAttributeValues defining exactly the #names and :values the
texts use, with random values. So most cases get past name and value
checks and reach evaluation, update planning and projection against real
items, where type and path errors live.
"""
from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

from hypothesis import strategies as st

from tests.fuzz import shapes
from tests.fuzz.mutations import KEY_H, KEY_R, ITEM

PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")
SKELETONS: tuple[tuple[str, dict, tuple[str, ...]], ...] = (
    ("PutItem", {"TableName": "fz-range", "Item": ITEM}, ("ConditionExpression",)),
    ("DeleteItem", {"TableName": "fz-range", "Key": KEY_R}, ("ConditionExpression",)),
    ("UpdateItem", {"TableName": "fz-range", "Key": KEY_R, "ReturnValues": "ALL_NEW"},
     ("UpdateExpression", "ConditionExpression")),
    ("UpdateItem", {"TableName": "fz-hash", "Key": KEY_H, "ReturnValues": "UPDATED_OLD"},
     ("UpdateExpression",)),
    ("GetItem", {"TableName": "fz-range", "Key": KEY_R}, ("ProjectionExpression",)),
    ("Query", {"TableName": "fz-range"},
     ("KeyConditionExpression", "FilterExpression", "ProjectionExpression")),
    ("Scan", {"TableName": "fz-range"}, ("FilterExpression", "ProjectionExpression")),
    ("Query", {"TableName": "fz-index", "IndexName": "by_a"},
     ("KeyConditionExpression", "FilterExpression", "ProjectionExpression")),
    ("UpdateItem", {"TableName": "fz-index", "Key": KEY_R, "ReturnValues": "ALL_NEW"},
     ("UpdateExpression", "ConditionExpression")),
    ("BatchGetItem", {"RequestItems": {"fz-range": {"Keys": [KEY_R]}}}, ()),
)
KEY_CONDITIONS = ("pk = :v", "pk = :v AND sk > :n", "pk = :v AND sk BETWEEN :n AND :x",
                  "pk = :v AND a < :n", "pk = :v AND a BETWEEN :n AND :x",
                  "begins_with(pk, :s)", "pk = :v AND begins_with(sk, :n)", "sk = :n AND pk = :v",
                  "pk = :v AND sk.x = :n", "#n = :v")
NAMES = ("a", "pk", "sk", "l", "m", "s", "b", "x", "")


@lru_cache(maxsize=None)
def _texts(parameter: str) -> st.SearchStrategy[str]:
    if parameter == "UpdateExpression":
        return shapes.damaged(shapes.updates())
    if parameter == "ProjectionExpression":
        return shapes.damaged(shapes.projections())
    if parameter == "KeyConditionExpression":
        return st.one_of(st.sampled_from(KEY_CONDITIONS), shapes.damaged(shapes.conditions()))
    return shapes.damaged(shapes.conditions())


@st.composite
def expression_requests(draw: Any) -> tuple[str, dict]:
    operation, skeleton, parameters = draw(st.sampled_from(SKELETONS))
    document = copy.deepcopy(skeleton)
    target = document["RequestItems"]["fz-range"] if operation == "BatchGetItem" else document
    if operation == "BatchGetItem":
        parameters = ("ProjectionExpression",)
    used: set[str] = set()
    for parameter in parameters:
        if parameter == "KeyConditionExpression" or draw(st.booleans()):
            text = draw(_texts(parameter))
            target[parameter] = text
            used.update(PLACEHOLDER.findall(text))
    names = {p: draw(st.sampled_from(NAMES)) for p in sorted(used) if p[0] == "#"}
    values = {p: draw(shapes.attribute_values()) for p in sorted(used) if p[0] == ":"}
    if draw(st.integers(0, 9)) == 0:   # one too many, or one missing
        extra = draw(st.sampled_from(["#n", ":v", "#zz", ":zz"]))
        (names if extra[0] == "#" else values).pop(extra, None) if draw(st.booleans()) else \
            (names.__setitem__(extra, "a") if extra[0] == "#" else values.__setitem__(extra, {"N": "1"}))
    if names:
        target["ExpressionAttributeNames"] = names
    if values:
        target["ExpressionAttributeValues"] = values
    return operation, document
