"""Synced journal and snapshot bytes leave the OS's page cache as they are written.

The store writes its files once and rarely reads them again (at the next start, or for a
replica far behind), so it tells the kernel to drop what it has synced (``Disk.drop_cached``).
What must hold: only synced bytes are ever handed over (a drop of dirty pages would start their
writeback early, never lose them, but it is not what the store means); nearly all of a long
journal and every snapshot are dropped, each byte once; the ``os`` mode, which syncs nothing,
drops nothing; and on a real file the pages do leave the cache, checked with ``mincore``, which
only Linux and its like have.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import sys
from pathlib import Path

import pytest

from paxoskv.storage import MemoryDisk, Store
from paxoskv.storage.disk import FOLIO_BYTES, OsDisk
from paxoskv.storage.snapshots import SYNC_EVERY_BYTES, write_snapshot_file

RECORD = b"v" * 1000


def _journal_bytes(disk: MemoryDisk) -> int:
    return sum(disk.size(name) for name in disk.listdir() if name.startswith("journal-"))


class RangeLog(MemoryDisk):
    """Keeps every range handed to drop_cached, by handle."""

    def __init__(self) -> None:
        super().__init__()
        self.ranges: dict[int, list[tuple[int, int]]] = {}

    def drop_cached(self, handle: int, offset: int, size: int) -> None:
        self.ranges.setdefault(handle, []).append((offset, offset + size))
        super().drop_cached(handle, offset, size)


def _one_after_another(ranges: list[tuple[int, int]]) -> bool:
    """Whether the ranges, in the order given, start at 0 and each where the last ended."""
    return all(
        start == end for (_, end), (start, _) in zip([(0, 0), *ranges[:-1]], ranges, strict=True)
    )


def test_a_durable_journal_drops_what_it_synced_and_nothing_else() -> None:
    disk = RangeLog()
    with Store.open(None, disk=disk, segment_size_bytes=16 << 20) as store:
        for _ in range(2400):  # 24 MB in batches of 10 records: one segment sealed, one open
            store.append([RECORD] * 10)
            store.sync()
            assert disk.dropped_unsynced == 0
        *sealed, current = sorted(n for n in disk.listdir() if n.startswith("journal-"))
        assert sealed
        for name in sealed:  # dropped to their last byte when they were sealed
            assert disk.dropped_to(name) == disk.size(name)
        # The open one but for its last stretch: the zeros ahead (up to 1 MiB), the bytes
        # since the last drop (1 MiB) and the folio being filled (2 MiB).
        assert disk.dropped_to(current) >= disk.size(current) - (4 << 20) - 16_000
        for ranges in disk.ranges.values():  # none handed over twice
            assert _one_after_another(ranges)
        assert disk.dropped_bytes <= _journal_bytes(disk)
    assert disk.dropped_unsynced == 0


def test_the_os_mode_drops_none_of_its_journal_and_syncs_and_drops_its_snapshots() -> None:
    """Its journal is not synced: a drop would only start its writeback. A snapshot, off the
    write path, is synced as it is written and dropped, as in ``durable`` mode: left dirty, a
    whole state of it piled up in new page cache (twice the CPU a write at 8 KB values)."""

    class Counted(RangeLog):
        fsyncs = 0

        def fsync(self, handle: int) -> None:
            self.fsyncs += 1
            super().fsync(handle)

    disk = Counted()
    with Store.open(None, disk=disk, durability="os") as store:
        for _ in range(300):
            store.append([RECORD] * 10)
            store.sync()
        assert disk.dropped_bytes == 0 and disk.fsyncs == 0
        store.write_snapshot(store.last_index, [b"s" * (SYNC_EVERY_BYTES + (3 << 20))])
        assert disk.fsyncs >= 2  # on the way and at the end
    (snapshot,) = [name for name in disk.listdir() if name.startswith("snapshot-")]
    assert disk.dropped_to(snapshot) == disk.size(snapshot)
    assert disk.dropped_unsynced == 0
    journal = [name for name in disk.listdir() if name.startswith("journal-")]
    assert journal and not any(disk.dropped_to(name) for name in journal)


def test_a_snapshot_drops_every_byte_it_wrote_once_synced() -> None:
    disk = RangeLog()
    pieces = [bytes([n]) * (1 << 20) for n in range(20)]
    write_snapshot_file(disk, 7, pieces, None)
    (name,) = disk.listdir()
    (ranges,) = disk.ranges.values()
    # As it goes, then the first folio (it held the header's place until the header was
    # written, last), then the rest.
    assert len(ranges) == 2 + disk.size(name) // SYNC_EVERY_BYTES
    assert ranges[-2] == (0, FOLIO_BYTES)
    assert _one_after_another([ranges[-2], *ranges[:-2], ranges[-1]])
    assert disk.dropped_bytes == disk.dropped_to(name) == disk.size(name)
    assert disk.dropped_unsynced == 0


def _in_memory_fs(path: Path) -> bool:
    """Whether ``path`` is on a filesystem whose files are only ever in RAM (the pages cannot
    leave), by the longest mount point in /proc/mounts that holds it."""
    mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    real = str(path.resolve())
    held = [(at, kind) for at, kind in mounts if (real + "/").startswith(at.rstrip("/") + "/")]
    return max(held, key=lambda mount: len(mount[0]), default=("", ""))[1] in {"tmpfs", "ramfs"}


def _resident_pages(path: Path) -> int:
    """Pages of ``path`` in the page cache, by mincore(2) over a private mapping of it."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    vector = (ctypes.c_ubyte * pages)()
    with path.open("rb") as file, mmap.mmap(file.fileno(), size, access=mmap.ACCESS_COPY) as m:
        start = ctypes.c_char.from_buffer(m)
        try:
            status = libc.mincore(
                ctypes.c_void_p(ctypes.addressof(start)), ctypes.c_size_t(size), vector
            )
        finally:
            del start  # (the mapping cannot close while a ctypes view holds it)
    assert status == 0, os.strerror(ctypes.get_errno())
    return sum(byte & 1 for byte in vector)


linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="mincore and POSIX_FADV_DONTNEED: Linux only"
)


def _skip_unless_the_cache_keeps_what_is_written(tmp_path: Path) -> None:
    """Skip where these checks mean nothing: a filesystem in RAM (tmpfs), or one that does not
    keep written pages in the page cache (one with a cache of its own, or memory pressure)."""
    if _in_memory_fs(tmp_path):
        pytest.skip("the temporary directory is on tmpfs, whose pages have nowhere to go")
    control = tmp_path / "control"
    control.write_bytes(b"c" * (1 << 20))
    kept = _resident_pages(control)
    control.unlink()
    if kept != (1 << 20) // mmap.PAGESIZE:
        pytest.skip(f"the page cache kept {kept} of a new 1 MiB file's pages: nothing to drop")


@linux_only
def test_on_a_real_file_the_dropped_pages_leave_the_cache(tmp_path: Path) -> None:
    _skip_unless_the_cache_keeps_what_is_written(tmp_path)
    disk = OsDisk(tmp_path)
    handle = disk.create("file")
    disk.append(handle, b"x" * (8 << 20))
    disk.fsync(handle)
    disk.drop_cached(handle, 0, 8 << 20)
    after = _resident_pages(tmp_path / "file")
    disk.close(handle)
    assert after == 0


@linux_only
def test_a_durable_store_leaves_little_of_its_files_cached(tmp_path: Path) -> None:
    _skip_unless_the_cache_keeps_what_is_written(tmp_path)
    with Store.open(tmp_path, segment_size_bytes=16 << 20) as store:
        for _ in range(96):  # 24 MB: one segment sealed and dropped, one open
            store.append([RECORD] * 256)  # (batches big enough for the kernel's big folios)
            store.sync()
        store.write_snapshot(store.last_index, [b"s" * (20 << 20)])
        *sealed, current = sorted(n for n in os.listdir(tmp_path) if n.startswith("journal-"))
        (snapshot,) = [n for n in os.listdir(tmp_path) if n.startswith("snapshot-")]
        assert sealed
        for name in sealed:  # dropped to the end when sealed
            assert _resident_pages(tmp_path / name) <= 1  # (its last page, if partial)
        assert _resident_pages(tmp_path / snapshot) <= 1  # (its last page, if partial)
        # The folio being filled (2 MiB), the bytes since the last drop (1 MiB and a batch),
        # the zeros preallocated ahead (1 MiB).
        assert _resident_pages(tmp_path / current) <= ((4 << 20) + 256 * len(RECORD)) // (
            mmap.PAGESIZE
        )
