"""What a store finds when it opens a data dir: the snapshot to start from, and the plan for
replaying the journal records after it.

The order of work is the order of trust. Debris of an interrupted snapshot (``*.tmp``) goes
first. Then the newest snapshot that passes every check is chosen, and any newer one that
fails is set aside, so a bad newest snapshot falls back to the one before. Then every segment
header is read, which catches a wrong key or a foreign file before anything is replayed, and
the chain of segments from the snapshot onwards is checked for holes by name. Last, the last
segment is examined and a torn tail is cut. Records of sealed segments are checked while they
are replayed (journal.py says why).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

from paxoskv.errors import CorruptData, StorageFailed
from paxoskv.state.frozen_plain import PlainFrozen, PlainRecord
from paxoskv.storage.cipher import RecordCipher
from paxoskv.storage.disk import Disk, FileView
from paxoskv.storage.headers import FileHeader, snapshot_name
from paxoskv.storage.journal import (
    SegmentFile,
    broken_name,
    list_segments,
    parse_segment_records,
    read_segment_header,
    read_segment_records,
    recover_last_segment,
)
from paxoskv.storage.snapshots import TEMP_SUFFIX, check_snapshot, list_snapshots

__all__ = ["Recovered", "ReplayStep", "recover", "replay"]

log = logging.getLogger("paxoskv.storage")


class ReplayStep(PlainFrozen):
    """One segment to replay, where its bytes end, and the index its last record must have."""

    __slots__ = ("data", "end_offset", "header", "last_index", "segment")
    __match_args__ = ("segment", "header", "end_offset", "last_index", "data")

    segment: SegmentFile
    header: FileHeader
    end_offset: int | None  # None: the file's size when replayed (a sealed segment)
    last_index: int
    data: FileView | None  # the whole file as open viewed it (the last segment), if held

    def __init__(
        self,
        segment: SegmentFile,
        header: FileHeader,
        end_offset: int | None,
        last_index: int,
        data: FileView | None = None,
    ) -> None:
        object.__setattr__(self, "segment", segment)
        object.__setattr__(self, "header", header)
        object.__setattr__(self, "end_offset", end_offset)
        object.__setattr__(self, "last_index", last_index)
        object.__setattr__(self, "data", data)


KEEP_SNAPSHOT_BYTES = 64 << 20
"""A chosen snapshot up to this size is kept from its check at open for the hand-over."""


class Recovered(PlainRecord):
    __slots__ = (
        "last_index",
        "last_segment_end",
        "replay_after",
        "replay_steps",
        "segments",
        "snapshot",
        "snapshot_chunks",
        "snapshot_indexes",
    )
    __match_args__ = (
        "snapshot",
        "snapshot_chunks",
        "snapshot_indexes",
        "segments",
        "replay_steps",
        "replay_after",
        "last_index",
        "last_segment_end",
    )

    snapshot: tuple[int, FileHeader] | None  # checked whole
    snapshot_chunks: list[bytes] | None  # its blob as checked, if small enough to keep
    snapshot_indexes: list[int]  # snapshot files still present after recovery, oldest first
    segments: list[SegmentFile]  # segment files still present, oldest first
    replay_steps: list[ReplayStep]
    replay_after: int  # records at or below this index are in the snapshot
    last_index: int
    last_segment_end: tuple[SegmentFile, int] | None  # the tail segment and its byte size

    def __init__(
        self,
        snapshot: tuple[int, FileHeader] | None,
        snapshot_chunks: list[bytes] | None,
        snapshot_indexes: list[int],
        segments: list[SegmentFile],
        replay_steps: list[ReplayStep],
        replay_after: int,
        last_index: int,
        last_segment_end: tuple[SegmentFile, int] | None,
    ) -> None:
        self.snapshot = snapshot
        self.snapshot_chunks = snapshot_chunks
        self.snapshot_indexes = snapshot_indexes
        self.segments = segments
        self.replay_steps = replay_steps
        self.replay_after = replay_after
        self.last_index = last_index
        self.last_segment_end = last_segment_end


def recover(disk: Disk, cipher: RecordCipher | None) -> Recovered:
    """Examine the data dir and repair what a crash may leave; raise on anything else."""
    _remove_temp_files(disk)
    names = disk.listdir()
    snapshot, chunks, snapshot_indexes = _choose_snapshot(disk, list_snapshots(names), cipher)
    covered = snapshot[0] if snapshot else 0
    segments = list_segments(names)
    headers = {s.name: read_segment_header(disk, s, cipher) for s in segments[:-1]}
    chain = _replay_chain(disk, segments, covered)
    if not chain:
        return Recovered(snapshot, chunks, snapshot_indexes, segments, [], covered, covered, None)
    tail = recover_last_segment(disk, chain[-1], cipher)
    steps = [
        ReplayStep(segment, headers[segment.name], None, following.first_index - 1)
        for segment, following in itertools.pairwise(chain)
    ]
    journal_last = tail.segment.first_index + tail.record_count - 1
    if tail.header is None:
        segments.remove(tail.segment)
        last_segment_end = None
    else:
        # The replay parses the bytes open has just read, rather than read them again.
        step = ReplayStep(tail.segment, tail.header, tail.end_offset, journal_last, tail.data)
        steps.append(step)
        last_segment_end = (tail.segment, tail.end_offset)
        _sync_file(disk, tail.segment.name)
    last_index = max(covered, journal_last)
    return Recovered(
        snapshot, chunks, snapshot_indexes, segments, steps, covered, last_index, last_segment_end
    )


def replay(
    disk: Disk, cipher: RecordCipher | None, steps: list[ReplayStep], after: int
) -> Iterator[tuple[int, bytes]]:
    """Yield (index, record) for every record after ``after``, checking each on the way.

    A read error is a device failing under us: it stops the replay as StorageFailed.
    """
    for step in steps:
        try:
            yield from _replay_segment(disk, cipher, step, after)
        except OSError as error:
            raise StorageFailed(disk.path_of(step.segment.name), error) from error


def _replay_segment(
    disk: Disk, cipher: RecordCipher | None, step: ReplayStep, after: int
) -> Iterator[tuple[int, bytes]]:
    segment = step.segment
    end = step.end_offset if step.end_offset is not None else disk.size(segment.name)
    index = segment.first_index
    covered = max(0, after + 1 - index)  # records the snapshot holds: stepped over
    if step.data is not None:
        chunks = parse_segment_records(step.data, segment, step.header, cipher, end, disk, covered)
    else:
        chunks = read_segment_records(disk, segment, step.header, cipher, end, covered)
    for index, payloads in chunks:
        count = len(payloads)
        if index + count - 1 > step.last_index:
            raise _chain_broken(disk, segment, step, end, index + count - 1)
        skip = max(0, after + 1 - index)  # (a frame too long for a chunk is read, not walked)
        if skip < count:
            tail = payloads[skip:] if skip else payloads
            yield from zip(range(index + skip, index + count), tail, strict=True)
        index += count
    if index - 1 != step.last_index:
        raise _chain_broken(disk, segment, step, end, index - 1)


def _chain_broken(
    disk: Disk, segment: SegmentFile, step: ReplayStep, end: int, last_found: int
) -> CorruptData:
    following = step.last_index + 1
    if last_found < step.last_index:
        problem = (
            f"the segment ends at record {last_found} but the next segment starts at "
            f"{following}: records {last_found + 1} to {step.last_index} are missing (a "
            "segment file was lost, removed or cut short)"
        )
    else:
        problem = (
            f"the segment runs past record {step.last_index} into the next segment, which "
            f"starts at {following} (a segment file was replaced)"
        )
    return CorruptData(disk.path_of(segment.name), end, problem)


def _remove_temp_files(disk: Disk) -> None:
    temps = [name for name in disk.listdir() if name.endswith(TEMP_SUFFIX)]
    for name in temps:
        disk.remove(name)
    if temps:
        disk.fsync_dir()


def _choose_snapshot(
    disk: Disk, indexes: list[int], cipher: RecordCipher | None
) -> tuple[tuple[int, FileHeader] | None, list[bytes] | None, list[int]]:
    """The newest snapshot that reads back whole (and its blob, if small enough to keep);
    the ones that do not are set aside."""
    for covered in reversed(indexes):
        try:
            header, chunks = check_snapshot(disk, covered, cipher, keep_up_to=KEEP_SNAPSHOT_BYTES)
        except CorruptData as error:
            _set_aside(disk, snapshot_name(covered), error)
            indexes = [i for i in indexes if i != covered]
            continue
        return (covered, header), chunks, indexes
    return None, None, indexes


def _set_aside(disk: Disk, name: str, error: CorruptData) -> None:
    kept = broken_name(disk, name)
    disk.rename(name, kept)
    disk.fsync_dir()
    log.warning(
        "snapshot %s is damaged (%s); moved to %s, using the one before", name, error.reason, kept
    )


def _replay_chain(disk: Disk, segments: list[SegmentFile], covered: int) -> list[SegmentFile]:
    """The segments that hold the records after ``covered``, checked for a missing start."""
    start = None
    for position, segment in enumerate(segments):
        if segment.first_index <= covered + 1:
            start = position
    if start is None:
        if segments:  # the first segment starts beyond the snapshot: records are missing
            first = segments[0]
            raise CorruptData(
                disk.path_of(first.name),
                None,
                f"the journal starts at record {first.first_index} but the newest usable "
                f"snapshot covers records only up to {covered}; records {covered + 1} to "
                f"{first.first_index - 1} are missing",
            )
        return []
    return segments[start:]


def _sync_file(disk: Disk, name: str) -> None:
    """Records that survived a crash unsynced are about to be treated as durable: sync them."""
    handle = disk.open_append(name)
    try:
        disk.fsync(handle)
    finally:
        disk.close(handle)
    disk.fsync_dir()
