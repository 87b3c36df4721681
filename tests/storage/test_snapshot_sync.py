"""A big snapshot is synced as it is written, not once at the end (snapshots.SYNC_EVERY_BYTES).

The journal shares the disk: one fdatasync of a whole state's dirty pages made the journal's
next sync wait behind it. What must not change is the crash order: the file is synced whole
before the rename makes it the snapshot, so a crash part way through leaves only debris.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from paxoskv.storage import MemoryDisk
from paxoskv.storage.disk import Disk, OsDisk
from paxoskv.storage.headers import HEADER_SIZE
from paxoskv.storage.snapshots import (
    SYNC_EVERY_BYTES,
    WRITE_BYTES,
    check_snapshot,
    list_snapshots,
    write_snapshot_file,
)


class SyncLog(MemoryDisk):
    """A MemoryDisk that notes, at every fsync, how many bytes the file holds by then."""

    def __init__(self) -> None:
        super().__init__()
        self.synced_at: list[int] = []
        self.renamed_after_syncs: list[int] = []

    def fsync(self, handle: int) -> None:
        super().fsync(handle)
        self.synced_at.append(self._positions_of(handle))

    def rename(self, source: str, target: str) -> None:
        self.renamed_after_syncs.append(len(self.synced_at))
        super().rename(source, target)

    def steps(self) -> list[int]:
        """The bytes each sync found written since the one before."""
        return [b - a for a, b in zip([0, *self.synced_at], self.synced_at, strict=False)]

    def _positions_of(self, handle: int) -> int:
        return sum(self.size(name) for name in self.listdir() if name.endswith(".tmp"))


def _read(disk: MemoryDisk, covered_index: int) -> bytes:
    _, chunks = check_snapshot(disk, covered_index, None, keep_up_to=1 << 30)
    assert chunks is not None
    return b"".join(chunks)


def test_a_big_snapshot_is_synced_every_few_megabytes_and_renamed_after_the_last() -> None:
    rng = random.Random(7)
    pieces = [rng.randbytes(512 << 10) for _ in range(44)]  # 22 MiB, pieces as a state packs
    disk = SyncLog()
    write_snapshot_file(disk, 40, pieces, None)
    steps = disk.steps()
    assert len(disk.synced_at) == 3  # two on the way (8 MiB each), one at the end
    assert all(step <= SYNC_EVERY_BYTES + (1 << 20) for step in steps)
    assert disk.renamed_after_syncs == [3]  # the rename comes only after the whole file
    assert _read(disk, 40) == b"".join(pieces)


def test_a_small_snapshot_is_synced_once() -> None:
    disk = SyncLog()
    write_snapshot_file(disk, 3, [b"state" * 100], None)
    assert len(disk.synced_at) == 1
    assert _read(disk, 3) == b"state" * 100


def test_a_crash_part_way_leaves_the_snapshot_before_it() -> None:
    disk = MemoryDisk()
    write_snapshot_file(disk, 5, [b"old state"], None)
    synced: list[int] = []
    sync = disk.fsync

    def sync_then_stop(handle: int) -> None:
        sync(handle)
        synced.append(handle)
        if len(synced) == 2:  # two syncs on the way (16 of 20 MiB), the end not reached
            raise InterruptedError

    disk.fsync = sync_then_stop  # type: ignore[method-assign]
    with pytest.raises(InterruptedError):
        write_snapshot_file(disk, 9, [bytes([n]) * (1 << 20) for n in range(20)], None)
    disk.crash(random.Random(1))
    assert list_snapshots(disk.listdir()) == [5]
    assert _read(disk, 5) == b"old state"


def test_pieces_from_a_generator_are_written_as_they_come_and_not_held() -> None:
    """A snapshot packed as it is written (SnapshotImage.local_pieces): each piece is on the
    disk before the next is asked for, and the file reads back as their concatenation, its
    header (written last, over the place kept for it) giving their length and CRC."""
    rng = random.Random(11)
    pieces = [rng.randbytes(rng.choice((100, 300 << 10, 2 << 20))) for _ in range(20)]
    disk = MemoryDisk()
    on_disk_when_asked: list[int] = []

    def packed_as_asked() -> Iterator[bytes]:
        for piece in pieces:
            temps = [name for name in disk.listdir() if name.endswith(".tmp")]
            on_disk_when_asked.append(sum(disk.size(name) for name in temps))
            yield piece

    write_snapshot_file(disk, 9, packed_as_asked(), None)
    assert _read(disk, 9) == b"".join(pieces)
    # The file holds the header's place and every piece but the last ~1 MB write's worth.
    before = [sum(map(len, pieces[:index])) for index in range(len(pieces))]
    assert all(
        written >= HEADER_SIZE + earlier - WRITE_BYTES
        for written, earlier in zip(on_disk_when_asked, before, strict=True)
    )
    assert list_snapshots(disk.listdir()) == [9]


@pytest.mark.parametrize("kind", ["memory", "os"])
def test_write_at_overwrites_in_place_and_leaves_the_write_position(
    kind: str, tmp_path: Path
) -> None:
    disk: Disk = MemoryDisk() if kind == "memory" else OsDisk(tmp_path)
    handle = disk.create("f")
    disk.append(handle, b"0123456789")
    disk.write_at(handle, 2, b"ab")
    disk.append(handle, b"XY")
    disk.fsync(handle)
    disk.close(handle)
    assert disk.read("f") == b"01ab456789XY"
    if isinstance(disk, MemoryDisk):
        handle = disk.open_append("f")
        with pytest.raises(OSError):
            disk.write_at(handle, 11, b"past")  # only over bytes already there
        disk.close(handle)
