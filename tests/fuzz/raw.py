"""Raw cases: bodies that are not JSON requests, odd headers, and bytes that
are not HTTP at all.
"""
from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.mutations import CORPUS
from tests.fuzz.shapes import operation_names
from tests.integration.raw_http import AUTH

JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                        st.text(max_size=8))
JSON = st.recursive(JSON_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)
CONTENT_TYPES = ("application/x-amz-json-1.0", "application/json", "text/plain", "",
                 "application/x-amz-json-1.1; charset=utf-8", "multipart/form-data")
ENCODINGS = (None, "gzip", "deflate", "br", "identity", "gzip, gzip", "GZIP", "")


def _encode(body: bytes, encoding: str | None, how: int) -> bytes:
    """Encode as declared (how == 0), as something else (1), or truncated (2)."""
    if encoding is None or how == 1:
        return body
    name = encoding.lower().split(",")[0].strip()
    if name == "gzip":
        encoded = gzip.compress(body)
    elif name == "deflate":
        encoded = zlib.compress(body)
    else:
        encoded = body
    return encoded[: len(encoded) // 2] if how == 2 else encoded


@st.composite
def bodies(draw: Any) -> tuple[str, bytes, dict[str, str | None]]:
    """A body and headers for one operation: noise, JSON of the wrong shape,
    a corpus request under an odd content type or content encoding."""
    operation = draw(st.sampled_from(operation_names()))
    choice = draw(st.integers(0, 4))
    if choice == 0:
        body = draw(st.binary(max_size=64))
    elif choice == 1:
        body = json.dumps(draw(JSON)).encode()
    elif choice == 2:
        operation, document = draw(st.sampled_from(CORPUS))
        body = json.dumps(document).encode()
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(st.binary(max_size=3)) + body[cut + 1:]
    else:
        operation, document = draw(st.sampled_from(CORPUS))
        body = json.dumps(document).encode()
    encoding = draw(st.sampled_from(ENCODINGS))
    body = _encode(body, encoding, draw(st.integers(0, 2)))
    headers: dict[str, str | None] = {
        "Content-Type": draw(st.sampled_from(CONTENT_TYPES)),
        "Content-Encoding": encoding,
    }
    if draw(st.integers(0, 9)) == 0:
        headers["X-Amz-Target"] = draw(st.sampled_from(
            ["", "DynamoDB_20120810.", "DynamoDB_20120810.Nope", "dynamodb_20120810.Scan",
             "DynamoDB_20120810.Scan\x00"]))
    if draw(st.integers(0, 9)) == 0:
        headers["Authorization"] = draw(st.sampled_from(["", "AWS4-HMAC-SHA256", "Basic x"]))
    return operation, body, headers


HTTP_TEMPLATES = (
    b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n"
    b"Authorization: " + AUTH.encode() + b"\r\nContent-Length: 2\r\n\r\n{}",
    b"GET / HTTP/1.1\r\nHost: fuzz:1\r\n\r\n",
    b"OPTIONS / HTTP/1.1\r\nHost: x\r\nOrigin: http://o\r\n"
    b"Access-Control-Request-Method: POST\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
    b"POST / HTTP/1.0\r\n\r\n",
)


@st.composite
def socket_bytes(draw: Any) -> bytes:
    """Damaged HTTP: a template cut, spliced with noise, or pure noise."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(min_size=1, max_size=200))
    template = draw(st.sampled_from(HTTP_TEMPLATES))
    at = draw(st.integers(0, len(template)))
    if choice == 1:
        return template[:at] or b"\r\n"
    noise = draw(st.binary(min_size=1, max_size=8))
    return template[:at] + noise + template[at:]
