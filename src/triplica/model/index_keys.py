"""Global secondary indexes' names and hashes: what the engine and the router share.

A global index G of table T is kept in an index table named
`index_table_name(T, G)` ("T/G": a slash is never in a table name DynamoDB
accepts). An index partition key (the index's HASH values, in key schema
order) is placed by `index_hash`: for one value the table hash
(model/keys.py `partition_hash`), so a single-attribute index spreads like
a table; for several (multi-attribute keys) a hash of their concatenated
encodings. The engine keys entries by it (engine/global_index_keys.py) and
the router routes index reads by it, so both must agree: it lives here,
below both (the router loads no engine).
"""
from __future__ import annotations

import hashlib
from typing import Any

from triplica.model.keys import PARTITION_HASH_BYTES, encode_key_value, partition_hash

INDEX_TABLE_SEPARATOR = "/"
_MULTI_HASH_PERSON = b"triplica-gsi"


def index_table_name(table: str, index: str) -> str:
    return f"{table}{INDEX_TABLE_SEPARATOR}{index}"


def is_index_table(name: str) -> bool:
    return INDEX_TABLE_SEPARATOR in name


def base_of(index_table: str) -> tuple[str, str]:
    """(table, index) of an index table's name."""
    table, _, index = index_table.partition(INDEX_TABLE_SEPARATOR)
    assert table and index, index_table
    return table, index


def index_hash(values: list[dict[str, Any]]) -> int:
    """The 64-bit hash of an index partition key (its HASH attributes' values, in key
    schema order): the table hash for one value, else a hash of their encodings."""
    assert values
    if len(values) == 1:
        return partition_hash(values[0])
    digest = hashlib.blake2b(b"".join(encode_key_value(v) for v in values),
                             digest_size=PARTITION_HASH_BYTES, person=_MULTI_HASH_PERSON).digest()
    return int.from_bytes(digest, "big")


def index_prefix(values: list[dict[str, Any]]) -> bytes:
    """Hash and encoded HASH values: the prefix of one index partition key's entries."""
    return index_hash(values).to_bytes(PARTITION_HASH_BYTES, "big") + \
        b"".join(encode_key_value(v) for v in values)
