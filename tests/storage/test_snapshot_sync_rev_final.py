"""Review of ecb2f1b (a big snapshot piece written in 8 MiB slices of a view).

The slices were cut from the start of each write, not at the next sync point: a run of small
pieces left just under SYNC_EVERY_BYTES unsynced, and a big piece after them added a whole
slice before the next sync, some 15.5 MiB in one step for a state of 1 KB values followed by
512 rows of 64 KB values. And every write, the small ones too, reached ``Disk.append`` as a
memoryview, which a ``Disk`` written for ``bytes`` (the protocol before the commit) may not take.
"""

from __future__ import annotations

import random

from paxoskv.storage import FaultyDisk, MemoryDisk
from paxoskv.storage.cipher import RecordCipher
from paxoskv.storage.faults import DiskStopped
from paxoskv.storage.snapshots import (
    SYNC_EVERY_BYTES,
    WRITE_BYTES,
    check_snapshot,
    list_snapshots,
    write_snapshot_file,
)
from tests.storage.test_snapshot_sync import SyncLog, _read

MIXED = [bytes([n]) * (512 << 10) for n in range(15)] + [b"x" * (32 << 20)]  # 7.5 + 32 MiB


def test_a_big_piece_after_small_ones_is_cut_at_the_next_sync_point() -> None:
    disk = SyncLog()
    write_snapshot_file(disk, 9, MIXED, None)
    assert max(disk.steps()) <= SYNC_EVERY_BYTES + WRITE_BYTES, disk.steps()
    assert _read(disk, 9) == b"".join(MIXED)


def test_writes_that_need_no_cut_reach_the_disk_as_the_bytes_they_are() -> None:
    seen: list[type] = []

    class Types(MemoryDisk):
        def append(self, handle: int, data: bytes | memoryview) -> None:
            seen.append(type(data))
            super().append(handle, data)

    write_snapshot_file(Types(), 3, [b"state" * 100, bytes(600 << 10)], None)
    assert seen == [bytes, bytes, bytes]  # the header, the small piece, the 600 KB one


def test_a_crash_at_any_step_of_a_big_encrypted_snapshot_keeps_a_whole_one() -> None:
    """Every prefix of the changes, then a power cut keeping a random part of what was not
    synced: the newest snapshot left checks and is the old state or the whole new one."""
    cipher = RecordCipher(bytes(range(32)))
    pieces = [bytes([n]) * (512 << 10) for n in range(6)] + [b"y" * (18 << 20)]
    for stop in range(40):
        disk = MemoryDisk()
        write_snapshot_file(disk, 5, [b"old state"], cipher)
        faulty = FaultyDisk(disk)
        faulty.stop_after(stop)
        try:
            write_snapshot_file(faulty, 9, pieces, cipher)
            finished = True
        except DiskStopped:
            finished = False
        disk.crash(random.Random(stop))
        newest = max(list_snapshots(disk.listdir()))
        _, chunks = check_snapshot(disk, newest, cipher, keep_up_to=1 << 30)
        assert chunks is not None
        assert b"".join(chunks) == (b"old state" if newest == 5 else b"".join(pieces))
        if finished:
            # The header's place; sealed as they come, the six 512 KB pieces, the 18 MiB one
            # in 3 slices cut at the sync points, then the tag.
            assert faulty.calls["append"] == 11
            return
    raise AssertionError("the snapshot never finished")
