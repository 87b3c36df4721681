"""Helpers for the storage tests: copies of in-memory disks, byte surgery, full recovery.

Most tests run on :class:`MemoryDisk` because they repeat one recovery hundreds of times (a
cut at every byte, a flipped byte at every offset); a few run the same checks on real files.
"""

from __future__ import annotations

from collections.abc import Sequence

from paxoskv.storage import MemoryDisk, Store
from paxoskv.storage.disk import Disk

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def copy_disk(source: Disk) -> MemoryDisk:
    """A fresh MemoryDisk holding every file of ``source``, all of it synced."""
    copy = MemoryDisk()
    for name in source.listdir():
        handle = copy.create(name)
        copy.append(handle, source.read(name))
        copy.fsync(handle)
        copy.close(handle)
    copy.fsync_dir()
    return copy


def cut(disk: Disk, name: str, size: int) -> None:
    handle = disk.open_append(name)
    disk.truncate(handle, size)
    disk.fsync(handle)
    disk.close(handle)


def flip(disk: Disk, name: str, offset: int, mask: int = 0xFF) -> None:
    """Change one byte of a file in place (a MemoryDisk or any disk that can rewrite)."""
    data = bytearray(disk.read(name))
    data[offset] ^= mask
    handle = disk.create(name)
    disk.append(handle, bytes(data))
    disk.fsync(handle)
    disk.close(handle)


def journal_names(disk: Disk) -> list[str]:
    return [
        name for name in disk.listdir() if name.startswith("journal-") and name.endswith(".log")
    ]


def recover_all(store: Store) -> tuple[tuple[int, bytes] | None, list[tuple[int, bytes]]]:
    """The snapshot and every record a store recovered, consuming both."""
    snapshot = store.recovered_snapshot()
    return snapshot, list(store.recovered_records())


def write_journal(disk: Disk, batches: Sequence[Sequence[bytes]], **settings: object) -> None:
    """Append and sync each batch in turn, then close the store."""
    with Store.open(None, disk=disk, **settings) as store:  # type: ignore[arg-type]
        for batch in batches:
            store.append(batch)
            store.sync()


def numbered(records: Sequence[bytes], first: int = 1) -> list[tuple[int, bytes]]:
    return list(enumerate(records, start=first))
