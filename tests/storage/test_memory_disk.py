"""MemoryDisk's crash model, which the simulator and the crash tests rely on."""

from __future__ import annotations

import errno
import random

import pytest

from paxoskv.errors import DataDirLocked
from paxoskv.storage import MemoryDisk


def _disk_with_a_synced_and_an_unsynced_part() -> tuple[MemoryDisk, int]:
    disk = MemoryDisk()
    handle = disk.create("file")
    disk.append(handle, b"synced.")
    disk.fsync(handle)
    disk.fsync_dir()
    disk.append(handle, b"unsynced tail")
    return disk, handle


def test_a_clean_crash_keeps_exactly_what_was_synced() -> None:
    disk, handle = _disk_with_a_synced_and_an_unsynced_part()
    disk.create("never synced name")
    disk.crash()
    assert disk.listdir() == ["file"]
    assert disk.read("file") == b"synced."
    with pytest.raises(OSError) as caught:
        disk.append(handle, b"x")  # handles die with the crash
    assert caught.value.errno == errno.EBADF


def test_an_untidy_crash_keeps_a_prefix_of_the_unsynced_tail() -> None:
    seen = set()
    for seed in range(40):
        disk, _ = _disk_with_a_synced_and_an_unsynced_part()
        disk.crash(random.Random(seed))
        content = disk.read("file")
        assert (b"synced." + b"unsynced tail").startswith(content)
        assert content.startswith(b"synced.")
        seen.add(len(content))
    assert len(seen) > 3  # none, all, and torn prefixes all occur


def test_names_changed_since_the_last_directory_sync_may_or_may_not_survive() -> None:
    outcomes = set()
    for seed in range(30):
        disk = MemoryDisk()
        for name in ("kept", "old"):
            handle = disk.create(name)
            disk.fsync(handle)
        disk.fsync_dir()
        disk.rename("old", "new")
        disk.remove("kept")
        disk.crash(random.Random(seed))
        outcomes.add(tuple(disk.listdir()))
    assert ("kept", "old") in outcomes  # nothing reached the disk
    assert ("new",) in outcomes  # everything did
    assert len(outcomes) > 2


def test_a_truncate_is_undone_by_a_crash_before_its_sync() -> None:
    disk, handle = _disk_with_a_synced_and_an_unsynced_part()
    disk.fsync(handle)
    disk.truncate(handle, 3)
    disk.crash(random.Random(1))
    assert disk.read("file") == b"synced.unsynced tail"


def test_release_keeps_every_byte_and_frees_the_lock() -> None:
    disk, _ = _disk_with_a_synced_and_an_unsynced_part()
    disk.lock()
    with pytest.raises(DataDirLocked):
        disk.lock()
    disk.release()
    assert disk.read("file") == b"synced.unsynced tail"
    disk.lock()


def test_a_stale_lock_id_does_not_unlock() -> None:
    disk = MemoryDisk()
    stale = disk.lock()
    disk.crash()
    current = disk.lock()
    disk.unlock(stale)
    with pytest.raises(DataDirLocked):
        disk.lock()
    disk.unlock(current)
    disk.lock()
