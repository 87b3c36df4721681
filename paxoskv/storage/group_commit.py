"""Group commit: one writer thread turns whatever is waiting into one write and one fsync.

An fdatasync costs the same for one record as for a thousand, so the way to go fast and stay
durable is to let records pile up while the previous sync is in flight and make the next sync
take them all: the batch size is whatever is waiting, never a timer. Records nobody waits on
yet (``sync=False``: a replica's "this slot is chosen" markers) are written at once but start no
sync of their own; they ride with the next one, or with :meth:`request_sync` from a timer, so
an accept that follows never queues behind an fsync it does not need. Callers submit from any
thread (the event loop, via ``asyncio.wrap_future``) and get a future that resolves to the
index of their last record once it is durable - not before, and never if the sync failed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future

from paxoskv.errors import StorageError, StoreClosed
from paxoskv.storage.store import Store

__all__ = ["LAZY_SYNC_S", "GroupCommitter"]

LAZY_SYNC_S = 0.05
"""How long records submitted with ``sync=False`` may stay unsynced if no sync comes: the
runtime arms a timer for :meth:`GroupCommitter.request_sync`, and the simulator models it."""


class GroupCommitter:
    """One writer thread: submit() from any thread, future resolves when durable."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._condition = threading.Condition()
        self._waiting: deque[tuple[int, Future[int]]] = deque()  # ordered by index
        self._error: StorageError | None = None
        self._closing = False
        self._sync_wanted = False
        self._thread = threading.Thread(
            target=self._run, name=f"paxoskv-group-commit {store.location}", daemon=True
        )
        self._thread.start()

    def submit(self, records: Sequence[bytes], *, sync: bool = True) -> Future[int]:
        """Queue records; the future gives the index of the last one once it is durable.

        With ``sync=False`` they are appended but wait for the next sync someone asks for.

        A record that is not bytes or is too big raises here, at once; a disk failure later
        fails the future with :class:`~paxoskv.errors.StorageFailed`.
        """
        future: Future[int] = Future()
        with self._condition:
            if self._error is not None or self._closing:
                future.set_exception(self._error or StoreClosed("the group committer is closed"))
                return future
            last = self._store.append(records)
            self._waiting.append((last, future))
            if sync:
                self._sync_wanted = True
                self._condition.notify()
        return future

    def request_sync(self) -> None:
        """Sync whatever was submitted without ``sync`` (a no-op if nothing waits)."""
        with self._condition:
            if self._waiting:
                self._sync_wanted = True
                self._condition.notify()

    def close(self) -> None:
        """Sync what was submitted, stop the thread; the store stays open."""
        with self._condition:
            self._closing = True
            self._condition.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._sync_wanted and not self._closing:
                    self._condition.wait()
                self._sync_wanted = False
                if not self._waiting:
                    if self._closing:
                        return
                    continue  # an earlier sync already covered what was asked for
            try:
                durable = self._store.sync()
            except StorageError as error:
                self._fail_all(error)
                return
            self._release(durable)

    def _release(self, durable: int) -> None:
        ready = []
        with self._condition:
            while self._waiting and self._waiting[0][0] <= durable:
                ready.append(self._waiting.popleft())
        for last, future in ready:
            future.set_result(last)

    def _fail_all(self, error: StorageError) -> None:
        with self._condition:
            self._error = error
            failed = list(self._waiting)
            self._waiting.clear()
        for _, future in failed:
            future.set_exception(error)
