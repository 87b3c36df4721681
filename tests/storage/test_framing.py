"""Framing and checksums: known values, round trips, and a parser that never raises on junk."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from paxoskv.storage.crc import crc32c, crc32c_extend, crc32c_python
from paxoskv.storage.framing import (
    FRAME_HEADER_SIZE,
    FrameProblem,
    encode_frame,
    find_valid_frame,
    parse_frames,
    walk_frames,
)


def test_crc32c_matches_the_published_check_value() -> None:
    # RFC 3720 (iSCSI) gives 0xE3069283 for the ASCII digits 1 to 9.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c_python(b"123456789") == 0xE3069283


@settings(max_examples=100)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_fallback_crc_and_extend_agree_with_the_library(head: bytes, tail: bytes) -> None:
    assert crc32c_python(head + tail) == crc32c(head + tail)
    assert crc32c_extend(crc32c(head), tail) == crc32c(head + tail)
    assert crc32c_python(tail, crc32c_python(head)) == crc32c(head + tail)


def test_frame_layout_is_little_endian_length_then_two_crcs() -> None:
    frame = encode_frame(b"hello")
    length, length_crc, payload_crc = struct.unpack_from("<III", frame)
    assert (length, frame[FRAME_HEADER_SIZE:]) == (5, b"hello")
    assert length_crc == crc32c(struct.pack("<I", 5))
    assert payload_crc == crc32c(b"hello")


def test_zeros_never_pass_as_a_frame() -> None:
    out: list[bytes] = []
    assert parse_frames(bytes(64), 0, out) == (0, FrameProblem.HEADER_CRC)
    assert find_valid_frame(bytes(64), 0) is None


@settings(max_examples=100)
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_frames_round_trip_and_walk_agrees(records: list[bytes]) -> None:
    buffer = b"".join(map(encode_frame, records))
    out: list[bytes] = []
    assert parse_frames(buffer, 0, out) == (len(buffer), None)
    assert out == records
    end, count, _, problem = walk_frames(buffer, 0)
    assert (end, count, problem) == (len(buffer), len(records), None)
    # Bounded by ``end`` (a view of a whole preallocated segment, zeros after the frames):
    # the same answers as for the frames alone, and nothing past ``end`` is looked at.
    padded = buffer + bytes(64)
    out = []
    assert parse_frames(padded, 0, out, len(buffer)) == (len(buffer), None)
    assert out == records
    end, count, _, problem = walk_frames(padded, 0, None, len(buffer))
    assert (end, count, problem) == (len(buffer), len(records), None)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_any_bytes_either_parse_or_stop_with_a_reason(junk: bytes) -> None:
    out: list[bytes] = []
    offset, problem = parse_frames(junk, 0, out)
    assert 0 <= offset <= len(junk)
    assert (problem is None) == (offset == len(junk))
    walked_end, walked, _, _ = walk_frames(junk, 0)
    assert walked >= len(out) and walked_end >= offset
    found = find_valid_frame(junk, 0)
    assert found is None or 0 <= found < len(junk)


@settings(max_examples=100)
@given(st.lists(st.binary(min_size=1, max_size=50), min_size=1, max_size=8), st.data())
def test_a_cut_frame_is_reported_incomplete_at_its_start(
    records: list[bytes], data: st.DataObject
) -> None:
    buffer = b"".join(map(encode_frame, records))
    cut_at = data.draw(st.integers(0, len(buffer) - 1))
    out: list[bytes] = []
    offset, problem = parse_frames(buffer[:cut_at], 0, out)
    whole = sum(1 for end in _frame_ends(records) if end <= cut_at)
    assert out == records[:whole]
    assert problem is (None if offset == cut_at else FrameProblem.INCOMPLETE)


def _frame_ends(records: list[bytes]) -> list[int]:
    ends, total = [], 0
    for record in records:
        total += FRAME_HEADER_SIZE + len(record)
        ends.append(total)
    return ends
