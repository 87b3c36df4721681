"""Group commit: one writer thread turns whatever is waiting into one write and one fsync.

An fdatasync costs the same for one record as for a thousand, so the way to go fast and stay
durable is to let records pile up while the previous sync is in flight and make the next sync
take them all: the batch size is whatever is waiting, never a timer. Records nobody waits on
yet (``sync=False``: a replica's "this slot is chosen" markers) are written at once but start no
sync of their own; they ride with the next one, or with :meth:`request_sync` from a timer, so
an accept that follows never queues behind an fsync it does not need. Callers submit from any
thread (the event loop, via ``asyncio.wrap_future``) and get a future that resolves to the
index of their last record once it is durable - not before, and never if the sync failed.

A sync may also run on the caller's own thread (:meth:`sync_here`) when the disk is quiet: a
lone write then costs no thread wake-up on the way in and none on the way out (two handoffs,
each a scheduler round trip and a wait for the GIL). "Quiet" means no sync is running, and
the disk has sat idle between syncs, lately and on average, for more than half a sync's time
(a sync's time: a moving average of them): under a stream of writes the syncs come back to
back, the caller (the event loop) has better things to do than wait on the disk, and the
writer thread batches as above. One client's sequential writes leave the disk idle for
about a round trip between syncs, which the old bound of two syncs' time took for a stream
half the time. Nor does it on a slow disk (syncs of over 2 ms on average) or right after a
stall (a last sync of over 10 ms): a loop waiting on such a disk would send no heartbeats
meanwhile. One slow sync among fast ones no longer sends the next to the writer thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError

from paxoskv.errors import StorageError, StoreClosed
from paxoskv.storage.framing import Record
from paxoskv.storage.store import Store

__all__ = ["LAZY_SYNC_S", "GroupCommitter"]

LAZY_SYNC_S = 0.05
"""How long records submitted with ``sync=False`` may stay unsynced if no sync comes: the
runtime arms a timer for :meth:`GroupCommitter.request_sync`, and the simulator models it."""


_LONGEST_IDLE_S = 0.1  # one long pause counts no longer than this in the average
_SLOWEST_SYNC_HERE_S = 0.002
"""A disk whose syncs take longer, on a moving average, is never synced on the caller's
thread: an event loop that waits on a slow disk sends no heartbeats meanwhile."""
_STALLED_SYNC_S = 0.01
"""Nor is one whose last sync took longer than this (a stall), whatever the average says."""


Durable = Callable[[int, StorageError | None], None]
"""Told ``(index of the last record, None)`` once a submit is durable, or ``(0, error)``."""

Marked = Callable[[int, StorageError | None], None]
"""Told ``(highest mark durable, None)`` once per sync that made marked submits durable, or
``(0, error)`` once if the store failed with marked submits waiting (see ``submit_marked``)."""


class GroupCommitter:
    """One writer thread: submit() from any thread, future resolves when durable.

    ``submit_then`` is the same with a plain callback instead of a future, for a caller that
    submits on every engine step: a ``concurrent.futures.Future`` brings a lock, a condition
    and a callback list of its own, several microseconds a write for nothing it uses.
    ``submit_marked`` goes one further for a caller that numbers its submits in increasing
    order (the runtime's sync ids) and only wants the highest number durable: no callback
    object per submit, and one call of ``on_marked`` per sync rather than one per submit.
    """

    def __init__(self, store: Store, on_marked: Marked | None = None) -> None:
        self._store = store
        self._on_marked = on_marked
        # Taken as ``acquire()`` and ``release()`` in a ``try``/``finally`` where it is taken
        # for every write (half the cost of ``with``, which looks up and binds __enter__ and
        # __exit__ each time), else as ``with self._lock``. The writer thread sleeps
        # on ``_wake``, a plain lock held while nobody has woken it: :meth:`_notify` releases
        # it, under ``_lock``, and the writer's next ``acquire`` returns (at once, if the wake
        # came before it slept). Each is one C call, where a ``threading.Condition``'s wait
        # and notify are Python code, some thousands of instructions per sync of the writer.
        self._lock = threading.RLock()
        self._wake = threading.Lock()
        self._wake.acquire()
        self._waiting: deque[tuple[int, Durable]] = deque()  # ordered by index
        self._marked: deque[tuple[int, int]] = deque()  # (index, mark), both increasing
        self._error: StorageError | None = None
        self._closing = False
        self._sync_wanted = False
        self._syncing = False  # a sync is running, on the writer thread or a caller's
        self._last_end = time.monotonic()  # when the last sync ended
        self._idle_s = 0.0  # the disk's idle time between syncs, a moving average
        self._last_sync_s = 0.0  # how long the last sync took
        self._sync_s = 0.0  # how long a sync takes, a moving average
        self._thread = threading.Thread(
            target=self._run, name=f"paxoskv-group-commit {store.location}", daemon=True
        )
        self._thread.start()

    def submit(self, records: Sequence[Record], *, sync: bool = True) -> Future[int]:
        """Queue records; the future gives the index of the last one once it is durable.

        With ``sync=False`` they are appended but wait for the next sync someone asks for.

        A record that is not bytes or is too big raises here, at once; a disk failure later
        fails the future with :class:`~paxoskv.errors.StorageFailed`.
        """
        future: Future[int] = Future()

        def durable(last: int, error: StorageError | None) -> None:
            try:
                if error is None:
                    future.set_result(last)
                else:
                    future.set_exception(error)
            except InvalidStateError:  # cancelled (asyncio.wrap_future's awaiter was): nobody
                pass  # waits, and the writer thread must not die of it

        self.submit_then(records, durable, sync=sync)
        return future

    def submit_then(
        self, records: Sequence[Record], durable: Durable, *, sync: bool = True
    ) -> None:
        """:meth:`submit`, with ``durable`` called (on whichever thread synced) instead of a
        future resolved. Records that are not bytes or too big raise here, at once."""
        with self._lock:
            error = self._error
            if error is None and not self._closing:
                last = self._store.append(records)
                self._waiting.append((last, durable))
                if sync:
                    self._sync_wanted = True
                    self._notify()
                return
        durable(0, error or StoreClosed("the group committer is closed"))

    def submit_marked(self, records: Sequence[Record], mark: int, sync: bool = True) -> None:
        """:meth:`submit_then` for the caller that gave ``on_marked``: once the records are
        durable, ``on_marked(mark, None)`` is called (on whichever thread synced) with the
        highest mark that sync made durable. Marks must increase from one submit to the next.
        On a failed or closed store ``on_marked(0, error)`` is called instead.
        Records that are not bytes or too big raise here, at once."""
        lock = self._lock
        lock.acquire()
        try:
            error = self._error
            if error is None and not self._closing:
                self._marked.append((self._store.append(records), mark))
                if sync:
                    self._sync_wanted = True
                    self._notify()
                return
        finally:
            lock.release()
        on_marked = self._on_marked
        assert on_marked is not None, "submit_marked needs on_marked"
        on_marked(0, error or StoreClosed("the group committer is closed"))

    def request_sync(self) -> None:
        """Sync whatever was submitted without ``sync`` (a no-op if nothing waits)."""
        lock = self._lock
        lock.acquire()
        try:
            if self._waiting or self._marked:
                self._sync_wanted = True
                self._notify()
        finally:
            lock.release()

    def sync_here(self) -> bool:
        """Sync what was submitted on this thread, now, if the disk is quiet; else False.

        For a caller that would otherwise wait on the writer thread while doing nothing: it
        blocks for one fdatasync. On False nothing changed and the caller submits as usual
        (or calls :meth:`request_sync`); the writer thread's batching is untouched.

        One lock round trip before the sync and one after it, which also takes what the sync
        released (a caller on the loop syncs here once or twice a write).
        """
        lock = self._lock
        lock.acquire()
        try:
            sync_s = self._sync_s
            if (
                self._syncing
                or self._error is not None
                or self._closing
                or not (self._waiting or self._marked)
                or self._last_sync_s > _STALLED_SYNC_S
                or sync_s > _SLOWEST_SYNC_HERE_S
                or time.monotonic() < self._last_end + sync_s / 2
                or self._idle_s < sync_s / 2
            ):
                return False
            self._syncing = True
        finally:
            lock.release()
        try:
            durable = self._timed_sync()
        except StorageError as error:
            try:
                self._fail_all(error)
            finally:  # a waiter's callback that raises must not leave _syncing set for good
                self._end_sync_here()
            return True
        except BaseException:
            self._end_sync_here()
            raise
        lock.acquire()
        try:
            self._syncing = False
            if self._sync_wanted or self._closing:  # the writer waits for this sync to end
                self._notify()  # (a needless wake costs a GIL handoff)
            ready, mark = self._take_released(durable)
        finally:
            lock.release()
        self._tell_released(ready, mark)
        return True

    def _end_sync_here(self) -> None:
        with self._lock:
            self._syncing = False
            if self._sync_wanted or self._closing:
                self._notify()

    def _timed_sync(self) -> int:
        started = time.monotonic()
        idle_s = started - self._last_end  # (compared, not min/max: two calls fewer a sync)
        if idle_s > _LONGEST_IDLE_S:
            idle_s = _LONGEST_IDLE_S
        elif idle_s < 0.0:
            idle_s = 0.0
        self._idle_s += (idle_s - self._idle_s) * 0.25
        try:
            return self._store.sync()
        finally:
            self._last_end = time.monotonic()
            self._last_sync_s = self._last_end - started
            if self._sync_s:
                self._sync_s += (self._last_sync_s - self._sync_s) * 0.25
            else:  # the first sync: nothing to average with yet
                self._sync_s = self._last_sync_s

    def close(self) -> None:
        """Sync what was submitted, stop the thread; the store stays open."""
        with self._lock:
            self._closing = True
            self._notify()
        self._thread.join()

    def _notify(self) -> None:
        """Wake the writer thread (called with ``_lock`` held, so never two at once); a wake
        it did not need costs it one look at the state."""
        if self._wake.locked():
            self._wake.release()

    def _run(self) -> None:
        lock = self._lock
        while True:
            lock.acquire()
            try:
                asleep = self._syncing or (not self._sync_wanted and not self._closing)
                if not asleep:
                    self._sync_wanted = False
                    if not self._waiting and not self._marked:
                        if self._closing:
                            return
                        continue  # an earlier sync already covered what was asked for
                    self._syncing = True
            finally:
                lock.release()
            if asleep:
                self._wake.acquire()  # until _notify: then look again
                continue
            try:
                durable = self._timed_sync()
            except BaseException as error:
                try:
                    if isinstance(error, StorageError):
                        self._fail_all(error)
                finally:
                    with self._lock:
                        self._syncing = False
                if isinstance(error, StorageError):
                    return
                raise
            lock.acquire()  # the sync's end and what it released, in one round trip
            try:
                self._syncing = False
                ready, mark = self._take_released(durable)
            finally:
                lock.release()
            self._tell_released(ready, mark)

    def _take_released(self, durable: int) -> tuple[list[tuple[int, Durable]], int]:
        """What a sync up to index ``durable`` released (under the lock): the callbacks, and
        the highest mark (0: none)."""
        ready = []
        waiting = self._waiting
        while waiting and waiting[0][0] <= durable:
            ready.append(waiting.popleft())
        mark = 0
        marked = self._marked
        while marked and marked[0][0] <= durable:
            mark = marked.popleft()[1]
        return ready, mark

    def _tell_released(self, ready: list[tuple[int, Durable]], mark: int) -> None:
        if mark:
            on_marked = self._on_marked
            assert on_marked is not None
            on_marked(mark, None)
        for last, tell in ready:
            tell(last, None)

    def _fail_all(self, error: StorageError) -> None:
        with self._lock:
            self._error = error
            failed = list(self._waiting)
            self._waiting.clear()
            marked = bool(self._marked)
            self._marked.clear()
        if marked and self._on_marked is not None:
            self._on_marked(0, error)
        for _, tell in failed:
            tell(0, error)
