"""The bounded queue between a transport's receive path and the runtime's ``receive()``.

Not ``asyncio.Queue``: that one blocks or raises when full, and a datagram path must do
neither -- a full inbox means the runtime is not keeping up, and the honest answer on a lossy
medium is to drop the newest datagram and count it, as the kernel does with a full socket
buffer. Closing wakes every waiting ``get`` with :class:`TransportClosed`, so a runtime blocked
on ``receive()`` stops cleanly when the node shuts down.

A consumer may take the inbox's place (:meth:`Inbox.hand_to`): every delivery then goes to it
the moment the transport has it, with no queue and no task switch. The runtime does so; what
a receive path costs in wake-ups is latency on every hop of a write.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from paxoskv.errors import TransportClosed
from paxoskv.transport.base import Delivery

__all__ = ["DEFAULT_INBOX_FRAMES", "Inbox"]

DEFAULT_INBOX_FRAMES = 4096


class Inbox:
    def __init__(self, capacity_frames: int = DEFAULT_INBOX_FRAMES) -> None:
        if capacity_frames < 1:
            raise ValueError("capacity_frames must be at least 1")
        self.capacity_frames = capacity_frames
        self._items: deque[Delivery] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._consumer: Callable[[list[Delivery]], None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def hand_to(self, consumer: Callable[[list[Delivery]], None] | None) -> None:
        """From now on give every delivery to ``consumer`` (None: queue them again).

        What waits in the queue goes to it at once. The consumer runs inside the transport's
        receive path and must not raise.
        """
        self._consumer = consumer
        if consumer is not None and self._items and not self._closed:
            waiting = list(self._items)
            self._items.clear()
            consumer(waiting)

    def put(self, item: Delivery) -> bool:
        """Queue ``item``; False (and nothing queued) when full or closed."""
        if self._closed or len(self._items) >= self.capacity_frames:
            return False
        if self._consumer is not None:
            self._consumer([item])
            return True
        self._items.append(item)
        if self._waiters:
            self._wake_one()
        return True

    def put_many(self, items: list[Delivery]) -> int:
        """Queue ``items`` in order as far as there is room; how many were dropped."""
        room = 0 if self._closed else self.capacity_frames - len(self._items)
        if room <= 0:
            return len(items)
        if self._consumer is not None:
            self._consumer(items)
            return 0
        dropped = len(items) - room
        if dropped > 0:
            items = items[:room]
        self._items.extend(items)
        for _ in range(min(len(items), len(self._waiters))):
            self._wake_one()
        return max(dropped, 0)

    async def get(self) -> Delivery:
        while not self._items:
            if self._closed:
                raise TransportClosed("the transport is closed")
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                # Cancelled while an item was handed to us: pass the wake-up on.
                if waiter.done() and not waiter.cancelled() and self._items:
                    self._wake_one()
                raise
        if self._closed:
            raise TransportClosed("the transport is closed")
        return self._items.popleft()

    async def get_many(self, max_items: int) -> list[Delivery]:
        """Wait as :meth:`get` does, then take up to ``max_items`` (at least one)."""
        items = self._items
        if not items or self._closed:
            items.appendleft(await self.get())
        count = min(len(items), max_items)
        if count == len(items):
            taken = list(items)
            items.clear()
            return taken
        return [items.popleft() for _ in range(count)]

    def close(self) -> None:
        self._closed = True
        self._items.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
