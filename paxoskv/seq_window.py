"""The seqs one client hands out, kept within the cluster's dedup window.

Every replica remembers a client's results for the last ``DEDUP_WINDOW_REQUESTS`` seqs up to
the highest it has seen (:mod:`paxoskv.state.dedup`), and refuses as stale a seq below that:
it can no longer tell whether such a request was applied. A request that waits on a resend
(a forward lost in the network is resent half a second later, then later still) would fall
below the window if the client's other callers went on: a node's pipelined callers write
thousands of requests a second under one client id, so one lost datagram turned into a
"stale" failure of a write that had never been applied at all.

So a client never hands out a seq ``window`` or more above the oldest seq still waiting for
its answer: a caller that would waits, in order, until the oldest is answered or has failed
(a timeout, NodeClosed, cancelled). Every request sent while its caller waits is then inside
the window wherever it arrives, as Raft's client sessions and RIFL keep it by having the
client send the oldest seq it still waits on. A copy still in the network after its caller
gave up may arrive later and be refused as stale; nobody waits for that answer, and the
caller was told the write may or may not have been applied.
"""

from __future__ import annotations

import asyncio
from collections import deque

from paxoskv.state.commands import DEDUP_WINDOW_REQUESTS


class SeqWindow:
    """Seqs from 1 on, with at most ``window`` of them between the oldest unfinished and the
    next. One per client id; used from one event loop."""

    __slots__ = ("_finished", "_floor", "_next", "_waiters", "window")

    def __init__(self, window: int = DEDUP_WINDOW_REQUESTS) -> None:
        if type(window) is not int or window < 1:
            raise ValueError(f"a seq window must be a whole number of at least 1, not {window!r}")
        self.window = window
        self._next = 1
        self._floor = 1  # the oldest seq handed out and not finished (``_next`` if none)
        self._finished: set[int] = set()  # finished seqs above the floor
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def oldest_waiting(self) -> int | None:
        """The oldest seq handed out and not yet finished, if any."""
        return self._floor if self._floor < self._next else None

    def take(self) -> int:
        """The next seq, or 0 when the window is full (or callers already wait for room)."""
        seq = self._next
        if seq - self._floor >= self.window or self._waiters:
            return 0
        self._next = seq + 1
        return seq

    async def take_when_room(self) -> int:
        """The next seq, once there is room for it; callers get theirs in the order they came."""
        seq = self.take()
        if seq:
            return seq
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:  # cancelled, or the coroutine closed (GeneratorExit)
            self._waiters.remove(waiter)  # still queued: only taking its seq dequeues it
            self._wake()  # room it was woken for goes to the next caller
            raise
        # Woken as the first in line with room, and nobody took it meanwhile: take() defers
        # to waiters, and finishing only makes room.
        self._waiters.popleft()
        seq = self._next
        self._next = seq + 1
        self._wake()
        return seq

    def finish(self, seq: int) -> None:
        """``seq`` was answered, or failed for good: the client will not send it again."""
        if seq != self._floor or seq >= self._next:
            if self._floor < seq < self._next:
                self._finished.add(seq)
            return
        floor, finished = seq + 1, self._finished
        while floor in finished:
            finished.remove(floor)
            floor += 1
        self._floor = floor
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        """Wake the first caller in line if there is room for its seq."""
        waiters = self._waiters
        if waiters and self._next - self._floor < self.window:
            first = waiters[0]
            if not first.done():
                first.set_result(None)
