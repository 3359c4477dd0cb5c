"""Length-prefixed, checksummed msgpack frames, sans I/O.

Wire format of one frame (integers little-endian, like the WAL):

    u32 payload_length | u32 crc32c(payload) | payload (msgpack, binary types)

`encode_frame` turns a message into bytes; `FrameDecoder` turns bytes, fed
in any split, into messages. The decoder never buffers more than one
frame's header plus `frame_bytes_max` payload bytes beyond the chunk being
fed: a header announcing a larger payload raises FrameTooLargeError at
once, before the payload arrives. A checksum or msgpack failure raises
FrameCorruptError. After any error the decoder stays failed (the stream
can't be resynchronised; the connection must close).
"""
from __future__ import annotations

import struct
from typing import Any

import msgpack

from triplica.common.checksum import crc32c
from triplica.transport.base import FrameCorruptError, FrameTooLargeError, FramingError
from triplica.transport.limits import FRAME_BYTES_MAX, FRAME_HEADER_BYTES

_HEADER = struct.Struct("<II")
assert _HEADER.size == FRAME_HEADER_BYTES


def pack_payload(message: Any, frame_bytes_max: int = FRAME_BYTES_MAX) -> bytes:
    """Msgpack-encode `message`; FrameTooLargeError past `frame_bytes_max`."""
    try:
        payload = msgpack.packb(message, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as error:
        raise TypeError(f"message is not msgpack-serialisable: {error}") from None
    if len(payload) > frame_bytes_max:
        raise FrameTooLargeError(
            f"message of {len(payload)} bytes exceeds the frame maximum "
            f"of {frame_bytes_max} bytes"
        )
    return payload


def unpack_payload(payload: bytes) -> Any:
    """Decode a payload made by `pack_payload`; FrameCorruptError if it isn't."""
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as error:  # msgpack raises several unrelated types
        raise FrameCorruptError(f"frame payload is not valid msgpack: {error}") from None


def encode_frame(message: Any, frame_bytes_max: int = FRAME_BYTES_MAX) -> bytes:
    """One frame carrying `message`."""
    return frame_payload(pack_payload(message, frame_bytes_max), frame_bytes_max)


def frame_payload(payload: bytes, frame_bytes_max: int = FRAME_BYTES_MAX) -> bytes:
    """One frame around an already encoded msgpack payload."""
    if len(payload) > frame_bytes_max:
        raise FrameTooLargeError(
            f"frame of {len(payload)} bytes exceeds the frame maximum "
            f"of {frame_bytes_max} bytes"
        )
    return _HEADER.pack(len(payload), crc32c(payload)) + payload


class FrameDecoder:
    """Bytes in, decoded messages out; bounded buffer; fails for good on error."""

    def __init__(self, frame_bytes_max: int = FRAME_BYTES_MAX) -> None:
        assert frame_bytes_max > 0
        self.frame_bytes_max = frame_bytes_max
        self._buffer = bytearray()
        self._error: FramingError | None = None

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Any]:
        """Append `data`; return every message completed by it, in order."""
        if self._error is not None:
            raise self._error
        self._buffer += data
        messages: list[Any] = []
        try:
            offset = self._decode_into(messages)
        except FramingError:
            self._buffer.clear()
            raise
        del self._buffer[:offset]
        assert len(self._buffer) < FRAME_HEADER_BYTES + self.frame_bytes_max
        return messages

    def _decode_into(self, messages: list[Any]) -> int:
        buffer = self._buffer
        view = memoryview(buffer)
        offset = 0
        try:
            while len(buffer) - offset >= FRAME_HEADER_BYTES:
                length, crc = _HEADER.unpack_from(buffer, offset)
                if length > self.frame_bytes_max:
                    self._fail(FrameTooLargeError(
                        f"incoming frame of {length} bytes exceeds the frame "
                        f"maximum of {self.frame_bytes_max} bytes"
                    ))
                end = offset + FRAME_HEADER_BYTES + length
                if end > len(buffer):
                    break
                payload = bytes(view[offset + FRAME_HEADER_BYTES:end])
                if crc32c(payload) != crc:
                    self._fail(FrameCorruptError("frame checksum mismatch"))
                try:
                    messages.append(unpack_payload(payload))
                except FrameCorruptError as error:
                    self._fail(error)
                offset = end
        finally:
            view.release()
        return offset

    def _fail(self, error: FramingError) -> None:
        self._error = error
        raise error
