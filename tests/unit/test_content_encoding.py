"""Compressed request bodies: decoding, refusals and the output bound."""
from __future__ import annotations

import gzip
import zlib

import pytest

from triplica.api.content_encoding import decoded_body
from triplica.errors import RequestEntityTooLarge, SerializationException

BODY = b'{"TableName": "t", "Item": {"pk": {"S": "k"}}}'


def _gzip(data: bytes) -> bytes:
    # mtime fixed: parametrized ids must be equal on every xdist worker
    return gzip.compress(data, mtime=0)


@pytest.mark.parametrize("header,encoded", [
    (None, BODY), ("", BODY), ("identity", BODY), ("gzip", _gzip(BODY)),
    (" GZIP ", _gzip(BODY)), ("gzip", _gzip(BODY[:7]) + _gzip(BODY[7:])),
    ("deflate", zlib.compress(BODY)), ("deflate", zlib.compress(BODY)[2:-4]),
    ("deflate, gzip", _gzip(zlib.compress(BODY))), ("gzip, identity", _gzip(BODY)),
])
def test_decodes(header: str | None, encoded: bytes) -> None:
    headers = {} if header is None else {"content-encoding": header}
    assert decoded_body(headers, encoded) == BODY


@pytest.mark.parametrize("header,encoded,fragment", [
    ("br", BODY, "Unsupported Content-Encoding 'br'"),
    ("gzip, compress", _gzip(BODY), "Unsupported Content-Encoding 'compress'"),
    ("gzip", b"", "empty"),
    ("gzip", BODY, "not valid gzip data"),
    ("gzip", _gzip(BODY)[:-1], "truncated"),
    ("gzip", _gzip(BODY)[:10], "truncated"),
    ("gzip", _gzip(BODY) + b"\x00", "not valid gzip data"),
    ("deflate", zlib.compress(BODY)[:-2], "truncated"),
    ("deflate", zlib.compress(BODY) + b"x", "bytes after the end"),
])
def test_refuses(header: str, encoded: bytes, fragment: str) -> None:
    with pytest.raises(SerializationException) as info:
        decoded_body({"content-encoding": header}, encoded)
    assert fragment in info.value.message


def test_output_is_bounded() -> None:
    size_max = 1000
    assert decoded_body({"content-encoding": "gzip"}, _gzip(b"a" * size_max),
                        size_max) == b"a" * size_max
    with pytest.raises(RequestEntityTooLarge):
        decoded_body({"content-encoding": "gzip"}, _gzip(b"a" * (size_max + 1)), size_max)
    with pytest.raises(RequestEntityTooLarge):   # the bound holds across gzip members
        decoded_body({"content-encoding": "gzip"},
                     _gzip(b"a" * 600) + _gzip(b"a" * 600), size_max)
    with pytest.raises(RequestEntityTooLarge):   # and across nested codings
        decoded_body({"content-encoding": "gzip, gzip"},
                     _gzip(_gzip(bytes(10**6))), size_max)
