"""Group commit: one writer thread turns whatever is waiting into one write and one fsync.

An fdatasync costs the same for one record as for a thousand, so the way to go fast and stay
durable is to let records pile up while the previous sync is in flight and make the next sync
take them all: the batch size is whatever is waiting, never a timer. Records nobody waits on
yet (``sync=False``: a replica's "this slot is chosen" markers) are written at once but start no
sync of their own; they ride with the next one, or with :meth:`request_sync` from a timer, so
an accept that follows never queues behind an fsync it does not need. Callers submit from any
thread (the event loop, via ``asyncio.wrap_future``) and get a future that resolves to the
index of their last record once it is durable - not before, and never if the sync failed.

A sync may also run on the caller's own thread (:meth:`sync_here`) when the writer thread is
idle: a lone write on a quiet node then costs no thread wake-up on the way in and none on the
way out (two handoffs and, under the GIL, up to a switch interval each), which is a third of a
single write's latency on a fast disk. Under load the writer thread is busy, ``sync_here``
declines, and the batching above works as before.
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
        self._syncing = False  # a sync is running, on the writer thread or a caller's
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

    def sync_here(self) -> bool:
        """Sync what was submitted on this thread, now, if no sync is running; else False.

        For a caller that would otherwise wait on the writer thread while doing nothing: it
        blocks for one fdatasync. On False nothing changed and the caller submits as usual
        (or calls :meth:`request_sync`); the writer thread's batching is untouched.
        """
        with self._condition:
            if self._syncing or self._error is not None or self._closing or not self._waiting:
                return False
            self._syncing = True
        try:
            durable = self._store.sync()
        except StorageError as error:
            self._fail_all(error)
            return True
        finally:
            with self._condition:
                self._syncing = False
                self._condition.notify()  # the writer thread may wait for this sync to end
        self._release(durable)
        return True

    def close(self) -> None:
        """Sync what was submitted, stop the thread; the store stays open."""
        with self._condition:
            self._closing = True
            self._condition.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._syncing or (not self._sync_wanted and not self._closing):
                    self._condition.wait()
                self._sync_wanted = False
                if not self._waiting:
                    if self._closing:
                        return
                    continue  # an earlier sync already covered what was asked for
                self._syncing = True
            try:
                durable = self._store.sync()
            except StorageError as error:
                self._fail_all(error)
                return
            finally:
                with self._condition:
                    self._syncing = False
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
