"""The API for code without an event loop (Flask views, scripts): the same methods, blocking.

An event loop runs in a daemon thread of its own; each call is handed to it and waited for.
``watch`` becomes an ordinary iterator.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar

from paxoskv.client import KVApi
from paxoskv.config import Config
from paxoskv.state import ChangeEvent, Key

T = TypeVar("T")
_END = object()


class BlockingClient:
    """Wraps a :class:`~paxoskv.client.KVApi` (a Node or a Client) behind blocking calls."""

    def __init__(self, factory: Callable[[], KVApi]) -> None:
        self._factory = factory
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="paxoskv")
        self._api: KVApi | None = None

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def open(self) -> Self:
        self._thread.start()

        async def start() -> KVApi:
            api = self._factory()
            await api.start()
            return api

        self._api = self._run(start())
        return self

    def close(self) -> None:
        if self._api is not None:
            self._run(self._api.close())
            self._api = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def api(self) -> KVApi:
        if self._api is None:
            raise RuntimeError("not open: use `with paxoskv.open_blocking(config) as kv:`")
        return self._api

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """Every coroutine method of the API, run to completion on the background loop."""
        method = getattr(self.api, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._run(method(*args, **kwargs))

        return call

    def watch(
        self, prefix: Key | str | None = None, from_revision: int | None = None
    ) -> Iterator[ChangeEvent]:
        """Changes as an ordinary iterator; break out of the loop to stop watching."""
        events: queue.Queue[object] = queue.Queue()

        async def pump() -> None:
            try:
                async for event in self.api.watch(prefix, from_revision):
                    events.put(event)
            except BaseException as error:  # handed to the iterating thread
                events.put(error)
            finally:
                events.put(_END)

        future = asyncio.run_coroutine_threadsafe(pump(), self._loop)
        try:
            while (item := events.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, ChangeEvent)
                yield item
        finally:
            future.cancel()


def open_blocking(config: Config, *, replica: bool = False) -> BlockingClient:
    """``with paxoskv.open_blocking(config) as kv: kv.set("k", 1)``.

    A thin client by default; ``replica=True`` embeds a :class:`~paxoskv.Node` instead.
    """
    from paxoskv.node import Node
    from paxoskv.remote import connect

    return BlockingClient(lambda: Node(config) if replica else connect(config))
