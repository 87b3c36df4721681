"""Reading journal segments: header checks, replay, and repair of a torn tail at open.

A segment is a file header (headers.py) followed by frames (framing.py). Reading is the hot
path of recovery, so it goes through the file in big chunks and parses each chunk in one call.
Sealed segments (all but the last) are checked record by record as they are replayed: reading
a whole journal twice, once to check it and once to replay it, would halve the replay speed,
and a bad record still stops the replay before any record past it is handed out. The last
segment is the one a crash can tear, so it is examined at open, when the store can still cut
a torn tail back to the last whole record instead of refusing to start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from paxoskv.errors import ConfigurationError, CorruptData, WrongEncryptionKey
from paxoskv.state.frozen_plain import PlainFrozen
from paxoskv.storage.cipher import RecordCipher, invalid_tag
from paxoskv.storage.disk import Disk, FileView
from paxoskv.storage.framing import (
    FRAME_HEADER_SIZE,
    FrameProblem,
    check_frames,
    find_valid_frame,
    frame_payload_valid,
    parse_frames,
    walk_frames,
)
from paxoskv.storage.headers import (
    HEADER_SIZE,
    SEGMENT_MAGIC,
    FileHeader,
    parse_segment_name,
)

__all__ = [
    "READ_CHUNK_BYTES",
    "LastSegment",
    "SegmentFile",
    "broken_name",
    "check_key",
    "list_segments",
    "parse_segment_records",
    "read_segment_header",
    "read_segment_records",
    "recover_last_segment",
]

READ_CHUNK_BYTES = 8 << 20
log = logging.getLogger("paxoskv.storage")


class SegmentFile(PlainFrozen):
    __slots__ = ("first_index", "name")
    __match_args__ = ("first_index", "name")

    first_index: int
    name: str

    def __init__(self, first_index: int, name: str) -> None:
        object.__setattr__(self, "first_index", first_index)
        object.__setattr__(self, "name", name)


class LastSegment(PlainFrozen):
    """What open found in the last segment, after any torn tail was cut."""

    __slots__ = ("data", "end_offset", "header", "record_count", "segment")
    __match_args__ = ("segment", "header", "record_count", "end_offset", "data")

    segment: SegmentFile
    header: FileHeader | None  # None: the file held no whole record and was removed
    record_count: int
    end_offset: int
    data: FileView | None  # the whole file as open viewed it (a memory map, on real files)

    def __init__(
        self,
        segment: SegmentFile,
        header: FileHeader | None,
        record_count: int,
        end_offset: int,
        data: FileView | None = None,
    ) -> None:
        object.__setattr__(self, "segment", segment)
        object.__setattr__(self, "header", header)
        object.__setattr__(self, "record_count", record_count)
        object.__setattr__(self, "end_offset", end_offset)
        object.__setattr__(self, "data", data)


def list_segments(names: list[str]) -> list[SegmentFile]:
    found = []
    for name in names:
        first = parse_segment_name(name)
        if first is not None:
            found.append(SegmentFile(first, name))
    return sorted(found, key=lambda segment: segment.first_index)


def check_key(header: FileHeader, cipher: RecordCipher | None, path: str) -> None:
    """Refuse a file whose encryption does not match the key given (or its absence)."""
    if header.encrypted and cipher is None:
        raise WrongEncryptionKey(path, key_given=False)
    if not header.encrypted and cipher is not None:
        raise ConfigurationError(
            f"{path} was written without encryption but an encryption key was given; open "
            "this data dir without a key (a data dir is encrypted from its first file on)"
        )
    if cipher is not None and cipher.key_check(header.salt, header.signed_prefix()) != (
        header.key_check
    ):
        raise WrongEncryptionKey(path)


def read_segment_header(
    disk: Disk, segment: SegmentFile, cipher: RecordCipher | None
) -> FileHeader:
    path = disk.path_of(segment.name)
    header = FileHeader.unpack(disk.read(segment.name, 0, HEADER_SIZE), path, SEGMENT_MAGIC)
    _check_first_index(header, segment, path)
    check_key(header, cipher, path)
    return header


def _check_first_index(header: FileHeader, segment: SegmentFile, path: str) -> None:
    if header.index != segment.first_index:
        raise CorruptData(
            path,
            0,
            f"the header says the first record is {header.index}, the name says "
            f"{segment.first_index}",
        )


def read_segment_records(
    disk: Disk,
    segment: SegmentFile,
    header: FileHeader,
    cipher: RecordCipher | None,
    end_offset: int,
    skip: int = 0,
) -> Iterator[tuple[int, list[bytes]]]:
    """Yield (index of the first, payloads) for the segment's records up to byte
    ``end_offset``, a chunk's worth at a time, stepping over the first ``skip`` records.

    The records stepped over are followed by their checked headers alone: their payloads are
    neither copied nor checked, since nobody reads them (a restart skips what its snapshot
    covers, most of a 16 MB segment at worst). Raises :class:`CorruptData` naming the byte
    offset of the first bad frame, or where the data ends in the middle of a frame.
    """
    path = disk.path_of(segment.name)
    offset = HEADER_SIZE  # file offset of the first byte not yet parsed
    index = segment.first_index
    want = READ_CHUNK_BYTES
    while offset < end_offset:
        # A frame cut by the end of a chunk is read again from its start with the next one
        # (not joined to it: that copied every chunk whole).
        buffer = disk.read(segment.name, offset, min(want, end_offset - offset))
        if not buffer:
            break
        start, skipped = _step_over(buffer, 0, skip, path, offset)
        skip -= skipped
        index += skipped
        payloads: list[bytes] = []
        consumed = _parse_checked(buffer, start, payloads, path, offset) if not skip else start
        if cipher is not None:
            payloads = _decrypt(payloads, cipher, header, segment, index, offset + start, path)
        yield index, payloads
        index += len(payloads)
        if consumed == 0:  # one frame longer than the chunk: read it whole, if it is there
            want = _frame_size_hint(buffer)
            if want <= len(buffer) or offset + want > end_offset:
                break
            continue
        offset += consumed
        want = READ_CHUNK_BYTES
    if offset < end_offset:
        raise CorruptData(path, offset, "the segment ends in the middle of a record")


def parse_segment_records(
    data: FileView,
    segment: SegmentFile,
    header: FileHeader,
    cipher: RecordCipher | None,
    end_offset: int,
    disk: Disk,
    skip: int = 0,
) -> Iterator[tuple[int, list[bytes]]]:
    """As :func:`read_segment_records`, from the segment's bytes already in memory.

    Open views the last segment whole to find its end; its replay parses that view, with the
    same checks, rather than read the file a second time (nor copy its first ``end_offset``
    bytes: the end is passed down instead).
    """
    path = disk.path_of(segment.name)
    end = min(end_offset, len(data))
    start, skipped = _step_over(data, HEADER_SIZE, skip, path, 0, end)
    payloads: list[bytes] = []
    consumed = _parse_checked(data, start, payloads, path, 0, end)
    if consumed < end_offset:
        raise CorruptData(path, consumed, "the segment ends in the middle of a record")
    index = segment.first_index + skipped
    if cipher is not None:
        payloads = _decrypt(payloads, cipher, header, segment, index, start, path)
    yield index, payloads


def _step_over(
    buffer: FileView, start: int, count: int, path: str, base: int, end: int | None = None
) -> tuple[int, int]:
    """Walk up to ``count`` frames from ``start`` to ``end`` in ``buffer`` (which begins at
    file offset ``base``): (where the walk stopped, frames walked). A header failing its CRC
    is damage."""
    if not count:
        return start, 0
    stop, walked, _, problem = walk_frames(buffer, start, count, end)
    if problem is FrameProblem.HEADER_CRC:
        raise CorruptData(path, base + stop, problem.value)
    return stop, walked


def _parse_checked(
    buffer: FileView, start: int, out: list[bytes], path: str, base: int, end: int | None = None
) -> int:
    """:func:`parse_frames`, raising CorruptData (at file offset ``base`` + where) on damage."""
    consumed, problem = parse_frames(buffer, start, out, end)
    if problem in (FrameProblem.HEADER_CRC, FrameProblem.PAYLOAD_CRC):
        assert problem is not None
        raise CorruptData(path, base + consumed, problem.value)
    return consumed


def _frame_size_hint(carry: bytes) -> int:
    """How big the frame that starts ``carry`` says it is (its header was already checked)."""
    if len(carry) < FRAME_HEADER_SIZE:
        return 0
    return FRAME_HEADER_SIZE + int.from_bytes(carry[:4], "little")


def _decrypt(
    payloads: list[bytes],
    cipher: RecordCipher,
    header: FileHeader,
    segment: SegmentFile,
    index: int,
    offset: int,
    path: str,
) -> list[bytes]:
    plain = []
    for ciphertext in payloads:
        try:
            plain.append(cipher.open(header.salt, index - segment.first_index, index, ciphertext))
        except invalid_tag():
            raise CorruptData(
                path, offset, f"record {index} does not decrypt: it was altered after writing"
            ) from None
        index += 1
        offset += FRAME_HEADER_SIZE + len(ciphertext)
    return plain


def recover_last_segment(
    disk: Disk, segment: SegmentFile, cipher: RecordCipher | None
) -> LastSegment:
    """Find the end of the last segment; cut a torn tail, refuse damage with records after it.

    The rule: damage counts as a torn tail only when no valid frame follows it, or when the
    damaged frame has a 512-byte sector of zeros where its bytes should be. A crash that
    interrupts an append leaves a prefix of it, so nothing valid can follow; a write over
    preallocated zeros may land sector by sector in any order, leaving zeros in the frames it
    tore (a frame written after the last completed fsync: every frame after it was too, and
    was never reported durable). A flipped byte in an older record leaves the records after
    it intact, and those would be lost by a cut. Zeros after the last record are the
    preallocated rest of the segment: the clean end, cut off with no warning.
    """
    data = disk.view(segment.name)
    path = disk.path_of(segment.name)
    content = _content_end(data)
    header = _last_segment_header(data, segment, path, content)
    if header is None:
        _cut(disk, segment, data, 0, content, remove=True)
        return LastSegment(segment, None, 0, 0)
    check_key(header, cipher, path)
    end, count, last_start, problem = walk_frames(data, HEADER_SIZE)
    if count and data.find(_ZERO_SECTOR, HEADER_SIZE, end) >= 0:
        # A write into preallocated zeros can tear a frame that has whole frames after it,
        # and what it leaves is a sector of zeros: only then is every payload checked here
        # (a record may hold that many zeros itself), and otherwise the last one alone.
        end, count, problem = check_frames(data, HEADER_SIZE)
    elif count and not frame_payload_valid(data, last_start):
        end, count, problem = last_start, count - 1, FrameProblem.PAYLOAD_CRC
    if (
        problem is not None
        and end < content
        and not _unlanded(data, end, problem)
        and find_valid_frame(data, end + 1, content) is not None
    ):
        raise CorruptData(path, end, problem.value + ", and whole records follow it")
    if end < len(data) or count == 0:
        _cut(disk, segment, data, end, content, remove=count == 0)
    return LastSegment(segment, header if count else None, count, end, data if count else None)


SECTOR_BYTES = 512
"""The unit in which a write may reach the disk or not, as far as recovery assumes."""
_ZERO_SECTOR = bytes(SECTOR_BYTES)


def _content_end(data: FileView) -> int:
    """The offset past the last byte of ``data`` that is not zero (read from the end: the
    zeros are the preallocated rest, a chunk at most, and the segment may be 16 MB or more)."""
    end = len(data)
    while end > 0:
        start = max(0, end - (64 << 10))
        kept = len(data[start:end].rstrip(b"\0"))
        if kept:
            return start + kept
        end = start
    return 0


def _unlanded(data: FileView, offset: int, problem: FrameProblem) -> bool:
    """Whether the damaged frame at ``offset`` has, in some sector, only zeros for bytes: a
    write over preallocated zeros that had not landed in full when the machine stopped."""
    stop = offset + FRAME_HEADER_SIZE
    if problem is FrameProblem.PAYLOAD_CRC:
        stop += int.from_bytes(data[offset : offset + 4], "little")
    stop = min(stop, len(data))
    while offset < stop:
        # A sector lands whole or not at all: the frame's bytes in it and every byte after
        # them in that sector (later frames, written with it) must be zeros, not a sliver.
        boundary = min(len(data), (offset // SECTOR_BYTES + 1) * SECTOR_BYTES)
        if data[offset:boundary].count(0) == boundary - offset:
            return True
        offset = boundary
    return False


def _last_segment_header(
    data: FileView, segment: SegmentFile, path: str, content: int
) -> FileHeader | None:
    """The header, or None when the file is a torn beginning with no valid frame after it."""
    if len(data) < HEADER_SIZE or content == 0:
        return None
    try:
        header = FileHeader.unpack(data, path, SEGMENT_MAGIC)
    except CorruptData:
        if find_valid_frame(data, HEADER_SIZE, content) is None:
            return None
        raise
    _check_first_index(header, segment, path)
    return header


def _cut(
    disk: Disk, segment: SegmentFile, data: FileView, end: int, content: int, *, remove: bool
) -> None:
    """Keep the bytes past ``end`` (up to ``content``, past which all are zeros) in a
    ``.broken`` file, then cut or remove the segment. Zeros alone are cut without a word:
    they are the preallocated rest of the segment."""
    if end < content:
        kept_name = broken_name(disk, segment.name)
        handle = disk.create(kept_name)
        disk.append(handle, data[end:content])
        disk.fsync(handle)
        disk.close(handle)
        disk.fsync_dir()
        log.warning(
            "journal %s: cut a torn tail of %d bytes at byte %d (a write interrupted by a "
            "crash); the cut bytes are kept in %s",
            disk.path_of(segment.name),
            content - end,
            end,
            disk.path_of(kept_name),
        )
    if remove:
        disk.remove(segment.name)
        disk.fsync_dir()
        return
    handle = disk.open_append(segment.name)
    disk.truncate(handle, end)
    disk.fsync(handle)
    disk.close(handle)


def broken_name(disk: Disk, name: str) -> str:
    """A free name for keeping damaged bytes aside: ``<name>.broken``, then ``.broken.2``..."""
    taken = set(disk.listdir())
    candidate = f"{name}.broken"
    number = 2
    while candidate in taken:
        candidate = f"{name}.broken.{number}"
        number += 1
    return candidate
