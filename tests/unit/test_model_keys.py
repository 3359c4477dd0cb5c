"""Unit tests for triplica.model.keys: order-preserving key encoding and hashing."""
from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triplica.errors import ValidationException
from triplica.model.keys import (
    decode_key_value,
    encode_key_value,
    encode_partition_prefix,
    encode_storage_key,
    partition_hash,
    validate_key_value,
)
from triplica.model.numbers import format_number


@st.composite
def numbers(draw: st.DrawFn) -> Decimal:
    """DynamoDB numbers over the whole range, up to 38 digits, and zero."""
    if draw(st.integers(0, 20)) == 0:
        return Decimal(0)
    lead = draw(st.sampled_from("123456789"))
    rest = draw(st.text(alphabet="0123456789", max_size=37)).rstrip("0")
    # Bias towards close exponents so neighbouring digits really get compared.
    adjusted = draw(st.one_of(st.integers(-130, 125), st.integers(-2, 2)))
    sign = draw(st.sampled_from(["", "-"]))
    digits = lead + rest
    return Decimal(f"{sign}{digits}E{adjusted - len(digits) + 1}")


def n_value(value: Decimal) -> dict:
    return {"N": format_number(value)}


def b_value(raw: bytes) -> dict:
    return {"B": base64.b64encode(raw).decode("ascii")}


texts = st.text()  # excludes surrogates: valid Unicode scalar values only
binaries = st.binary(max_size=40)
key_values = st.one_of(
    texts.map(lambda text: {"S": text}), numbers().map(n_value), binaries.map(b_value))


def _sign(x: object, y: object) -> int:
    return (x > y) - (x < y)  # type: ignore[operator]


def _cmp_bytes(a: bytes, b: bytes) -> int:
    return _sign(a, b)


@given(texts, texts)
def test_string_order_is_utf8_order(a: str, b: str) -> None:
    expected = _sign(a.encode("utf-8"), b.encode("utf-8"))
    assert _cmp_bytes(encode_key_value({"S": a}), encode_key_value({"S": b})) == expected


@given(numbers(), numbers())
@settings(max_examples=500)
def test_number_order_is_numeric_order(a: Decimal, b: Decimal) -> None:
    assert _cmp_bytes(encode_key_value(n_value(a)), encode_key_value(n_value(b))) == _sign(a, b)


@given(binaries, binaries)
def test_binary_order_is_byte_order(a: bytes, b: bytes) -> None:
    assert _cmp_bytes(encode_key_value(b_value(a)), encode_key_value(b_value(b))) == _sign(a, b)


@pytest.mark.parametrize(
    "ordered",
    [
        ["-1e125", "-2", "-1.5", "-1", "-0.5", "-1e-130", "0", "1e-130", "0.5", "1", "1.5",
         "2", "10", "10.5", "9.9999999999999999999999999999999999999e125"],
        ["1", "1.0000000000000000000000000000000000001", "1.1", "1.11", "1.2"],
        ["-1.2", "-1.11", "-1.1", "-1.0000000000000000000000000000000000001", "-1"],
    ],
)
def test_number_examples_in_order(ordered: list[str]) -> None:
    encoded = [encode_key_value({"N": text}) for text in ordered]
    assert encoded == sorted(encoded)
    assert len(set(encoded)) == len(encoded)


def test_equal_numbers_encode_equally() -> None:
    assert encode_key_value({"N": "1"}) == encode_key_value({"N": "1.00"})
    assert encode_key_value({"N": "-0"}) == encode_key_value({"N": "0"})


def test_prefix_sorts_first_and_zero_bytes() -> None:
    order = [b"", b"\x00", b"\x00\x00", b"\x00\x01", b"a", b"a\x00", b"a\x00b", b"a\x01", b"ab"]
    encoded = [encode_key_value(b_value(raw)) for raw in order]
    assert encoded == sorted(encoded)


def _dynamo_key(av: dict) -> tuple:
    kind = next(iter(av))
    if kind == "S":
        return (kind, av["S"].encode("utf-8"))
    if kind == "N":
        return (kind, Decimal(av["N"]))
    return (kind, base64.b64decode(av["B"]))


@given(st.data())
def test_tuple_order_preserved_by_concatenation(data: st.DataObject) -> None:
    pk_kind = data.draw(st.sampled_from(["S", "N", "B"]))
    sk_kind = data.draw(st.sampled_from(["S", "N", "B"]))
    strategies = {"S": texts.map(lambda t: {"S": t}), "N": numbers().map(n_value),
                  "B": binaries.map(b_value)}
    # Shared prefixes are the interesting case: draw the second pk from the first often.
    pk1 = data.draw(strategies[pk_kind])
    pk2 = data.draw(st.one_of(st.just(pk1), strategies[pk_kind]))
    sk1 = data.draw(strategies[sk_kind])
    sk2 = data.draw(strategies[sk_kind])
    expected = _sign((_dynamo_key(pk1), _dynamo_key(sk1)), (_dynamo_key(pk2), _dynamo_key(sk2)))
    first = encode_key_value(pk1) + encode_key_value(sk1)
    second = encode_key_value(pk2) + encode_key_value(sk2)
    assert _cmp_bytes(first, second) == expected


@given(key_values, key_values)
def test_round_trip(a: dict, b: dict) -> None:
    data = b"junk" + encode_key_value(a) + encode_key_value(b) + b"\x00tail"
    decoded_a, offset = decode_key_value(data, 4)
    decoded_b, offset = decode_key_value(data, offset)
    assert (decoded_a, decoded_b) == (a, b)
    assert data[offset:] == b"\x00tail"


def test_partition_hash_is_stable_and_canonical() -> None:
    assert partition_hash({"N": "1"}) == partition_hash({"N": "1.0"})
    assert partition_hash({"S": "1"}) != partition_hash({"N": "1"})
    assert partition_hash({"B": "MQ=="}) != partition_hash({"S": "1"})
    value = partition_hash({"S": "user#1"})
    assert 0 <= value < 2 ** 64
    assert value == partition_hash({"S": "user#1"})


def test_storage_key_layout() -> None:
    pk, sk = {"S": "p"}, {"N": "5"}
    prefix = encode_partition_prefix(pk)
    assert prefix[:8] == partition_hash(pk).to_bytes(8, "big")
    assert prefix[8:] == encode_key_value(pk)
    assert encode_storage_key(pk, None) == prefix
    assert encode_storage_key(pk, sk) == prefix + encode_key_value(sk)


@given(st.lists(numbers(), min_size=2, max_size=10))
def test_items_of_a_partition_are_contiguous_and_ordered(sort_values: list[Decimal]) -> None:
    pk = {"S": "tenant"}
    other = {"S": "tenant\x00"}
    keys = [encode_storage_key(pk, n_value(v)) for v in sort_values]
    keys += [encode_storage_key(other, n_value(v)) for v in sort_values]
    prefix = encode_partition_prefix(pk)
    ordered = sorted(keys)
    mine = [index for index, key in enumerate(ordered) if key.startswith(prefix)]
    assert mine == list(range(mine[0], mine[0] + len(sort_values)))
    in_partition = [ordered[index] for index in mine]
    assert in_partition == sorted(encode_storage_key(pk, n_value(v)) for v in sort_values)


EMPTY_S = ("One or more parameter values are not valid. The AttributeValue for a key "
           "attribute cannot contain an empty string value. Key: id")
EMPTY_B = ("One or more parameter values are not valid. The AttributeValue for a key "
           "attribute cannot contain an empty binary value. Key: id")
HASH_TOO_LONG = ("One or more parameter values were invalid: Size of hashkey has exceeded "
                 "the maximum size limit of2048 bytes")
RANGE_TOO_LONG = ("One or more parameter values were invalid: Aggregated size of all range "
                  "keys has exceeded the size limit of 1024 bytes")


@pytest.mark.parametrize(
    ("av", "is_hash", "message"),
    [
        ({"S": ""}, True, EMPTY_S),
        ({"S": ""}, False, EMPTY_S),
        ({"B": ""}, True, EMPTY_B),
        ({"S": "x" * 2049}, True, HASH_TOO_LONG),
        ({"S": "é" * 1025}, True, HASH_TOO_LONG),
        ({"B": base64.b64encode(b"x" * 2049).decode()}, True, HASH_TOO_LONG),
        ({"S": "x" * 1025}, False, RANGE_TOO_LONG),
        ({"B": base64.b64encode(b"x" * 1025).decode()}, False, RANGE_TOO_LONG),
    ],
)
def test_validate_key_value_errors(av: dict, is_hash: bool, message: str) -> None:
    with pytest.raises(ValidationException) as error:
        validate_key_value("id", av, is_hash)
    assert error.value.message == message


@pytest.mark.parametrize(
    ("av", "is_hash"),
    [({"S": "x" * 2048}, True), ({"S": "x" * 1024}, False), ({"N": "0"}, True),
     ({"B": "AA=="}, False)],
)
def test_validate_key_value_accepts(av: dict, is_hash: bool) -> None:
    validate_key_value("id", av, is_hash)
