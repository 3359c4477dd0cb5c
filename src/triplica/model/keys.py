"""Order-preserving storage keys and the partition hash (DESIGN.md "Keys").

This module owns how a primary key becomes bytes in the B-tree. A storage key
is  8-byte big-endian partition_hash(pk) + encode_key_value(pk)
[+ encode_key_value(sk)], so byte order is (hash, pk, sk) order with
DynamoDB's sort order for each part, and all items of one partition key are
contiguous under encode_partition_prefix(pk), ordered by sort key.

encode_key_value(av) = type tag byte + payload; every encoding is
self-delimiting, so concatenations compare like tuples.
- S (tag 0x02): UTF-8 bytes, B (tag 0x03): decoded bytes. Each 0x00 byte is
  escaped as 0x00 0xFF and the value ends with 0x00 0x01, so a value sorts
  before every longer value it prefixes.
- N (tag 0x01): a sign class byte (0x01 negative, 0x02 zero, 0x03 positive);
  for non-zero numbers then one byte adjusted exponent + 130 (the range
  -130..125 fits 0..255), then the significant digits packed two per byte as
  pair value + 1 (an odd last digit d is the pair d0), then terminator 0x00.
  For negatives every byte after the sign class is inverted (0xFF - b), so
  byte order equals numeric order over DynamoDB's whole range, exactly.
Key values are checked by validate_key_value (non-empty, size limits).
"""
from __future__ import annotations

import base64
import hashlib
from decimal import Decimal

from triplica.errors import ValidationException
from triplica.model.limits import (
    NUMBER_EXPONENT_MAX,
    NUMBER_EXPONENT_MIN,
    PARTITION_KEY_BYTES_MAX,
    SORT_KEY_BYTES_MAX,
)
from triplica.model.numbers import format_number, number_parts, parse_number
from triplica.model.values import decode_binary, value_type

TAG_N = 0x01
TAG_S = 0x02
TAG_B = 0x03
_TAG_TYPES = {TAG_N: "N", TAG_S: "S", TAG_B: "B"}

_SIGN_NEGATIVE = 0x01
_SIGN_ZERO = 0x02
_SIGN_POSITIVE = 0x03
_EXPONENT_BIAS = -NUMBER_EXPONENT_MIN  # 130: maps -130..125 onto 0..255
_DIGITS_END = 0x00

_ESCAPE = 0x00
_ESCAPED_ZERO = 0xFF
_BYTES_END = 0x01

PARTITION_HASH_BYTES = 8
_HASH_PERSON = b"triplica-pk"

assert NUMBER_EXPONENT_MAX + _EXPONENT_BIAS <= 0xFF


def encode_key_value(av: dict) -> bytes:
    """Self-delimiting, order-preserving bytes for an S, N or B key value."""
    type_name = value_type(av)
    inner = av[type_name]
    if type_name == "S":
        return bytes((TAG_S,)) + _escape(inner.encode("utf-8"))
    if type_name == "B":
        return bytes((TAG_B,)) + _escape(decode_binary(inner))
    if type_name == "N":
        return bytes((TAG_N,)) + _encode_number(inner)
    raise AssertionError(f"key value of type {type_name} cannot be encoded")


def decode_key_value(data: bytes, offset: int) -> tuple[dict, int]:
    """Decode one encode_key_value result at offset; return (value, next offset)."""
    tag = data[offset]
    offset += 1
    if tag == TAG_S:
        raw, offset = _unescape(data, offset)
        return {"S": raw.decode("utf-8")}, offset
    if tag == TAG_B:
        raw, offset = _unescape(data, offset)
        return {"B": base64.b64encode(raw).decode("ascii")}, offset
    if tag == TAG_N:
        return _decode_number(data, offset)
    raise AssertionError(f"unknown key tag {tag:#x} at offset {offset - 1}")


def partition_hash(av: dict) -> int:
    """Stable unsigned 64-bit hash of a partition key value.

    Hashes the type tag plus the value bytes (UTF-8 for S, decoded bytes for
    B, canonical text for N so "1" and "1.0" hash alike).
    """
    type_name = value_type(av)
    inner = av[type_name]
    if type_name == "S":
        payload = bytes((TAG_S,)) + inner.encode("utf-8")
    elif type_name == "B":
        payload = bytes((TAG_B,)) + decode_binary(inner)
    elif type_name == "N":
        payload = bytes((TAG_N,)) + format_number(parse_number(inner)).encode("ascii")
    else:
        raise AssertionError(f"partition key of type {type_name} cannot be hashed")
    digest = hashlib.blake2b(
        payload, digest_size=PARTITION_HASH_BYTES, person=_HASH_PERSON
    ).digest()
    return int.from_bytes(digest, "big")


def encode_partition_prefix(pk: dict) -> bytes:
    """Hash + encoded partition key: the prefix shared by a partition key's items."""
    return partition_hash(pk).to_bytes(PARTITION_HASH_BYTES, "big") + encode_key_value(pk)


def encode_storage_key(pk: dict, sk: dict | None) -> bytes:
    """B-tree key of an item: partition prefix + encoded sort key (if any)."""
    prefix = encode_partition_prefix(pk)
    return prefix + encode_key_value(sk) if sk is not None else prefix


def encoded_value_end(data: bytes, offset: int) -> int:
    """The offset just past the encode_key_value result starting at `offset`,
    found without decoding it (a secondary index key is cut at its parts)."""
    tag = data[offset]
    if tag == TAG_S or tag == TAG_B:
        position = offset + 1
        while True:
            zero = data.index(_ESCAPE, position)
            if data[zero + 1] == _BYTES_END:
                return zero + 2
            position = zero + 2
    assert tag == TAG_N, f"unknown key tag {tag:#x} at offset {offset}"
    sign = data[offset + 1]
    if sign == _SIGN_ZERO:
        return offset + 2
    # After the exponent byte (which may be anything), digit pairs end at the
    # terminator: 0x00, or 0xff once inverted for a negative number.
    end = 0xFF - _DIGITS_END if sign == _SIGN_NEGATIVE else _DIGITS_END
    return data.index(end, offset + 3) + 1


def partition_prefix_length(storage_key: bytes) -> int:
    """Length of a storage key's partition prefix (hash + encoded partition key)."""
    return encoded_value_end(storage_key, PARTITION_HASH_BYTES)


def validate_key_value(name: str, av: dict, is_hash: bool) -> None:
    """Check a key attribute's value: non-empty S/B and within the size limits.

    The type against the key schema is the caller's check.
    """
    type_name = value_type(av)
    inner = av[type_name]
    if type_name == "S":
        size_bytes = len(inner.encode("utf-8", "surrogatepass"))
        empty_kind = "string"
    elif type_name == "B":
        size_bytes = len(decode_binary(inner))
        empty_kind = "binary"
    else:
        return  # N keys are at most 21 bytes: never empty, never too large
    if size_bytes == 0:
        raise ValidationException(
            "One or more parameter values are not valid. The AttributeValue for a key "
            f"attribute cannot contain an empty {empty_kind} value. Key: {name}"
        )
    if is_hash and size_bytes > PARTITION_KEY_BYTES_MAX:
        raise ValidationException(
            "One or more parameter values were invalid: Size of hashkey has exceeded "
            f"the maximum size limit of{PARTITION_KEY_BYTES_MAX} bytes"
        )
    if not is_hash and size_bytes > SORT_KEY_BYTES_MAX:
        raise ValidationException(
            "One or more parameter values were invalid: Aggregated size of all range "
            f"keys has exceeded the size limit of {SORT_KEY_BYTES_MAX} bytes"
        )


def _escape(raw: bytes) -> bytes:
    return raw.replace(b"\x00", b"\x00\xff") + b"\x00\x01"


def _unescape(data: bytes, offset: int) -> tuple[bytes, int]:
    parts = []
    while True:
        zero = data.index(_ESCAPE, offset)
        parts.append(data[offset:zero])
        marker = data[zero + 1]
        if marker == _BYTES_END:
            return b"\x00".join(parts), zero + 2
        assert marker == _ESCAPED_ZERO, f"bad escape {marker:#x} at {zero + 1}"
        offset = zero + 2


def _encode_number(text: str) -> bytes:
    negative, digits, adjusted = number_parts(parse_number(text))
    if not digits:
        return bytes((_SIGN_ZERO,))
    if len(digits) % 2:
        digits += "0"
    body = bytearray((adjusted + _EXPONENT_BIAS,))
    body.extend(int(digits[i:i + 2]) + 1 for i in range(0, len(digits), 2))
    body.append(_DIGITS_END)
    if negative:
        return bytes((_SIGN_NEGATIVE,)) + bytes(0xFF - b for b in body)
    return bytes((_SIGN_POSITIVE,)) + bytes(body)


def _decode_number(data: bytes, offset: int) -> tuple[dict, int]:
    sign = data[offset]
    offset += 1
    if sign == _SIGN_ZERO:
        return {"N": "0"}, offset
    assert sign in (_SIGN_NEGATIVE, _SIGN_POSITIVE), f"bad number sign {sign:#x}"
    flip = 0xFF if sign == _SIGN_NEGATIVE else 0x00
    adjusted = (data[offset] ^ flip) - _EXPONENT_BIAS
    offset += 1
    pairs = []
    while True:
        byte = data[offset] ^ flip
        offset += 1
        if byte == _DIGITS_END:
            break
        pairs.append("%02d" % (byte - 1))
    digits = "".join(pairs).rstrip("0")
    sign_text = "-" if sign == _SIGN_NEGATIVE else ""
    value = Decimal(f"{sign_text}{digits}E{adjusted - len(digits) + 1}")
    return {"N": format_number(value)}, offset
