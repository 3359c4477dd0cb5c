"""Compressed request bodies: `Content-Encoding: gzip` or `deflate`.

Pure functions. A body is decoded in the reverse order of the codings
listed (RFC 9110 section 8.4); gzip may hold several concatenated members
(RFC 1952), deflate is the zlib format (RFC 1950), or a bare deflate stream
as some clients send it.

Invariants:
- Output is bounded: inflation stops at limits.REQUEST_BODY_BYTES_MAX + 1
  bytes, so a small body that would expand to gigabytes (a zip bomb) costs
  at most the limit in memory and is refused with 413, like a large plain
  body.
- Anything that is not exactly a complete encoded stream is refused with a
  SerializationException before the request is read: an unknown coding, an
  empty body, bytes that do not decode, a truncated stream, trailing junk.
"""
from __future__ import annotations

import zlib
from typing import Mapping

from triplica.api.http_server import Request
from triplica.errors import RequestEntityTooLarge, SerializationException
from triplica.model import limits

IDENTITY = "identity"
GZIP_WBITS = 16 + zlib.MAX_WBITS     # gzip header and trailer
ZLIB_WBITS = zlib.MAX_WBITS          # zlib header and trailer
RAW_DEFLATE_WBITS = -zlib.MAX_WBITS  # no header
CHUNK_BYTES = 256 * 1024             # input fed to zlib per step
SUPPORTED = ("gzip", "deflate", IDENTITY)


def decoded_body(headers: Mapping[str, str], body: bytes,
                 size_max: int = limits.REQUEST_BODY_BYTES_MAX) -> bytes:
    """The body with every listed Content-Encoding undone (lower-cased header keys)."""
    header = headers.get("content-encoding")
    if not header:
        return body
    codings = [coding.strip().lower() for coding in header.split(",") if coding.strip()]
    for coding in codings:
        if coding not in SUPPORTED:
            raise SerializationException(
                f"Unsupported Content-Encoding '{coding}'; supported: gzip, deflate, identity")
    for coding in reversed(codings):
        if coding == "gzip":
            body = _gunzip(body, size_max)
        elif coding == "deflate":
            body = _inflate(body, size_max)
    return body


def _refuse(coding: str, why: str) -> SerializationException:
    return SerializationException(f"Request body is not valid {coding} data: {why}")


def _too_large() -> RequestEntityTooLarge:
    return RequestEntityTooLarge(f"Request size exceeded {limits.REQUEST_BODY_BYTES_MAX} bytes")


def _gunzip(data: bytes, size_max: int) -> bytes:
    if not data:
        raise _refuse("gzip", "the body is empty")
    out: list[bytes] = []
    size = 0
    while data:   # one gzip member per turn
        member, data, size = _stream(zlib.decompressobj(GZIP_WBITS), data, size, size_max,
                                     "gzip")
        out.append(member)
    return b"".join(out)


def _inflate(data: bytes, size_max: int) -> bytes:
    if not data:
        raise _refuse("deflate", "the body is empty")
    # A zlib stream starts with a header whose 16-bit value is a multiple of 31.
    zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
    wbits = ZLIB_WBITS if zlib_header else RAW_DEFLATE_WBITS
    body, rest, _ = _stream(zlib.decompressobj(wbits), data, 0, size_max, "deflate")
    if rest:
        raise _refuse("deflate", "bytes after the end of the stream")
    return body


def _stream(decoder: "zlib._Decompress", data: bytes, size: int, size_max: int,
            coding: str) -> tuple[bytes, bytes, int]:
    """Inflate one stream from the start of data: (output, bytes after it, total size)."""
    out: list[bytes] = []
    view = memoryview(data)
    position = 0
    try:
        while not decoder.eof:
            if decoder.unconsumed_tail:
                pending = decoder.unconsumed_tail
            elif position < len(view):
                pending = view[position:position + CHUNK_BYTES]
                position += len(pending)
            else:
                raise _refuse(coding, "the stream is truncated")
            chunk = decoder.decompress(pending, size_max + 1 - size)
            size += len(chunk)
            if size > size_max:
                raise _too_large()
            out.append(chunk)
    except zlib.error as error:
        raise _refuse(coding, str(error).partition(": ")[2] or "corrupt data") from None
    rest = decoder.unused_data + bytes(view[position:])
    return b"".join(out), rest, size


def decoded_request(request: "Request") -> "Request":
    """The request with its body decoded and no Content-Encoding header, for a
    router that reads the body and forwards it to nodes as plain JSON."""
    if not request.headers.get("content-encoding"):
        return request
    body = decoded_body(request.headers, request.body)
    headers = {name: value for name, value in request.headers.items()
               if name != "content-encoding"}
    return Request(request.method, request.path, request.query, headers, body,
                   request.keep_alive, request.http_version)
