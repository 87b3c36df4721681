"""A disk in RAM that remembers what was synced, so that a power cut can be simulated.

Each file keeps two copies of its bytes: what was written, and what the last ``fsync`` made
durable. The directory keeps two namespaces in the same way: the names as they are now, and
the names as of the last ``fsync_dir``. :meth:`MemoryDisk.crash` throws away everything that
was not made durable, which is exactly what a power cut may do, so a store re-opened on the
same object runs its real recovery code over the outcome. Given a random generator, the crash
is less tidy and more like a real one: each file may keep some of its unsynced tail (a torn
write; over zeros that ``extend`` preallocated, any subset of its 512-byte sectors, since
writes into place may land out of order) and each name changed since the last directory sync
may or may not have reached the disk.

The simulator keeps one ``MemoryDisk`` per simulated node for the life of a run; the
``memory`` durability mode uses a fresh one per store.
"""

from __future__ import annotations

import errno
import itertools
import os
import random
import threading
from collections.abc import Sequence

from paxoskv.errors import DataDirLocked

__all__ = ["MemoryDisk"]

_labels = itertools.count(1)


class _MemoryFile:
    """One file's bytes, now and as of its last sync."""

    __slots__ = ("data", "dirty_from", "dirty_to", "dropped_to", "durable")

    def __init__(self) -> None:
        self.data = bytearray()
        self.durable = bytearray()
        self.dirty_from = 0  # lowest offset changed since the last sync
        self.dirty_to = 0  # and the end of the highest change (0: none)
        self.dropped_to = 0  # the highest end that drop_cached was given

    def changed(self, start: int, stop: int) -> None:
        self.dirty_from = min(self.dirty_from, start)
        self.dirty_to = max(self.dirty_to, stop)

    def sync(self) -> None:
        start = min(self.dirty_from, len(self.durable))
        if len(self.durable) == len(self.data):  # writes into place: copy just those
            stop = max(start, self.dirty_to)
            self.durable[start:stop] = self.data[start:stop]
        else:
            self.durable[start:] = self.data[start:]
        self.dirty_from, self.dirty_to = len(self.data), 0

    def lose_unsynced(self, rng: random.Random | None) -> None:
        kept = self.durable
        durable_size = len(self.durable)
        unsynced = len(self.data) - durable_size
        only_appended = self.dirty_from >= durable_size
        if rng is not None and only_appended and unsynced > 0:
            choice = rng.randrange(3)  # keep none, all, or a random prefix of the tail
            keep = (0, unsynced, rng.randint(0, unsynced))[choice]
            kept = self.durable + self.data[durable_size : durable_size + keep]
        elif rng is not None and self.dirty_from < min(self.dirty_to, durable_size):
            start, stop = self.dirty_from, min(self.dirty_to, durable_size)
            if self.durable.count(0, start, stop) != stop - start:
                pass  # not a write into preallocated zeros: the synced bytes survive
            elif (choice := rng.randrange(4)) == 1:  # all of it landed
                kept = bytearray(self.durable)
                kept[start:stop] = self.data[start:stop]
            elif choice == 2:  # a prefix landed
                cut = rng.randint(start, stop)
                kept = bytearray(self.durable)
                kept[start:cut] = self.data[start:cut]
            elif choice == 3:  # some sectors landed and others did not, in any order
                kept = bytearray(self.durable)
                for sector in range(start - start % _SECTOR, stop, _SECTOR):
                    if rng.random() < 0.5:
                        low, high = max(start, sector), min(stop, sector + _SECTOR)
                        kept[low:high] = self.data[low:high]
        self.data = bytearray(kept)
        self.durable = bytearray(kept)
        self.dirty_from, self.dirty_to = len(kept), 0


_SECTOR = 512


class MemoryDisk:
    """A :class:`~paxoskv.storage.disk.Disk` in RAM; safe to share between threads."""

    def __init__(self, label: str | None = None) -> None:
        self._label = label or f"memory-disk-{next(_labels)}"
        self._mutex = threading.Lock()
        self._files: dict[str, _MemoryFile] = {}
        self._durable_names: dict[str, _MemoryFile] = {}
        self._handles: dict[int, _MemoryFile] = {}
        self._positions: dict[int, int] = {}  # handle -> where its next append goes
        self._next_handle = itertools.count(3)
        self._lock_id: int | None = None
        self.crash_count = 0
        self.dropped_bytes = 0  # asked by drop_cached, for tests of who drops what
        self.dropped_unsynced = 0  # of those, bytes not yet synced: a caller's mistake

    @property
    def location(self) -> str:
        return self._label

    def path_of(self, name: str) -> str:
        return f"{self._label}/{name}"

    def lock(self) -> int:
        with self._mutex:
            if self._lock_id is not None:
                raise DataDirLocked(self._label, os.getpid())
            self._lock_id = next(self._next_handle)
            return self._lock_id

    def unlock(self, lock_id: int) -> None:
        with self._mutex:
            if self._lock_id == lock_id:
                self._lock_id = None

    def listdir(self) -> list[str]:
        with self._mutex:
            return sorted(self._files)

    def size(self, name: str) -> int:
        with self._mutex:
            return len(self._named(name).data)

    def read(self, name: str, offset: int = 0, size: int = -1) -> bytes:
        with self._mutex:
            data = self._named(name).data
            stop = len(data) if size < 0 else offset + size
            return bytes(data[offset:stop])

    def view(self, name: str) -> bytes:
        return self.read(name)

    def create(self, name: str) -> int:
        with self._mutex:
            file = _MemoryFile()
            self._files[name] = file
            return self._open(file, 0)

    def open_append(self, name: str) -> int:
        with self._mutex:
            file = self._named(name)
            return self._open(file, len(file.data))

    def append(self, handle: int, data: bytes | memoryview) -> None:
        self.append_parts(handle, (data,))

    def append_parts(self, handle: int, parts: Sequence[bytes | memoryview]) -> None:
        with self._mutex:
            file = self._handle(handle)
            start = position = self._positions[handle]
            for part in parts:
                file.data[position : position + len(part)] = part
                position += len(part)
            self._positions[handle] = position
            file.changed(start, position)

    def write_at(self, handle: int, offset: int, data: bytes) -> None:
        with self._mutex:
            file = self._handle(handle)
            if offset + len(data) > len(file.data):
                raise OSError(errno.EINVAL, "write_at past the end of the file")
            file.data[offset : offset + len(data)] = data
            file.changed(offset, offset + len(data))

    def extend(self, handle: int, size: int) -> None:
        with self._mutex:
            file = self._handle(handle)
            if size > len(file.data):
                file.changed(len(file.data), size)
                file.data.extend(bytes(size - len(file.data)))

    def truncate(self, handle: int, size: int) -> None:
        with self._mutex:
            file = self._handle(handle)
            file.dirty_from = min(file.dirty_from, size)
            file.dirty_to = min(file.dirty_to, size)
            del file.data[size:]
            self._positions[handle] = min(self._positions[handle], size)

    def fsync(self, handle: int) -> None:
        with self._mutex:
            self._handle(handle).sync()

    def drop_cached(self, handle: int, offset: int, size: int) -> None:
        """Nothing is cached here: count the bytes, and those a crash could still lose. A
        range may run past the end of the file (to cover the last folio): only the file's
        bytes count."""
        with self._mutex:
            file = self._handle(handle)
            stop = min(offset + size, len(file.data))
            self.dropped_bytes += max(0, stop - offset)
            file.dropped_to = max(file.dropped_to, stop)
            clean_to = len(file.durable) if file.dirty_to == 0 else file.dirty_from
            clean_to = min(clean_to, len(file.durable))
            if stop > clean_to:
                self.dropped_unsynced += stop - max(offset, clean_to)

    def dropped_to(self, name: str) -> int:
        """The highest offset of ``name`` that a drop reached: what a reader would find cold."""
        with self._mutex:
            return self._named(name).dropped_to

    def close(self, handle: int) -> None:
        with self._mutex:
            self._handle(handle)
            del self._handles[handle]
            del self._positions[handle]

    def rename(self, source: str, target: str) -> None:
        with self._mutex:
            self._files[target] = self._named(source)
            del self._files[source]

    def remove(self, name: str) -> None:
        with self._mutex:
            self._named(name)
            del self._files[name]

    def fsync_dir(self) -> None:
        with self._mutex:
            self._durable_names = dict(self._files)

    def release(self) -> None:
        """The process died but the machine did not: handles and lock go, every byte stays."""
        with self._mutex:
            self._handles.clear()
            self._positions.clear()
            self._lock_id = None

    def crash(self, rng: random.Random | None = None) -> None:
        """A power cut: forget all that was not synced, then release handles and the lock.

        Without ``rng`` exactly the synced state survives. With it, each file may keep none,
        all, or a random prefix of its unsynced appended bytes, and each name created, renamed
        or removed since the last directory sync independently may or may not survive.
        """
        with self._mutex:
            names: dict[str, _MemoryFile] = {}
            for name in sorted(set(self._files) | set(self._durable_names)):
                chosen = self._durable_names.get(name)
                if rng is not None and rng.random() < 0.5:
                    chosen = self._files.get(name)
                if chosen is not None:
                    names[name] = chosen
            for file in {id(file): file for file in names.values()}.values():
                file.lose_unsynced(rng)
            self._files = names
            self._durable_names = dict(names)
            self._handles.clear()
            self._positions.clear()
            self._lock_id = None
            self.crash_count += 1

    def file_names_durable(self) -> list[str]:
        """The names that would survive a crash without an rng (for tests)."""
        with self._mutex:
            return sorted(self._durable_names)

    def _open(self, file: _MemoryFile, position: int) -> int:
        handle = next(self._next_handle)
        self._handles[handle] = file
        self._positions[handle] = position
        return handle

    def _named(self, name: str) -> _MemoryFile:
        try:
            return self._files[name]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name) from None

    def _handle(self, handle: int) -> _MemoryFile:
        try:
            return self._handles[handle]
        except KeyError:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF)) from None
