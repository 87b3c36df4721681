"""Record framing: how one opaque record sits in a journal segment.

A frame is ``u32 length | u32 crc32c(length) | u32 crc32c(payload) | payload``, all integers
little-endian. The separate header CRC is what lets recovery tell a torn tail from damage: a
length that passes its own CRC can be trusted to say where the next frame starts, so a frame
that runs past the end of the file is a write cut short by a crash, while a length that fails
its CRC, or a payload that fails its CRC with whole frames after it, is corruption. An all-zero
region never passes, because crc32c of four zero bytes is not zero.

The parser is the replay hot path (hundreds of thousands of frames a second), so it works on
one big ``bytes`` buffer with ``struct.unpack_from``, caches the CRC of each length it meets
(most records in a journal share a handful of lengths), and returns payloads in a list per
buffer instead of yielding one by one.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from enum import Enum
from typing import TypeAlias

from paxoskv.storage.crc import crc32c, crc32c_extend
from paxoskv.storage.disk import FileView

__all__ = [
    "FRAME_HEADER_SIZE",
    "MAX_RECORD_BYTES",
    "FrameProblem",
    "Record",
    "check_frames",
    "encode_frame",
    "find_valid_frame",
    "frame_header",
    "frame_payload_valid",
    "frame_records",
    "parse_frames",
    "record_bytes",
    "record_size",
    "walk_frames",
]

_FRAME_HEADER = struct.Struct("<III")
_LENGTH = struct.Struct("<I")
_LENGTH_PAIR = struct.Struct("<II")
FRAME_HEADER_SIZE = _FRAME_HEADER.size
MAX_RECORD_BYTES = (1 << 31) - 1  # far above any datagram; guards a u32 from overflow

_length_crc_cache: dict[int, int] = {}

Record: TypeAlias = bytes | tuple[bytes, ...]
"""A record as the store is given it: its bytes, or pieces whose concatenation is its bytes.
Pieces are framed and written as they are, never joined (the engine's accept record is a few
bytes of header and a whole slot's value)."""


class FrameProblem(Enum):
    """Why parsing stopped before the end of a buffer."""

    INCOMPLETE = "the frame runs past the end of the data"
    HEADER_CRC = "the frame's length field fails its CRC"
    PAYLOAD_CRC = "the frame's payload fails its CRC"


def _length_crc(length: int) -> int:
    crc = _length_crc_cache.get(length)
    if crc is None:
        crc = crc32c(_LENGTH.pack(length))
        if len(_length_crc_cache) < 65536:
            _length_crc_cache[length] = crc
    return crc


def encode_frame(payload: Record) -> bytes:
    """One frame around ``payload``; the caller has checked its size."""
    return frame_header(payload) + record_bytes(payload)


def frame_header(payload: Record) -> bytes:
    """The header of ``payload``'s frame: what goes before it in the segment."""
    if isinstance(payload, tuple):
        length, crc = _pieces_length_crc(payload)
    else:
        length, crc = len(payload), crc32c(payload)
    return _FRAME_HEADER.pack(length, _length_crc(length), crc)


def record_size(record: Record) -> int:
    """How many bytes ``record`` holds."""
    return sum(map(len, record)) if isinstance(record, tuple) else len(record)


def record_bytes(record: Record) -> bytes:
    """``record`` in one piece (for a cipher, which seals one buffer)."""
    return b"".join(record) if isinstance(record, tuple) else record


def _pieces_length_crc(pieces: tuple[bytes, ...]) -> tuple[int, int]:
    crc = 0
    length = 0
    for piece in pieces:
        crc = crc32c_extend(crc, piece)
        length += len(piece)
    return length, crc


def frame_records(
    records: Sequence[Record], start: int, stop: int, room_bytes: int, parts: list[bytes]
) -> tuple[int, int]:
    """Append header and payload of ``records[start:stop]`` to ``parts`` while the frames fit
    in ``room_bytes`` (the first one always goes in); return (records taken, bytes added).
    A record in pieces adds its pieces.

    The writer's twin of :func:`parse_frames`, and like it the cost that group commit adds to
    a bare write + fdatasync, so it keeps to locals and C calls.
    """
    pack = _FRAME_HEADER.pack
    cached = _length_crc_cache.get
    checksum = crc32c
    append = parts.append
    header_size = FRAME_HEADER_SIZE
    size = taken = 0
    for record in itertools.islice(records, start, stop):
        if isinstance(record, tuple):
            length, crc = _pieces_length_crc(record)
            if size + header_size + length > room_bytes and taken:
                break
            append(pack(length, cached(length) or _length_crc(length), crc))
            parts.extend(record)
        else:
            length = len(record)
            if size + header_size + length > room_bytes and taken:
                break
            append(pack(length, cached(length) or _length_crc(length), checksum(record)))
            append(record)
        size += header_size + length
        taken += 1
    return taken, size


def parse_frames(
    buffer: FileView, offset: int, out: list[bytes], end: int | None = None
) -> tuple[int, FrameProblem | None]:
    """Append to ``out`` the payload of every whole, valid frame from ``offset`` to ``end``
    (the end of the buffer if None).

    Returns the offset just past the last good frame and why parsing stopped there: ``None``
    at exactly ``end``, otherwise a :class:`FrameProblem`. Callers bound what they read by
    bytes, so there is no count limit to test in this loop.
    """
    end = len(buffer) if end is None else end
    unpack_from = _FRAME_HEADER.unpack_from
    header_size = FRAME_HEADER_SIZE
    cache = _length_crc_cache
    checksum = crc32c
    append = out.append
    while offset < end:
        if end - offset < header_size:
            return offset, FrameProblem.INCOMPLETE
        length, length_crc, payload_crc = unpack_from(buffer, offset)
        if cache.get(length) != length_crc and _length_crc(length) != length_crc:
            return offset, FrameProblem.HEADER_CRC
        start = offset + header_size
        stop = start + length
        if stop > end:
            return offset, FrameProblem.INCOMPLETE
        payload = buffer[start:stop]
        if checksum(payload) != payload_crc:
            return offset, FrameProblem.PAYLOAD_CRC
        append(payload)
        offset = stop
    return offset, None


def check_frames(buffer: FileView, offset: int) -> tuple[int, int, FrameProblem | None]:
    """:func:`parse_frames` without keeping the payloads: (offset past the last whole, valid
    frame, frames checked, problem), for finding the end of the last segment at open."""
    end = len(buffer)
    unpack_from = _FRAME_HEADER.unpack_from
    header_size = FRAME_HEADER_SIZE
    cache = _length_crc_cache
    checksum = crc32c
    count = 0
    while offset < end:
        if end - offset < header_size:
            return offset, count, FrameProblem.INCOMPLETE
        length, length_crc, payload_crc = unpack_from(buffer, offset)
        if cache.get(length) != length_crc and _length_crc(length) != length_crc:
            return offset, count, FrameProblem.HEADER_CRC
        start = offset + header_size
        stop = start + length
        if stop > end:
            return offset, count, FrameProblem.INCOMPLETE
        if checksum(buffer[start:stop]) != payload_crc:
            return offset, count, FrameProblem.PAYLOAD_CRC
        offset = stop
        count += 1
    return offset, count, None


def find_valid_frame(buffer: FileView, start: int, before: int | None = None) -> int | None:
    """The first offset at or after ``start`` (and before ``before``, if given: the frame
    itself may run past it) where a whole, valid frame begins, if any.

    Used only on the damaged stretch of a last segment, to decide between a torn tail (no
    valid frame follows the damage, so cutting loses nothing that was ever durable) and
    corruption (valid frames follow, so cutting would silently drop committed records).
    """
    end = len(buffer)
    unpack_from = _FRAME_HEADER.unpack_from
    last = (
        end - FRAME_HEADER_SIZE + 1 if before is None else min(before, end - FRAME_HEADER_SIZE + 1)
    )
    for offset in range(start, last):
        length, length_crc, payload_crc = unpack_from(buffer, offset)
        if _length_crc(length) != length_crc:
            continue
        stop = offset + FRAME_HEADER_SIZE + length
        if stop <= end and crc32c(buffer[offset + FRAME_HEADER_SIZE : stop]) == payload_crc:
            return offset
    return None


def walk_frames(
    buffer: FileView, offset: int, limit: int | None = None, end: int | None = None
) -> tuple[int, int, int, FrameProblem | None]:
    """Follow the chain of frame headers from ``offset`` to ``end`` (the end of the buffer if
    None) without checking payloads, for at most ``limit`` frames (no problem is reported when
    it stops there).

    Returns (offset past the last whole frame with a valid header, frames walked, offset where
    the last of them starts, problem).
    Cheaper than :func:`parse_frames` by the payload CRC and copy, which is why recovery uses
    it to find the end of the last segment at open and leaves payload checks to the replay,
    and to step over the records a snapshot already covers.
    """
    end = len(buffer) if end is None else end
    unpack_from = _LENGTH_PAIR.unpack_from
    cache = _length_crc_cache
    header_size = FRAME_HEADER_SIZE
    count = 0
    last_start = offset
    while offset < end and count != limit:
        if end - offset < header_size:
            return offset, count, last_start, FrameProblem.INCOMPLETE
        length, length_crc = unpack_from(buffer, offset)
        if cache.get(length) != length_crc and _length_crc(length) != length_crc:
            return offset, count, last_start, FrameProblem.HEADER_CRC
        stop = offset + header_size + length
        if stop > end:
            return offset, count, last_start, FrameProblem.INCOMPLETE
        last_start = offset
        offset = stop
        count += 1
    return offset, count, last_start, None


def frame_payload_valid(buffer: FileView, offset: int) -> bool:
    """Whether the whole frame at ``offset`` (header already checked) has a good payload."""
    length, _, payload_crc = _FRAME_HEADER.unpack_from(buffer, offset)
    start = offset + FRAME_HEADER_SIZE
    return bool(crc32c(buffer[start : start + length]) == payload_crc)
