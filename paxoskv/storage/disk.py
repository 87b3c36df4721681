"""The disk under a store, as an interface, and its real-files implementation.

Storage talks to files only through :class:`Disk`, by name inside one data directory, so the
same framing and recovery code runs on real files (:class:`OsDisk`), in RAM with simulated
power cuts (:class:`~paxoskv.storage.memory_disk.MemoryDisk`, used by the ``memory`` mode and
the deterministic simulator), and under injected faults
(:class:`~paxoskv.storage.faults.FaultyDisk`). Handles are small ints: a file descriptor for
``OsDisk``, a counter for the others.

The operations are the few that crash safety needs and no more: append-only writes (at the
end of what was written through the handle, which in a preallocated file is short of its
size), ``extend`` to preallocate zeros ahead of them, an explicit ``fsync`` per file, and an
explicit ``fsync_dir`` because on Linux a new or renamed name is only durable once its
directory is synced.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import mmap
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Protocol, TypeAlias

from paxoskv.errors import DataDirLocked

__all__ = [
    "FOLIO_BYTES",
    "LOCK_FILE_NAME",
    "Disk",
    "FileView",
    "NoSyncDisk",
    "OsDisk",
    "folio_ceil",
    "folio_floor",
]

LOCK_FILE_NAME = "LOCK"
FOLIO_BYTES = 2 << 20
"""The kernel caches a file in folios (up to 2 MB on x86-64 with 4 KB pages; other
configurations allow bigger ones) and drops only the folios wholly inside the range it is
given: a writer that drops as it goes ends each range at a multiple of this, and starts the
next there, or the folio a range's end cut would stay cached for good (ranges that each began
where the last one ended left a 512 KB folio of every MiB of the journal cached)."""
_FADVISE: int | None = getattr(os, "POSIX_FADV_DONTNEED", None)  # (not on macOS)

FileView: TypeAlias = bytes | mmap.mmap
"""A whole file to read, from :meth:`Disk.view`: slicing it gives bytes, and ``len``,
``find`` and ``struct.unpack_from`` work on it as on bytes."""


def folio_floor(offset: int) -> int:
    """The :data:`FOLIO_BYTES` boundary at or below ``offset``: where a drop of synced bytes
    ends while the folio holding ``offset`` is still being written."""
    return offset - offset % FOLIO_BYTES


def folio_ceil(offset: int) -> int:
    """The :data:`FOLIO_BYTES` boundary at or above ``offset``: where the drop of a finished
    file ends, past its end, so the folio holding its last bytes goes too."""
    return -(-offset // FOLIO_BYTES) * FOLIO_BYTES


class Disk(Protocol):
    """A flat directory of files, as the store needs it."""

    @property
    def location(self) -> str:
        """Where this disk is, for messages: the directory path or a memory label."""
        ...

    def path_of(self, name: str) -> str:
        """The full path of ``name``, for messages."""
        ...

    def lock(self) -> int:
        """Take the directory or raise :class:`DataDirLocked`; returns the lock's id.

        The id goes back to :meth:`unlock`, so that a store abandoned by a simulated crash
        cannot release the lock of the store opened after it on the same disk.
        """
        ...

    def unlock(self, lock_id: int) -> None:
        """Release the lock if ``lock_id`` still holds it; otherwise do nothing."""
        ...

    def listdir(self) -> list[str]: ...

    def size(self, name: str) -> int: ...

    def read(self, name: str, offset: int = 0, size: int = -1) -> bytes:
        """Up to ``size`` bytes from ``offset`` (all of the rest when -1)."""
        ...

    def view(self, name: str) -> FileView:
        """The whole file, to read where it lies: open scans the last journal segment (16 MB by
        default) for its end, and a copy into fresh memory cost more than the scan (on this
        project's VM, each new page is cleared for about as long as it takes to copy). The
        file must not shrink while the view is in use; a memory map is closed when dropped.
        """
        ...

    def create(self, name: str) -> int:
        """A new, empty file (an old one of that name is emptied), open for appending."""
        ...

    def open_append(self, name: str) -> int:
        """The file open for appending at its current end."""
        ...

    def append(self, handle: int, data: bytes | memoryview) -> None:
        """Write all of ``data`` at the handle's write position and move it past them, or
        raise ``OSError``. ``data`` may be a memoryview (a slice of a big snapshot piece). The
        position starts at 0 for :meth:`create` and at the file's size for
        :meth:`open_append`; zeros preallocated by :meth:`extend` past it are overwritten.
        """
        ...

    def write_at(self, handle: int, offset: int, data: bytes) -> None:
        """Write all of ``data`` over bytes already in the file at ``offset`` (the write
        position stays), or raise ``OSError``. A snapshot streamed to its file learns its
        length and CRC only at the end, and writes its header over the place it kept then.
        """
        ...

    def extend(self, handle: int, size: int) -> None:
        """Grow the file to ``size`` bytes of zeros past its end (the write position stays).

        Written zeros, not a sparse or ``fallocate``d range: a later write over them then
        changes no metadata at all, so its fdatasync flushes data alone (see OsDisk). Not
        durable until the next :meth:`fsync`.
        """
        ...

    def append_parts(self, handle: int, parts: Sequence[bytes]) -> None:
        """:meth:`append` of the parts' concatenation, which the caller need not build.

        The journal's frames go out this way: a frame's header and its record, and the
        records of a batch, are never joined into one buffer in user space (a copy of every
        journal byte, most of them values).
        """
        ...

    def truncate(self, handle: int, size: int) -> None: ...

    def fsync(self, handle: int) -> None:
        """Make the file's data durable, or raise ``OSError`` (never retried by callers)."""
        ...

    def drop_cached(self, handle: int, offset: int, size: int) -> None:
        """Let the OS forget its cached copy of the whole pages in ``size`` bytes from
        ``offset``, bytes that :meth:`fsync` made durable and nobody reads soon. The range
        may run past the end of the file.

        The journal and the snapshots are written once and rarely read again (at the next
        start, or for a replica far behind, from the disk then), so keeping them cached
        mostly takes memory that other work could use, and every page they add is a page the
        kernel must find. On this VM a page freed for a few seconds is handed back to the
        host and costs about 10 us to touch again: writing 500 MB into new page cache took
        1.3 s of CPU, into pages just dropped 0.2 s. A hint only: it loses nothing (a dirty
        page is written back first, never discarded), and a disk may ignore it.
        """
        ...

    def close(self, handle: int) -> None: ...

    def rename(self, source: str, target: str) -> None:
        """Atomically replace ``target`` with ``source``."""
        ...

    def remove(self, name: str) -> None: ...

    def fsync_dir(self) -> None:
        """Make creations, renames and removals in the directory durable."""
        ...


class OsDisk:
    """Real files in one directory, written with ``os.pwritev`` and synced with fdatasync.

    fdatasync rather than fsync: it skips timestamps but still flushes the file size, which is
    all a reader needs. Writes go to an offset kept per descriptor (not ``O_APPEND``, which
    would write past the zeros :meth:`extend` put ahead): an fdatasync after a write that
    grows the file must also commit the new size through ext4's journal, while one after a
    write over zeros already written and synced flushes the data alone (on this VM 220 against
    116 us p50 quiet for 100 bytes; ``posix_fallocate``'d blocks, still to be converted from
    unwritten extents on write, measured between: 161 us). The lock is an ``flock`` on
    ``LOCK``, which also holds the owner's pid so that a second process can say who is in the
    way; flock dies with its process, so a crash never leaves a stale lock behind.
    """

    def __init__(self, directory: str | Path) -> None:
        self._directory = Path(directory)
        if not self._directory.is_dir():
            self._directory.mkdir(parents=True, exist_ok=True)
            _fsync_directory(self._directory.parent)  # so the new data dir itself survives
        self._lock_fd: int | None = None
        self._open_fds: set[int] = set()
        self._positions: dict[int, int] = {}  # descriptor -> where its next append goes

    @property
    def location(self) -> str:
        return str(self._directory)

    def path_of(self, name: str) -> str:
        return str(self._directory / name)

    def lock(self) -> int:
        path = self.path_of(LOCK_FILE_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DataDirLocked(self.location, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        return fd

    def unlock(self, lock_id: int) -> None:
        if self._lock_fd is not None and self._lock_fd == lock_id:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def listdir(self) -> list[str]:
        return sorted(os.listdir(self._directory))

    def size(self, name: str) -> int:
        return os.stat(self.path_of(name)).st_size

    def read(self, name: str, offset: int = 0, size: int = -1) -> bytes:
        fd = os.open(self.path_of(name), os.O_RDONLY)
        try:
            if size < 0:
                size = max(0, os.fstat(fd).st_size - offset)
            return _pread_all(fd, size, offset)
        finally:
            os.close(fd)

    def view(self, name: str) -> FileView:
        fd = os.open(self.path_of(name), os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size:
                with contextlib.suppress(OSError, ValueError):  # a file system without mmap
                    return mmap.mmap(fd, size, prot=mmap.PROT_READ)
            return _pread_all(fd, size, 0)
        finally:
            os.close(fd)  # (a map holds the file by a descriptor of its own)

    def create(self, name: str) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        return self._track(os.open(self.path_of(name), flags, 0o644), 0)

    def open_append(self, name: str) -> int:
        fd = os.open(self.path_of(name), os.O_WRONLY)
        try:
            size = os.fstat(fd).st_size
        except OSError:
            os.close(fd)
            raise
        return self._track(fd, size)

    def append(self, handle: int, data: bytes | memoryview) -> None:
        position = self._positions[handle]
        written = os.pwrite(handle, data, position)  # all of it, nearly always
        if written < len(data):
            view = memoryview(data)[written:]
            while view:
                written += (done := os.pwrite(handle, view, position + written))
                view = view[done:]
        self._positions[handle] = position + written

    def write_at(self, handle: int, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            done = os.pwrite(handle, view, offset)
            view, offset = view[done:], offset + done

    def append_parts(self, handle: int, parts: Sequence[bytes]) -> None:
        # One pwritev, nearly always: a regular file takes all of it unless the disk fills up
        # (which raises on the next call) or a signal cuts it short.
        position = self._positions[handle]
        if len(parts) <= _IOV_MAX:
            written = os.pwritev(handle, parts, position)
            total = sum(map(len, parts))
            if written == total:
                self._positions[handle] = position + written
                return
            position += written
            rest = _past(parts, written)
        else:
            rest = list(parts)
        while rest:
            chunk = rest[:_IOV_MAX]
            written = os.pwritev(handle, chunk, position)
            position += written
            rest = [*_past(chunk, written), *rest[_IOV_MAX:]]
        self._positions[handle] = position

    def extend(self, handle: int, size: int) -> None:
        end = os.fstat(handle).st_size
        zeros = memoryview(_zero_chunk())
        while end < size:
            end += os.pwrite(handle, zeros[: size - end], end)

    def truncate(self, handle: int, size: int) -> None:
        os.ftruncate(handle, size)
        if handle in self._positions:
            self._positions[handle] = min(self._positions[handle], size)

    def fsync(self, handle: int) -> None:
        os.fdatasync(handle)

    def drop_cached(self, handle: int, offset: int, size: int) -> None:
        # The kernel drops only the whole pages (folios) in the range. A refusal (a
        # filesystem without the hint) is ignored: the bytes are durable all the same, and a
        # store that stopped here would fail a write that succeeded.
        if _FADVISE is not None and size > 0:
            with contextlib.suppress(OSError):
                os.posix_fadvise(handle, offset, size, _FADVISE)

    def close(self, handle: int) -> None:
        self._open_fds.discard(handle)
        self._positions.pop(handle, None)
        os.close(handle)

    def rename(self, source: str, target: str) -> None:
        os.rename(self.path_of(source), self.path_of(target))

    def remove(self, name: str) -> None:
        os.remove(self.path_of(name))

    def fsync_dir(self) -> None:
        _fsync_directory(self._directory)

    def release(self) -> None:
        """Close every descriptor and the lock, as the death of the process would.

        For tests that stop a store between two steps and then open the directory again in the
        same process: the abandoned store's descriptors must not hold the flock.
        """
        for fd in list(self._open_fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._open_fds.clear()
        self._positions.clear()
        if self._lock_fd is not None:
            self.unlock(self._lock_fd)

    def _track(self, fd: int, position: int) -> int:
        self._open_fds.add(fd)
        self._positions[fd] = position
        return fd


_ZERO_CHUNK_BYTES: Final = 1 << 20


@functools.cache
def _zero_chunk() -> bytes:
    """The zeros ``extend`` writes, a chunk at a time: made once, when first needed."""
    return bytes(_ZERO_CHUNK_BYTES)


_IOV_MAX: Final = max(16, os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 16)
"""The most buffers one writev takes (1024 on Linux; POSIX guarantees 16)."""


def _past(parts: Sequence[bytes | memoryview], written: int) -> list[bytes | memoryview]:
    """What is left of ``parts`` once their first ``written`` bytes are written."""
    for position, part in enumerate(parts):
        if written < len(part):
            rest: list[bytes | memoryview] = [memoryview(part)[written:]]
            rest.extend(parts[position + 1 :])
            return rest
        written -= len(part)
    return []


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) == size or not data:
        return data
    parts = [data]  # a short read: keep reading until the size or end of file
    done = len(data)
    while done < size:
        part = os.pread(fd, size - done, offset + done)
        if not part:
            break
        parts.append(part)
        done += len(part)
    return b"".join(parts)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError as error:
        if error.errno == errno.EBADF:
            return None
        raise
    return int(text) if text.isdigit() else None


class NoSyncDisk:
    """The ``os`` durability mode: every operation as ``inner`` does it, except the syncs.

    Writes still reach the kernel at once, so a crash of the process loses nothing; a power
    cut may lose whatever the kernel had not yet written back.
    """

    def __init__(self, inner: Disk) -> None:
        self.inner = inner
        # The inner disk's own append, with no call of ours around it: the journal appends
        # once or twice per write.
        self.append = inner.append  # type: ignore[method-assign]
        self.append_parts = inner.append_parts  # type: ignore[method-assign]

    @property
    def location(self) -> str:
        return self.inner.location

    def path_of(self, name: str) -> str:
        return self.inner.path_of(name)

    def lock(self) -> int:
        return self.inner.lock()

    def unlock(self, lock_id: int) -> None:
        self.inner.unlock(lock_id)

    def listdir(self) -> list[str]:
        return self.inner.listdir()

    def size(self, name: str) -> int:
        return self.inner.size(name)

    def read(self, name: str, offset: int = 0, size: int = -1) -> bytes:
        return self.inner.read(name, offset, size)

    def view(self, name: str) -> FileView:
        return self.inner.view(name)

    def create(self, name: str) -> int:
        return self.inner.create(name)

    def open_append(self, name: str) -> int:
        return self.inner.open_append(name)

    def append(self, handle: int, data: bytes | memoryview) -> None:
        self.inner.append(handle, data)

    def append_parts(self, handle: int, parts: Sequence[bytes]) -> None:
        self.inner.append_parts(handle, parts)

    def write_at(self, handle: int, offset: int, data: bytes) -> None:
        self.inner.write_at(handle, offset, data)

    def extend(self, handle: int, size: int) -> None:
        self.inner.extend(handle, size)

    def truncate(self, handle: int, size: int) -> None:
        self.inner.truncate(handle, size)

    def fsync(self, handle: int) -> None:
        pass

    def drop_cached(self, handle: int, offset: int, size: int) -> None:
        pass  # nothing was synced: the kernel would start writing the pages back to drop them

    def close(self, handle: int) -> None:
        self.inner.close(handle)

    def rename(self, source: str, target: str) -> None:
        self.inner.rename(source, target)

    def remove(self, name: str) -> None:
        self.inner.remove(name)

    def fsync_dir(self) -> None:
        pass
