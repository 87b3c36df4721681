"""A disk wrapper that fails or stops on purpose, for tests and the simulator.

Two kinds of trouble: an ``OSError`` on the Nth call of one operation (a full disk is ENOSPC
on a write, a dying device EIO on an fsync), which the store must turn into a clean stop; and
a stop after N changing operations, which raises :class:`DiskStopped` - not an ``OSError``, so
no store code can catch it - to freeze the directory exactly between two steps, as if the
process or the machine died there. The test then calls ``crash()`` or ``release()`` on the
inner disk and opens a store again.
"""

from __future__ import annotations

import errno as errno_codes
import os
from collections.abc import Sequence

from paxoskv.storage.disk import Disk, FileView

__all__ = ["CHANGING_OPERATIONS", "DiskStopped", "FaultyDisk"]

CHANGING_OPERATIONS = frozenset(
    {"create", "append", "write_at", "extend", "truncate", "fsync", "rename", "remove", "fsync_dir"}
)


class DiskStopped(BaseException):
    """The simulated process died at this point; nothing in the store may catch this."""


class FaultyDisk:
    """Forwards to ``inner``, counting calls and failing or stopping where armed."""

    def __init__(self, inner: Disk) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}
        self.changes: list[tuple[str, str]] = []  # (operation, file) in order, for tests
        self._failures: dict[str, tuple[int, int]] = {}
        self._stop_after_changes: int | None = None
        self._handle_names: dict[int, str] = {}

    def fail(self, operation: str, *, nth: int = 1, errno: int = errno_codes.ENOSPC) -> None:
        """Make the ``nth`` call of ``operation`` from now on raise ``OSError(errno)``."""
        self._failures[operation] = (self.calls.get(operation, 0) + nth, errno)

    def stop_after(self, changes: int) -> None:
        """Let ``changes`` more changing operations through, then raise DiskStopped."""
        self._stop_after_changes = len(self.changes) + changes

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
        self._enter("listdir", "")
        return self.inner.listdir()

    def size(self, name: str) -> int:
        self._enter("size", name)
        return self.inner.size(name)

    def read(self, name: str, offset: int = 0, size: int = -1) -> bytes:
        self._enter("read", name)
        return self.inner.read(name, offset, size)

    def view(self, name: str) -> FileView:
        self._enter("read", name)  # one read of the whole file, as a fault plan counts it
        return self.inner.view(name)

    def create(self, name: str) -> int:
        self._enter("create", name)
        handle = self.inner.create(name)
        self._handle_names[handle] = name
        return handle

    def open_append(self, name: str) -> int:
        self._enter("open_append", name)
        handle = self.inner.open_append(name)
        self._handle_names[handle] = name
        return handle

    def append(self, handle: int, data: bytes | memoryview) -> None:
        self._enter("append", self._handle_names.get(handle, ""))
        self.inner.append(handle, data)

    def append_parts(self, handle: int, parts: Sequence[bytes]) -> None:
        self._enter("append", self._handle_names.get(handle, ""))  # one append, as it was
        self.inner.append_parts(handle, parts)

    def write_at(self, handle: int, offset: int, data: bytes) -> None:
        self._enter("write_at", self._handle_names.get(handle, ""))
        self.inner.write_at(handle, offset, data)

    def extend(self, handle: int, size: int) -> None:
        self._enter("extend", self._handle_names.get(handle, ""))
        self.inner.extend(handle, size)

    def truncate(self, handle: int, size: int) -> None:
        self._enter("truncate", self._handle_names.get(handle, ""))
        self.inner.truncate(handle, size)

    def fsync(self, handle: int) -> None:
        self._enter("fsync", self._handle_names.get(handle, ""))
        self.inner.fsync(handle)

    def drop_cached(self, handle: int, offset: int, size: int) -> None:
        self.inner.drop_cached(handle, offset, size)  # a hint: nothing to fail

    def close(self, handle: int) -> None:
        self._enter("close", self._handle_names.pop(handle, ""))
        self.inner.close(handle)

    def rename(self, source: str, target: str) -> None:
        self._enter("rename", f"{source} -> {target}")
        self.inner.rename(source, target)

    def remove(self, name: str) -> None:
        self._enter("remove", name)
        self.inner.remove(name)

    def fsync_dir(self) -> None:
        self._enter("fsync_dir", "")
        self.inner.fsync_dir()

    def _enter(self, operation: str, name: str) -> None:
        count = self.calls.get(operation, 0) + 1
        self.calls[operation] = count
        if operation in CHANGING_OPERATIONS:
            if self._stop_after_changes is not None and len(self.changes) >= (
                self._stop_after_changes
            ):
                raise DiskStopped(f"stopped before {operation} {name}")
            self.changes.append((operation, name))
        failure = self._failures.get(operation)
        if failure is not None and failure[0] == count:
            del self._failures[operation]
            raise OSError(failure[1], os.strerror(failure[1]), self.path_of(name))
