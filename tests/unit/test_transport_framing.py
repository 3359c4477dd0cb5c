"""Frames: round trips, any split of the byte stream, corruption, size bounds."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triplica.transport.base import FrameCorruptError, FrameTooLargeError, TransportError
from triplica.transport.framing import FrameDecoder, encode_frame, frame_payload

MESSAGES = [
    None, True, 0, -1, 2**63, 1.5, "", "héllo", b"\x00\xff",
    [1, [2, [3]]], {"type": "accept", "ballot": [3, 1], "entries": [b"x" * 1000]},
    {1: "int keys survive"},
]


def test_round_trip_each_message():
    decoder = FrameDecoder()
    for message in MESSAGES:
        assert decoder.feed(encode_frame(message)) == [message]
    assert decoder.buffered_bytes == 0


def test_many_frames_in_one_chunk():
    stream = b"".join(encode_frame(m) for m in MESSAGES)
    assert FrameDecoder().feed(stream) == MESSAGES


def test_byte_by_byte_feed():
    stream = b"".join(encode_frame(m) for m in MESSAGES)
    decoder = FrameDecoder()
    out = []
    for i in range(len(stream)):
        out.extend(decoder.feed(stream[i:i + 1]))
    assert out == MESSAGES
    assert decoder.buffered_bytes == 0


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.recursive(
        st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text() | st.binary(),
        lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4),
        max_leaves=10,
    ), max_size=8),
    cuts=st.lists(st.integers(0, 10_000), max_size=10),
)
def test_any_split_decodes_the_same(messages, cuts):
    stream = b"".join(encode_frame(m) for m in messages)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    out = []
    for start, end in zip(points, points[1:]):
        out.extend(decoder.feed(stream[start:end]))
    assert out == messages


def test_tuples_arrive_as_lists():
    assert FrameDecoder().feed(encode_frame((1, (2, 3)))) == [[1, [2, 3]]]


def test_header_is_length_then_crc32c_little_endian():
    frame = encode_frame("x")
    length, _crc = struct.unpack_from("<II", frame)
    assert length == len(frame) - 8


def test_corrupted_payload_is_detected():
    frame = bytearray(encode_frame({"k": "value"}))
    frame[-1] ^= 0x01
    decoder = FrameDecoder()
    with pytest.raises(FrameCorruptError):
        decoder.feed(bytes(frame))


def test_corrupted_crc_is_detected_and_decoder_stays_failed():
    frame = bytearray(encode_frame("payload"))
    frame[5] ^= 0x80
    decoder = FrameDecoder()
    with pytest.raises(FrameCorruptError) as info:
        decoder.feed(bytes(frame))
    assert isinstance(info.value, TransportError)
    with pytest.raises(FrameCorruptError):
        decoder.feed(encode_frame("fine"))
    assert decoder.buffered_bytes == 0


def test_valid_crc_over_invalid_msgpack_is_corrupt():
    with pytest.raises(FrameCorruptError):
        FrameDecoder().feed(frame_payload(b"\xc1"))  # 0xc1 is never used


def test_oversized_frame_rejected_from_its_header_alone():
    decoder = FrameDecoder(frame_bytes_max=100)
    header = struct.pack("<II", 101, 0)
    with pytest.raises(FrameTooLargeError):
        decoder.feed(header)  # no payload byte needed to refuse it
    with pytest.raises(FrameTooLargeError):
        decoder.feed(b"more")


def test_frame_at_the_maximum_is_accepted():
    payload_max = len(encode_frame("x" * 90)) - 8
    decoder = FrameDecoder(frame_bytes_max=payload_max)
    assert decoder.feed(encode_frame("x" * 90)) == ["x" * 90]


def test_oversized_message_refused_at_encode():
    with pytest.raises(FrameTooLargeError):
        encode_frame("x" * 200, frame_bytes_max=100)


def test_unserialisable_message_is_a_type_error():
    with pytest.raises(TypeError):
        encode_frame(object())


def test_buffer_stays_bounded_by_one_frame():
    frame = encode_frame(b"y" * 500)
    decoder = FrameDecoder(frame_bytes_max=600)
    for byte in frame[:-1]:
        decoder.feed(bytes([byte]))
        assert decoder.buffered_bytes < 8 + 600
    assert decoder.feed(frame[-1:]) == [b"y" * 500]
